# Production image of the `mall` binary.
#
# Not built in this project's CI: the development and CI machines have no Docker engine (see
# docs/adr/0012-scripts-not-docker.md). Build elsewhere with:
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse --short HEAD) -t mall .
#
# The defaults are built in (configs/mall.yaml is embedded) and are production's (ADR 0027);
# configure Mall with MALL_* variables or a mounted file (`--config /etc/mall/mall.yaml`):
# MALL_DB_MAIN, MALL_DB_SHARDS, MALL_REDIS_ADDR, MALL_KAFKA_BROKERS, and the secrets
# MALL_AUTH_ENCRYPTION_KEY, MALL_LIVE_RTMP_SECRET, an Ed25519 key in MALL_AUTH_JWT_KEYS_DIR;
# MALL_HTTP_OPS_ADDR or MALL_HTTP_OPS_TOKEN for /metrics.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/mall ./cmd/mall

# distroless/static: CA certificates and tzdata, no shell, runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mall /mall
USER nonroot:nonroot
# Relative paths in the defaults (.local/search.bleve, .local/jwt) resolve here, writable by nonroot;
# mount volumes or set MALL_SEARCH_BLEVE_PATH / MALL_AUTH_JWT_KEYS_DIR in production.
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/mall"]
CMD ["serve"]
