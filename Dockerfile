# syntax=docker/dockerfile:1
#
# One image with the three programs of the demo stack, each a static binary:
#   /usr/local/bin/vantage-exporter     (default entrypoint, port 9715)
#   /usr/local/bin/vantage-coordinator  (port 9716)
#   /usr/local/bin/demotarget           (port 8080)
#   /usr/local/bin/webhooklogger        (port 5001)
# docker-compose.yml picks the program of each service with entrypoint.

# Keep at least the go directive of go.mod (deploy_test.go checks it).
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w \
      -X github.com/prometheus/common/version.Version=${VERSION} \
      -X github.com/prometheus/common/version.Revision=${REVISION}" \
      -o /out/bin/ \
      ./cmd/vantage-exporter ./cmd/vantage-coordinator ./tools/demotarget ./tools/webhooklogger \
 && mkdir -p /out/state

# distroless: no shell, no package manager; CA certificates and the
# nonroot user (65532) are included.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The coordinator's incident log; a volume mounted here inherits the owner.
COPY --from=build --chown=65532:65532 /out/state /var/lib/vantage
USER 65532:65532
EXPOSE 9715 9716 8080
ENTRYPOINT ["/usr/local/bin/vantage-exporter"]
