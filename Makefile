# Ferry — make targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
# go.podman.io/image/v5: use the pure-Go OpenPGP mechanism instead of gpgme
# (cgo). We import only the transports we need, so no storage stub tags.
GO_TAGS := containers_image_openpgp
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/ferry-k8s/ferry/internal/version.Version=$(VERSION)
FUZZTIME ?= 30s
# Static binaries, and no C toolchain needed for tests (go.podman.io/image
# would otherwise compile go-sqlite3 from C for its blob-info cache).
export CGO_ENABLED := 0
EXAMPLE_DIR ?= _example
# A bundle's `created` is SOURCE_DATE_EPOCH, and it is valid for its spec's
# expiresAfter (365 days by default) from then (docs/validity.md). Unless set,
# it is the last commit's time: the same commit builds the same ISO on every
# machine, and a bundle built from a fresh checkout is valid for a year from
# about its build day. Outside a git checkout: now.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
# The example bundle keeps a fixed time, its key's creation (2026-01-01): the
# example ISO is byte-identical on every machine and at every commit, which
# is what it shows. Its spec's expiresAfter (36500d) ends in 2125, after the
# project's lifetime, so it never expires under a test; its key is made from
# fixed, public entropy, so that long validity vouches for nothing.
EXAMPLE_SOURCE_DATE_EPOCH := 1767225600

.PHONY: help build test unit lint fuzz example bundle validity-check bench bench-serve bench-upstream bench-rollout e2e deps clean conformance vagrant-up vagrant-upgrade vagrant-check

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## static bin/builder and bin/installer
	$(GO) build -trimpath -tags '$(GO_TAGS)' -ldflags '$(LDFLAGS)' -o bin/ ./builder/cmd/builder ./installer/cmd/installer

test: lint ## every test tier this machine can run (unit + integration with real gpg, dnf, rpm, xorriso, skopeo)
	$(GO) test -tags '$(GO_TAGS)' -count=1 -timeout 40m ./...

unit: ## the tests with -short, which skips TestMultiExtentReal (a 4.5 GiB ISO) and the two 500-node TestRolloutScale runs, and kills TestRolloutKilled 5 times instead of 20 (`make test` runs them all)
	$(GO) test -tags '$(GO_TAGS)' -short ./...

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(GO_TAGS)' ./...
	$(GO) vet -tags 'e2e $(GO_TAGS)' ./e2e/...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags '$(GO_TAGS)' ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags 'e2e $(GO_TAGS)' ./e2e/...

fuzz: ## run every fuzz target for FUZZTIME each (.ci/fuzz.sh)
	GO='$(GO)' GO_TAGS='$(GO_TAGS)' FUZZTIME='$(FUZZTIME)' bash .ci/fuzz.sh

example: build ## build and verify the example bundle from generated fixtures
	$(GO) run -tags '$(GO_TAGS)' ./internal/example/mkexample $(EXAMPLE_DIR)
	bin/builder build --spec $(EXAMPLE_DIR)/bundle.yaml --output $(EXAMPLE_DIR)/example-1.0.0.iso \
	  --signing-key $(EXAMPLE_DIR)/release.key.asc --installer bin/installer --source-date-epoch $(EXAMPLE_SOURCE_DATE_EPOCH)
	bin/installer verify --iso $(EXAMPLE_DIR)/example-1.0.0.iso --keyring $(EXAMPLE_DIR)/release.pub.asc

validity-check: build ## the bundles of `make example` and `make bundle` 400 days on: the example valid, the default bundle expired until `builder extend` (.ci/validity.sh)
	EXAMPLE_DIR='$(EXAMPLE_DIR)' BUNDLE_DIR='$(BUNDLE_DIR)' bash .ci/validity.sh

BUNDLE_DIR ?= _bundle
KUBERNETES_VERSION ?=
bundle: build ## the default bundle: Kubernetes built from source, valid 365 days from SOURCE_DATE_EPOCH (default: the last commit's time; KUBERNETES_VERSION=v1.35.4 for another)
	mkdir -p $(BUNDLE_DIR)
	test -f $(BUNDLE_DIR)/release.key.asc || bin/builder key generate --name "Ferry Release" --email release@ferry.invalid \
	  --output $(BUNDLE_DIR)/release.key.asc --public-output $(BUNDLE_DIR)/release.pub.asc
	bin/builder build --default $(if $(KUBERNETES_VERSION),--kubernetes-version $(KUBERNETES_VERSION)) \
	  --output $(BUNDLE_DIR)/ferry-kubernetes.iso --signing-key $(BUNDLE_DIR)/release.key.asc --installer bin/installer
	bin/installer verify --iso $(BUNDLE_DIR)/ferry-kubernetes.iso --keyring $(BUNDLE_DIR)/release.pub.asc

bench: build ## builder vs skopeo+createrepo_c+xorriso, verify vs sha256sum (see docs/performance.md)
	bash bench/build.sh

bench-serve: build ## installer serve vs distribution registry vs nginx, TLS on loopback (see docs/performance.md)
	bash bench/serve.sh

bench-upstream: build ## builder lock+build from a yum repo and a registry vs dnf download --resolve + skopeo (see docs/performance.md)
	bash bench/upstream.sh

bench-rollout: ## roll-out orchestration overhead on 500 kwok nodes with a worker's real per-node work, 30 s (about 15 minutes; see docs/performance.md)
	set -o pipefail; FERRY_ROLLOUT_WORK=30s $(GO) test -tags '$(GO_TAGS)' -count=1 -timeout 60m -v -run 'TestRolloutScale/500-' ./installer/rollout/ | grep -E 'FIGURES|BREAKDOWN|^(ok|FAIL|---|panic)'

e2e: ## end-to-end suites on systemd-nspawn nodes behind an air-gapped bridge (root; E2E_RUN=regex)
	$(GO) test -tags 'e2e $(GO_TAGS)' -count=1 -timeout 40m ./e2e/... $(if $(E2E_RUN),-run '$(E2E_RUN)')

deps: ## install what the tests need (Debian 12, as root; bsdtar, 7z and isoinfo read the ISO attack images in ./iso)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  ca-certificates git make gnupg xorriso skopeo dnf rpm createrepo-c coreutils bc \
	  systemd containerd nginx debootstrap systemd-container iptables openssl \
	  gcc libc6-dev libseccomp-dev umoci runc dnf-plugins-core zstd vagrant shellcheck \
	  nftables iproute2 libarchive-tools p7zip-full genisoimage

VAGRANT ?= vagrant
vagrant-up: ## evaluation cluster in VMs from an ISO (ISO=ferry.iso [KEYRING=release.pub.asc] [PROVIDER=libvirt|virtualbox]; see vagrant/README.md)
	@test -n "$(ISO)" || { echo "usage: make vagrant-up ISO=path/to/ferry.iso [KEYRING=path/to/release.pub.asc]" >&2; exit 2; }
	@test -f "$(ISO)" || { echo "vagrant-up: ISO $(ISO): no such file" >&2; exit 2; }
	cd vagrant && FERRY_ISO='$(abspath $(ISO))' $(if $(KEYRING),FERRY_KEYRING='$(abspath $(KEYRING))') \
	  $(VAGRANT) up --no-parallel $(if $(PROVIDER),--provider '$(PROVIDER)')

vagrant-upgrade: ## upgrade the vagrant cluster: copy ISO=new.iso to the bootstrap VM, run installer upgrade --iso
	@test -n "$(ISO)" || { echo "usage: make vagrant-upgrade ISO=path/to/new.iso" >&2; exit 2; }
	@test -f "$(ISO)" || { echo "vagrant-upgrade: ISO $(ISO): no such file" >&2; exit 2; }
	cd vagrant && $(VAGRANT) upload '$(abspath $(ISO))' /home/vagrant/ferry-upgrade.iso cp1
	cd vagrant && $(VAGRANT) ssh cp1 -c 'sudo bash /vagrant/scripts/upgrade.sh /home/vagrant/ferry-upgrade.iso'

vagrant-check: ## vagrant validate (dummy ISO, no provider needed) and shellcheck of vagrant/scripts
	cd vagrant && FERRY_ISO=/nonexistent/ferry-check.iso $(VAGRANT) validate --ignore-provider
	shellcheck --external-sources vagrant/scripts/*.sh

clean: ## remove build output
	rm -rf bin $(EXAMPLE_DIR) $(BUNDLE_DIR)

conformance: ## official OCI distribution-spec conformance (pull) against the registry; needs OCI_CONFORMANCE_SRC (its source)
	$(GO) test -tags 'conformance $(GO_TAGS)' -count=1 -run OfficialConformance -v ./images/registry/
