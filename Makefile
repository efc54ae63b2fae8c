# Release builds with the Go toolchain alone (README: "Install"). `make release` cross-compiles
# static binaries (CGO_ENABLED=0) for linux/amd64 and linux/arm64 into dist/ with a SHA256SUMS file.
# Tags are v0.x.y (CHANGELOG.md); VERSION defaults to `git describe` of the checkout.

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
# The commit's time in UTC: the same checkout builds the same bytes.
DATE      ?= $(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null)
DIST      ?= dist
PLATFORMS ?= linux/amd64 linux/arm64
GO        ?= go
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

.PHONY: build release clean

# build: a binary for this machine, stamped like a release one.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o portstorm ./cmd/portstorm

release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "building $(DIST)/portstorm_$(VERSION)_$${os}_$${arch}"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)" \
			-o $(DIST)/portstorm_$(VERSION)_$${os}_$${arch} ./cmd/portstorm; \
	done
	$(GO) build -o $(DIST)/.sha256sums ./internal/release/sha256sums
	cd $(DIST) && ./.sha256sums portstorm_* > SHA256SUMS && rm .sha256sums
	@cat $(DIST)/SHA256SUMS

clean:
	rm -rf $(DIST) portstorm
