# Minimal two-stage image (the deploy issue hardens it: read-only root, healthcheck, tini, smoke).
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/setup scripts/setup
RUN scripts/setup
COPY . .
RUN cmake --preset release -DVROUTER_BUILD_TESTS=OFF -DVROUTER_BUILD_BENCH=OFF \
 && cmake --build --preset release --target vrouter

FROM debian:bookworm-slim
COPY scripts/setup /tmp/setup
RUN /tmp/setup --runtime && rm -rf /var/lib/apt/lists/* /tmp/setup \
 && useradd --system --uid 10001 vrouter
COPY --from=build /src/build/release/router/vrouter /usr/local/bin/vrouter
USER vrouter
EXPOSE 8080 8443 9090
ENTRYPOINT ["/usr/local/bin/vrouter"]
CMD ["--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:9090"]
