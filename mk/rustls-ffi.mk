# rustls-ffi integration (issue 9): mailsrv_rustls_verify_server_cert, a rustls-ffi verifier
# callback (src/ffi/rustls_verifier.rs; docs/rustls-ffi.md).
#
#   make check-rustls-ffi   offline: the callback and mailsrv.h agree with the pinned
#                           release's rustls.h; no rustls_* symbol leaks from libmailsrv.so
#   make rustls-ffi-tests   the C client against the testbed's dovecot; run it under the
#                           testbed: testbed/run.sh make rustls-ffi-tests
#   make valgrind-rustls-ffi  the same client under valgrind (under the testbed too)
#
# `make check` runs rustls-ffi-tests with the other suites (test-suites, inside the testbed).
#
# librustls is built from the same rustls-ffi crate mailsrv depends on (Cargo.lock), offline,
# by c-tests/rustls-ffi/build-librustls.sh: `cargo rustc -p rustls-ffi --crate-type staticlib`
# in mailsrv's target directory, so it reuses the rustls/ring/webpki artifacts of build-test
# and compiles only rustls-ffi itself (~2-5 s on 2 cores; a standalone copy takes ~70 s).

RUSTLS_FFI_OUT  := target/rustls-ffi
RUSTLS_FFI_LIB  := $(RUSTLS_FFI_OUT)/lib/librustls.a
RUSTLS_FFI_TEST := c-tests/build/rustls-ffi/test_rustls_ffi

.PHONY: rustls-ffi-lib check-rustls-ffi rustls-ffi-tests valgrind-rustls-ffi

test-suites: rustls-ffi-tests

# Always asks cargo (a no-op when fresh), so a changed Cargo.lock is picked up.
rustls-ffi-lib: build-test
	c-tests/rustls-ffi/build-librustls.sh $(RUSTLS_FFI_OUT)

check-rustls-ffi: rustls-ffi-lib
	scripts/check-rustls-ffi.sh $(DEBUG_DIR)/libmailsrv.so include/mailsrv.h $(RUSTLS_FFI_OUT)/include/rustls.h

# DEFINE_RING: rustls.h declares rustls_ring_crypto_provider() only then (mailsrv pins the
# ring build of rustls-ffi). librustls.a is linked statically, libmailsrv.so dynamically: the
# two Rust copies do not see each other (libmailsrv exports only mailsrv_*).
$(RUSTLS_FFI_TEST): c-tests/rustls-ffi/test_rustls_ffi.c c-tests/harness.h include/mailsrv.h rustls-ffi-lib
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) -DDEFINE_RING -Iinclude -I$(RUSTLS_FFI_OUT)/include -Ic-tests $< -o $@ \
	  -L$(DEBUG_DIR) -lmailsrv $(RUSTLS_FFI_LIB) $$(cat $(RUSTLS_FFI_OUT)/native-libs) \
	  -Wl,-rpath,$(abspath $(DEBUG_DIR))

rustls-ffi-tests: check-rustls-ffi $(RUSTLS_FFI_TEST)
	@echo "== $(RUSTLS_FFI_TEST)"
	$(RUSTLS_FFI_TEST)

# The client's own rustls (librustls.a) needs one more suppression than libmailsrv's; see
# c-tests/rustls-ffi/valgrind.supp.
valgrind-rustls-ffi: $(RUSTLS_FFI_TEST)
	valgrind --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=1 \
	  --show-leak-kinds=definite,possible --num-callers=120 \
	  --suppressions=$(abspath c-tests/valgrind.supp) \
	  --suppressions=$(abspath c-tests/rustls-ffi/valgrind.supp) \
	  $(RUSTLS_FFI_TEST)
