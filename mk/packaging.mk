# Packaging (issue 6 item 3): man pages, build flags, offline builds, a Debian-style split.
#
#   make install            also installs docs/man/mailsrv.1 and libmailsrv.3 into $(MANDIR)
#                           (install-man, hooked in below); `make uninstall` removes them
#   make man-check          both pages render without warnings; every subcommand and option
#                           of `mailsrv help` is in mailsrv.1; every mailsrv_* function and
#                           MAILSRV_* name in libmailsrv.3 and docs/integration.md exists in
#                           include/mailsrv.h
#   make vendor-check       `cargo vendor` into a temp dir, then a build of a copy of the tree
#                           with `--offline --frozen`, an empty CARGO_HOME and a
#                           .cargo/config.toml pointing at the vendored crates only
#   make deb-check          `make install DESTDIR` into a temp dir, split into libmailsrv0.1
#                           (the .so.N), libmailsrv-dev (header, .so link, .a, .pc, man3) and
#                           mailsrv-tools (CLI, man1), the split checked and dpkg-deb built;
#                           then a C program built with pkg-config against that tree only,
#                           run with only the runtime package, also linked statically from
#                           the .a, and a Python script using the pip-installed bindings on
#                           the tree's .so; on the DNS testbed (started unless already in the
#                           environment)
#   make py-install-check   `pip install --no-index --no-build-isolation bindings/python` into
#                           a temp venv; the installed package loads MAILSRV_LIBRARY only
#   make buildflags-check   CFLAGS and LDFLAGS reach the C compiled into the library (ring)
#                           and every link (.so, CLI, C programs): a release build in its own
#                           target dir with marker flags, inspected with readelf
#   make packaging-check    man-check, py-install-check, deb-check, vendor-check
#
# Build flags: CFLAGS reaches the C that cargo compiles through the environment (the cc
# crate reads it; make exports command-line variables). LDFLAGS is turned into rustc
# link arguments here, so `make LDFLAGS="-Wl,-z,relro -Wl,-z,now"` (dpkg-buildflags)
# applies to libmailsrv.so and the mailsrv CLI too.

MANDIR ?= $(PREFIX)/share/man
MAN1   := docs/man/mailsrv.1
MAN3   := docs/man/libmailsrv.3

ifneq ($(strip $(LDFLAGS)),)
export RUSTFLAGS := $(strip $(RUSTFLAGS) $(foreach f,$(LDFLAGS),-C link-arg=$(f)))
endif

.PHONY: install-man uninstall-man man-check vendor-check deb-check py-install-check \
        buildflags-check packaging-check

install: install-man
uninstall: uninstall-man

install-man:
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/mailsrv.1
	install -m 0644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/libmailsrv.3

uninstall-man:
	rm -f $(DESTDIR)$(MANDIR)/man1/mailsrv.1 $(DESTDIR)$(MANDIR)/man3/libmailsrv.3

man-check: all
	scripts/man-check.sh $(RELEASE_DIR)/mailsrv

vendor-check:
	scripts/vendor-check.sh

deb-check: all
	@if [ -n "$$MAILSRV_TEST_NS" ]; then scripts/deb-check.sh; \
	 else TESTBED_PARTS=dns testbed/run.sh scripts/deb-check.sh; fi

py-install-check: all
	MAILSRV_LIBRARY=$(abspath $(RELEASE_DIR))/libmailsrv.so scripts/py-install-check.sh

buildflags-check:
	scripts/buildflags-check.sh

packaging-check: man-check py-install-check deb-check vendor-check
