# Hardening (issue 7): the C suite under ASan+UBSan and under valgrind.
#
#   make asan               the C suite built with clang -fsanitize=address,undefined, LSan on,
#                           against a fresh testbed (testbed/run.sh)
#   make valgrind           the C suite (the normal gcc build) under valgrind --leak-check=full
#                           --error-exitcode=1, against a fresh testbed
#   make hardening-suites   both, against the testbed already in the environment (for
#                           `test-suites`, which `check` runs inside testbed/run.sh)
#
# The library itself is the ordinary debug build (Rust, not instrumented): ASan/LSan still see
# every malloc/free it makes (the runtime is linked into the test executable and interposes
# the allocator), UBSan and ASan's instrumentation cover the C side of the ABI.
# Suppressions: c-tests/lsan.supp and c-tests/valgrind.supp, each entry documented there
# (only the never-dropped process-wide runtime); c-tests/asan.supp is the (empty) ASan list.

ASAN_CC       ?= clang
SAN_FLAGS     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g -O1
ASAN_TESTS    := $(patsubst c-tests/%.c,c-tests/build/asan/%,$(wildcard c-tests/test_*.c))
VALGRIND      ?= valgrind
# --child-silent-after-fork: a forked child (c-tests/test_fork.c) has none of the runtime's
# threads, so its leak check would call everything they own lost; the parent is checked in full.
# --num-callers: async stacks are deep, and the suppressions match frames far from the top.
VALGRIND_OPTS := --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=1 \
                 --show-leak-kinds=definite,possible --num-callers=120 --child-silent-after-fork=yes \
                 --suppressions=$(abspath c-tests/valgrind.supp)
# LSan is on (detect_leaks=1); the runtime symbolises with llvm-symbolizer for the suppressions.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:suppressions=$(abspath c-tests/asan.supp) \
           LSAN_OPTIONS=suppressions=$(abspath c-tests/lsan.supp):report_objects=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           ASAN_SYMBOLIZER_PATH=$(shell command -v llvm-symbolizer)

.PHONY: asan valgrind hardening-suites asan-suite valgrind-suite hardening-deps

# clang's sanitizer runtimes are a separate Debian package (libclang-rt-N-dev); valgrind comes
# from testbed/install.sh. Installed here when missing (as root, like testbed/install.sh).
CLANG_MAJOR := $(shell $(ASAN_CC) -dumpversion 2>/dev/null | cut -d. -f1)
hardening-deps:
	@[ -e "$$($(ASAN_CC) -print-file-name=libclang_rt.asan-x86_64.a)" ] || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libclang-rt-$(CLANG_MAJOR)-dev >&2
	@command -v $(VALGRIND) >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind >&2

asan: build-test
	testbed/run.sh $(MAKE) --no-print-directory asan-suite

valgrind: build-test
	testbed/run.sh $(MAKE) --no-print-directory valgrind-suite

hardening-suites: asan-suite valgrind-suite

# Each binary must really carry the sanitizer runtimes (a silently unsanitized build would pass).
c-tests/build/asan/%: c-tests/%.c c-tests/harness.h include/mailsrv.h build-test | hardening-deps
	@mkdir -p c-tests/build/asan
	$(ASAN_CC) $(C_WARN) $(SAN_FLAGS) -DMAILSRV_TEST_HOOKS -Iinclude -Ic-tests $< -o $@ \
	  -L$(DEBUG_DIR) -lmailsrv $(C_TEST_LIBS_$*) -pthread -Wl,-rpath,$(abspath $(DEBUG_DIR))
	@nm $@ | grep -q ' T __asan_init$$' || { echo "$@: the ASan runtime is not linked in" >&2; rm -f $@; exit 1; }
	@nm $@ | grep -q ' T __lsan_do_leak_check$$' || { echo "$@: the LSan runtime is not linked in" >&2; rm -f $@; exit 1; }
	@nm $@ | grep -q ' T __ubsan_handle_' || { echo "$@: the UBSan runtime is not linked in" >&2; rm -f $@; exit 1; }

asan-suite: $(ASAN_TESTS)
	@set -e; t0=$$(date +%s%N); for t in $(ASAN_TESTS); do echo "== asan $$t"; $(SAN_ENV) $$t; done; \
	  echo "asan: C suite in $$(( ($$(date +%s%N) - t0) / 1000000 )) ms"

valgrind-suite: $(C_TESTS)
	@set -e; t0=$$(date +%s%N); for t in $(C_TESTS); do echo "== valgrind $$t"; \
	  $(VALGRIND) $(VALGRIND_OPTS) --log-file=$$t.valgrind.log $$t || { cat $$t.valgrind.log >&2; exit 1; }; \
	  grep -E 'ERROR SUMMARY|definitely lost|possibly lost|suppressed:' $$t.valgrind.log | sed 's/^==[0-9]*== /   /'; done; \
	  echo "valgrind: C suite in $$(( ($$(date +%s%N) - t0) / 1000000 )) ms"
