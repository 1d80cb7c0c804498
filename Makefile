# incus-access: `make demo` runs the main job against the local lab; `make test` tests it all.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

MODULES   := $(notdir $(patsubst %/,%,$(wildcard modules/*/)))
ARCHES    := amd64 arm64
# every module in one multi-call binary per architecture (modules/main.go), cached on the
# targets by the executor (plugins/plugin_utils/executor.py)
MULTI     := incus-access-modules
# the repository is also the collection incus_access.fleet (the action plugins import the
# executor by that name): build/collections puts it on ansible.cfg's collections_path
COLLECTION_LINK := build/collections/ansible_collections/incus_access/fleet
HOST_ARCH := $(shell go env GOARCH)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w"
VENV      := .venv
ACTIVATE  := source $(VENV)/bin/activate
LAB_ENV   := eval "$$(lab/lab.sh env)"

.PHONY: all build venv deps setup test test-go test-py test-molecule lint lab-up lab-down demo bench clean collection collection-install sanity

all: build

# One static multi-call binary per architecture under bin/linux-<arch>/ (with its sha256,
# which the executor reads instead of hashing on every task); plugins/modules/<module>
# links the host's (Ansible's stock path and ansible-doc need a file per module there),
# beside its sidecar doc.
build:
	@for a in $(ARCHES); do \
	  tools/with-progress.sh "build: modules linux/$$a" "1-2 min the first time, seconds afterwards" \
	    env CGO_ENABLED=0 GOOS=linux GOARCH=$$a go build $(GOFLAGS_BUILD) -o bin/linux-$$a/$(MULTI) ./modules || exit 1; \
	  (cd bin/linux-$$a && sha256sum $(MULTI) >$(MULTI).sha256); \
	done
	@for m in $(MODULES); do \
	  ln -f bin/linux-$(HOST_ARCH)/$(MULTI) plugins/modules/$$m; \
	  install -m 0644 modules/$$m/$$m.yml plugins/modules/$$m.yml; done
	@mkdir -p $(dir $(COLLECTION_LINK)) && ln -sfn ../../../.. $(COLLECTION_LINK)

# The workstation helper (seed 000's client side), a static binary per architecture:
# build/linux-<arch>/incus-client-certs, copied to a workstation as it is.
CLIS := incus-client-certs
.PHONY: cli
build: cli
cli:
	@for c in $(CLIS); do for a in $(ARCHES); do \
	  tools/with-progress.sh "build: $$c linux/$$a" "1-2 min the first time, seconds afterwards" \
	    env CGO_ENABLED=0 GOOS=linux GOARCH=$$a go build $(GOFLAGS_BUILD) -o build/linux-$$a/$$c ./cmd/$$c || exit 1; \
	done; done

# The collection incus_access.fleet as users install it: both architectures' binaries
# inside, built by `ansible-galaxy collection build` (galaxy.yml) into dist/.
COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
COLLECTION_TARBALL := dist/incus_access-fleet-$(COLLECTION_VERSION).tar.gz
# where molecule's scenario finds the installed collection (and nothing else)
COLLECTION_INSTALLED := build/installed
collection: build venv
	tools/build-collection.sh

collection-install: collection
	rm -rf $(COLLECTION_INSTALLED)
	$(VENV)/bin/ansible-galaxy collection install --force -p $(COLLECTION_INSTALLED) $(COLLECTION_TARBALL)

# ansible-test sanity on the built collection (plus tests/sanity, which is not shipped),
# in virtualenvs of its own (no container runtime here; tools/sanity.sh).
sanity: collection
	tools/sanity.sh

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	@echo "[venv] Ansible, molecule, ansible-lint, pytest into $(VENV)"
	@python3 -m venv $(VENV)
	@tools/with-progress.sh venv "30-90 s" sh -c '$(VENV)/bin/pip install -q --upgrade pip && $(VENV)/bin/pip install -q -r requirements.txt'
	@touch $@

# the system packages (apt; quick when present)
deps:
	lab/deps.sh

# installs the system packages it needs itself (lab/deps.sh), building the Debian image and
# fetching OpenBao while apt works
lab-up:
	lab/lab.sh up

# the Go build, the venv and the lab (apt first) need nothing from each other: side by side
# from the start; each keeps saying what it does (tools/with-progress.sh)
setup:
	$(MAKE) -j3 build venv lab-up ARCHES="$(ARCHES)"

lab-down:
	lab/lab.sh down

lint: build venv
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet ./...
	$(ACTIVATE) && ansible-lint

# Unit tests and tests against the real lab daemons (LAB_REQUIRED: a missing lab fails).
test-go: build
	$(LAB_ENV) && LAB_REQUIRED=1 go test -count=1 -p 2 ./...

test-py: collection
	$(LAB_ENV) && $(ACTIVATE) && LAB_REQUIRED=1 pytest -q tests

test-molecule: collection-install
	$(LAB_ENV) && $(ACTIVATE) && molecule test --all

test: setup
	$(MAKE) lint test-go test-py test-molecule fuzz-ci

# the demo needs only this machine's architecture (make build makes both)
demo: ARCHES := $(HOST_ARCH)
demo: export LAB_PROFILE := demo
demo: setup
	$(LAB_ENV) && $(ACTIVATE) && lab/demo.sh

# Fuzzing: each Go fuzz target for FUZZTIME (make fuzz: 60 s; make fuzz-ci, part of make
# test: 5 s), then the connection plugin's property tests (hypothesis). A crash leaves
# its input under the package's testdata/fuzz/: commit it with the fix (a unit test).
FUZZ_TARGETS := ./internal/ansible:FuzzArgsDecoder ./internal/incustrust:FuzzParseCertificate \
  ./internal/libvirtcert:FuzzParseCerts ./internal/libvirtcert:FuzzDNBuilder ./internal/libvirtcert:FuzzPrintedDN \
  ./internal/libvirtcert:FuzzVaultSignResponse ./internal/sshca:FuzzSSHDConfigPlan ./internal/sshca:FuzzVaultCAResponse
FUZZTIME ?= 60s
HYPOTHESIS_PROFILE ?= fuzz
.PHONY: fuzz fuzz-ci
fuzz: venv
	@for t in $(FUZZ_TARGETS); do echo "== $$t ($(FUZZTIME))"; \
	  go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; done
	$(ACTIVATE) && HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) pytest -q tests/test_ssh2incus_property.py

fuzz-ci: FUZZTIME = 5s
fuzz-ci: HYPOTHESIS_PROFILE = ci
fuzz-ci: fuzz

bench: build venv lab-up
	$(LAB_ENV) && $(ACTIVATE) && bench/run.sh

clean:
	rm -rf bin build dist $(addprefix plugins/modules/,$(MODULES)) $(addsuffix .yml,$(addprefix plugins/modules/,$(MODULES)))
