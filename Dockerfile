# portstorm image (README: "Install" and "On Kubernetes, step by step").
#   docker build --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) -t portstorm:v0.1.0 .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (TARGETOS/TARGETARCH are set by buildx).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
# Set by BuildKit (the default builder) for the platform being built; empty (this machine's) otherwise.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=""
ARG COMMIT=""
ARG DATE=""
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A static binary (CGO_ENABLED=0): the runtime image has no libc.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/portstorm ./cmd/portstorm

# distroless static, nonroot variant: no shell, no package manager, user 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portstorm /usr/local/bin/portstorm
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# A run writes results/ under the working folder unless --out says where: mount a volume writable by
# uid 65532 and name it (docker run -v $PWD:/w -w /w ... run plan.yaml).
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/portstorm"]
CMD ["--help"]
