# Kubernetes manifests (deploy/k8s): rendered with `kubectl kustomize` for every overlay and
# validated offline (kubernetes-models schemas, unknown fields, CRD schemas, policy checks,
# yamllint), plus negative fixtures the validator must reject. No cluster needed. On a fresh
# machine the script installs its npm packages (deploy/validate/node_modules, npm ci) and yamllint
# (apt) itself: ~10-20 s the first time, ~2 s afterwards. Included from tests/CMakeLists.txt.
add_test(NAME k8s_manifests COMMAND ${PROJECT_SOURCE_DIR}/deploy/validate/validate-k8s)
set_tests_properties(k8s_manifests PROPERTIES LABELS lint TIMEOUT 300)
