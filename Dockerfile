# vrouter container image: two stages from debian:bookworm-slim, set up by scripts/setup (the same
# script as the README quick start).
#
#   podman build --pull=never -t vrouter .        (deploy/container-smoke builds, runs and checks it)
#
# The runtime image runs as uid 10001, works with a read-only root filesystem (it writes nothing:
# logs go to stdout), and starts vrouter under tini so SIGTERM reaches it (it then drains:
# goaway, close over --drain-window-ms, exit 0). Configuration is environment variables
# (VROUTER_<FLAG>); the defaults below serve wss on 8443 with the certificate mounted at
# /etc/vrouter/tls/tls.crt + tls.key (the key names of a Kubernetes TLS Secret) and the admin
# endpoints on 9090.

FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/setup scripts/setup
RUN scripts/setup --build
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake cmake
COPY proto proto
COPY router router
# VROUTER_GIT_COMMIT: the build context has no .git (see .dockerignore); pass --build-arg.
ARG VROUTER_GIT_COMMIT=unknown
RUN cmake --preset release -DVROUTER_BUILD_TESTS=OFF -DVROUTER_BUILD_BENCH=OFF \
      -DVROUTER_GIT_COMMIT_OVERRIDE="${VROUTER_GIT_COMMIT}" \
 && cmake --build --preset release --target vrouter \
 && strip --strip-unneeded build/release/router/vrouter

# The Janus agent (agents/janus), an image of its own: one runs beside each Janus.
#   podman build --pull=never --target janus-agent -t vrouter-janus-agent .
FROM debian:bookworm-slim AS janus-agent
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-websockets python3-jwt \
      ca-certificates tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc /usr/share/man \
 && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin agent
COPY agents/janus/vrouter-janus-agent /opt/vrouter-janus-agent/
COPY agents/janus/vrouter_janus_agent /opt/vrouter-janus-agent/vrouter_janus_agent
USER 10002:10002
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/vrouter-janus-agent/vrouter-janus-agent"]

# The router (the default target: the last stage).
FROM debian:bookworm-slim
COPY scripts/setup /tmp/setup
RUN /tmp/setup --runtime \
 && apt-get install -y -qq --no-install-recommends tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /tmp/setup /usr/share/doc /usr/share/man \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin vrouter
COPY --from=build /src/build/release/router/vrouter /usr/local/bin/vrouter
USER 10001:10001
ENV VROUTER_TLS_LISTEN=0.0.0.0:8443 \
    VROUTER_TLS_CERT=/etc/vrouter/tls/tls.crt \
    VROUTER_TLS_KEY=/etc/vrouter/tls/tls.key \
    VROUTER_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8443 9090
# No curl in the image: bash's /dev/tcp asks /healthz (200 while the process serves).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/vrouter"]
