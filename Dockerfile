# syntax=docker/dockerfile:1
# The `aegis` gateway. Two stages: the build (the Rust toolchain, the lockfile as is) and a
# runtime with the binary, CA certificates and nothing else, running as a non-root user.
#
#   docker build -t aegis:0.1.0 .
#   docker run -p 8080:8080 -v $PWD/aegis.toml:/etc/aegis/aegis.toml:ro aegis:0.1.0

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p aegis-gateway --bin aegis \
 && strip target/release/aegis

FROM debian:bookworm-20251117-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/aegis --create-home aegis
COPY --from=build /src/target/release/aegis /usr/local/bin/aegis
USER 10001:10001
WORKDIR /var/lib/aegis
EXPOSE 8080
# Ready means: not shutting down, the database answers and is migrated.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["aegis", "health", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["aegis"]
CMD ["serve", "--config", "/etc/aegis/aegis.toml", "--listen", "0.0.0.0:8080"]
