# The observability kit (deploy/prometheus/, deploy/grafana/) against the real router, a real
# redis-server and a real Prometheus, all on loopback: metrics scraped and queried back, every rule
# group loaded and healthy, a Redis outage raising VrouterRedisDown, promtool check rules / test
# rules / check config / check metrics, and deploy/grafana/check-dashboard. Needs the Debian
# packages prometheus and redis-server (scripts/setup); about 15 s.
# Included from tests/CMakeLists.txt (CMAKE_CURRENT_SOURCE_DIR is tests/).
add_test(NAME observability
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy/observability_test.py
                 $<TARGET_FILE:vrouter>)
set_tests_properties(observability PROPERTIES LABELS "lint;integration" TIMEOUT 120)
