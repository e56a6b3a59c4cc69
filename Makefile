# mailsrv — build, test, install. `make demo` is the walk-through; `make check` runs everything.
#
# Install variables: PREFIX, DESTDIR, LIBDIR, INCLUDEDIR, BINDIR, PKGCONFIGDIR, MANDIR.
# Tests use the debug build with the test-hooks feature (one build for Rust, C and Python);
# installs and the demo use the release build, which never has test hooks.

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
BINDIR       ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=

CARGO   ?= cargo
CC      ?= cc
PYTHON  ?= python3
# mypy: the PYTHON's own, else Debian's python3-mypy (testbed/install.sh) under /usr/bin/python3.
MYPY    ?= $(shell $(PYTHON) -m mypy --version >/dev/null 2>&1 && echo "$(PYTHON) -m mypy" || echo "/usr/bin/python3 -m mypy")
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR   := $(word 1,$(subst ., ,$(VERSION)))
MINOR   := $(word 2,$(subst ., ,$(VERSION)))
# 0.x: each minor release may break the ABI, so the soname carries it (build.rs sets it).
ABI     := $(if $(filter 0,$(MAJOR)),0.$(MINOR),$(MAJOR))
SONAME  := libmailsrv.so.$(ABI)

DEBUG_DIR   := target/debug
RELEASE_DIR := target/release
TEST_FEATURES := --features test-hooks
C_WARN  := -std=c11 -Wall -Wextra -Wpedantic -Werror
C_TESTS := $(patsubst c-tests/%.c,c-tests/build/%,$(wildcard c-tests/test_*.c))

.PHONY: fuzz deps all header check-header check-symbols lint build-test rust-tests c-tests py-tests \
        test-suites check install uninstall demo install-check clean py-typecheck

# System packages for the testbed (one apt-get, skipped when present; python3-mypy among them) and pytest.
deps:
	testbed/install.sh
	@$(PYTHON) -m pytest --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q pytest

all:
	$(CARGO) build --release
	ln -sf libmailsrv.so $(RELEASE_DIR)/$(SONAME)

# build.rs regenerates include/mailsrv.h from src/ffi with cbindgen on every build.
header:
	$(CARGO) build

check-header: build-test
	git diff --exit-code -- include/mailsrv.h || \
	  { echo "include/mailsrv.h is stale: commit the regenerated header" >&2; exit 1; }

check-symbols: build-test
	scripts/check-symbols.sh $(DEBUG_DIR)/libmailsrv.so include/mailsrv.h $(SONAME) $(VERSION)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets $(TEST_FEATURES) -- -D warnings

build-test:
	$(CARGO) build $(TEST_FEATURES)
	ln -sf libmailsrv.so $(DEBUG_DIR)/$(SONAME)

rust-tests: build-test
	$(CARGO) test $(TEST_FEATURES)

# A C test may need more libraries: test_own_tls is a client with its own OpenSSL.
C_TEST_LIBS_test_own_tls := -lssl -lcrypto

c-tests/build/%: c-tests/%.c c-tests/harness.h include/mailsrv.h build-test
	@mkdir -p c-tests/build
	$(CC) $(C_WARN) $(CPPFLAGS) $(CFLAGS) -DMAILSRV_TEST_HOOKS -Iinclude -Ic-tests $< -o $@ \
	  -L$(DEBUG_DIR) -lmailsrv $(C_TEST_LIBS_$*) -pthread -Wl,-rpath,$(abspath $(DEBUG_DIR)) $(LDFLAGS)

c-tests: $(C_TESTS)
	@set -e; for t in $(C_TESTS); do echo "== $$t"; $$t; done

py-tests: build-test
	MAILSRV_LIBRARY=$(abspath $(DEBUG_DIR))/libmailsrv.so $(PYTHON) -m pytest -q bindings/python/tests

# Everything that needs the servers, against one testbed.
test-suites: rust-tests c-tests py-tests install-check deb-check hardening-suites

# mypy --strict over the Python package and its examples (no library or testbed needed).
py-typecheck:
	cd bindings/python && $(MYPY) --strict --python-version 3.9 mailsrv examples

check: deps lint check-header check-symbols man-check py-typecheck
	testbed/run.sh $(MAKE) --no-print-directory test-suites

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(RELEASE_DIR)/libmailsrv.so $(DESTDIR)$(LIBDIR)/libmailsrv.so.$(VERSION)
	ln -sf libmailsrv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmailsrv.so
	install -m 0644 $(RELEASE_DIR)/libmailsrv.a $(DESTDIR)$(LIBDIR)/libmailsrv.a
	install -m 0644 include/mailsrv.h $(DESTDIR)$(INCLUDEDIR)/mailsrv.h
	install -m 0755 $(RELEASE_DIR)/mailsrv $(DESTDIR)$(BINDIR)/mailsrv
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' mailsrv.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/mailsrv.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmailsrv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libmailsrv.so $(DESTDIR)$(LIBDIR)/libmailsrv.a \
	      $(DESTDIR)$(INCLUDEDIR)/mailsrv.h $(DESTDIR)$(BINDIR)/mailsrv $(DESTDIR)$(PKGCONFIGDIR)/mailsrv.pc

# Installs into a scratch DESTDIR and builds the C example from it with pkg-config only.
install-check: all
	scripts/install-check.sh

demo: deps all
	testbed/run.sh scripts/demo.sh

# Fuzzing on demand (not part of check): each target for FUZZ_SECONDS, growing its corpus.
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := san address anchor history srv_order starttls
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

clean:
	$(CARGO) clean
	rm -rf c-tests/build

# Area-specific targets (sanitizers, packaging, benchmarks, rustls-ffi) live in mk/*.mk.
-include mk/*.mk
