# Stowage: `make help` lists the targets.
SHELL        := bash
.SHELLFLAGS  := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
OUT      ?= out
FUZZTIME ?= 30s
BENCHTIME ?= 1x
# Tests that boot QEMU guests live in files tagged vmtest and are named
# TestVM*. They run one package at a time: two TCG guests on two cores
# starve each other.
VMTEST_TIMEOUT ?= 40m
# The unit tests of every package compete for 2 cores (image's
# TestBuildReproducible builds the image twice): far above go test's
# default 10 minutes per package.
TEST_TIMEOUT ?= 30m

# Every Debian package the project needs, for tests, the image and the lab.
DEBS := qemu-system-x86 qemu-utils linux-image-amd64 smartmontools fio \
	ipxe ipxe-qemu ovmf nvme-cli sg3-utils dnsmasq iproute2 cpio kmod \
	busybox-static gdisk e2fsprogs util-linux xz-utils

# Daemons and CLIs, built static for the image.
CMDS := $(shell $(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... 2>/dev/null)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install the Debian packages the project needs (idempotent, as root)
	@missing=""; \
	for p in $(DEBS); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all $(words $(DEBS)) packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "deps: missing:$$missing; run 'make deps' as root" >&2; exit 1; fi; \
	echo "deps: installing:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq; \
	apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	echo "deps: installed:$$missing"

.PHONY: build
build: ## build every daemon and CLI into out/ (static)
	@mkdir -p $(OUT)/bin
	@if [ -n "$(CMDS)" ]; then CGO_ENABLED=0 $(GO) build -trimpath -o $(OUT)/bin/ $(CMDS); fi
	@ls $(OUT)/bin

.PHONY: image
image: ## build the bootable image into out/image (vmlinuz, initramfs, boot.ipxe, manifest.json)
	$(GO) run ./image/cmd/mkimage -out $(OUT)/image

.PHONY: run
run: deps ## boot a storage node in QEMU: image (cached), 12 drives in out/drives, APIs on 127.0.0.1:9741/9742
	$(GO) run ./image/cmd/mkimage -out $(OUT)/image -cache
	@CGO_ENABLED=0 $(GO) build -o $(OUT)/bin/node ./qemu/cmd/node
	$(OUT)/bin/node -image $(OUT)/image -drives $(OUT)/drives $(RUNFLAGS)

.PHONY: clean-drives
clean-drives: ## wipe the drive images `make run` keeps in out/drives
	rm -rf $(OUT)/drives

.PHONY: lint
lint: ## gofmt, go vet and staticcheck (fails on any finding)
	@bad=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt: these files need formatting:" >&2; echo "$$bad" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags vmtest ./...

.PHONY: test
test: deps lint ## lint, unit tests with -race, then the QEMU and netboot suites
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory test-vm

.PHONY: test-vm
test-vm: deps ## only the suites that boot QEMU guests, one package at a time (verbose: boot times show)
	@# -v so that the VM suites' figures (boot times, inventories) show in a
	@# passing run; the RUN/PAUSE/CONT lines and packages without VM tests
	@# are filtered out, go test's exit status is kept (pipefail).
	$(GO) test -tags vmtest -p 1 -count=1 -v -timeout $(VMTEST_TIMEOUT) -run '^TestVM' ./... 2>&1 | \
		awk '!/^(=== (RUN|PAUSE|CONT|NAME) |testing: warning: no tests to run|ok .*\[no tests to run\]|\?  .*\[no test files\]|PASS$$)/ { print; fflush() }'

.PHONY: fuzz
fuzz: ## run every Fuzz target for FUZZTIME (default 30s) each
	@for p in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz' || true); do \
			echo "fuzz: $$p $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p; \
		done; \
	done

.PHONY: bench
bench: deps ## benchmarks that print ratios against the measured physical limit
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count=1 -timeout 60m ./...

.PHONY: clean
clean: ## remove out/
	rm -rf $(OUT)
