#!/usr/bin/env bash
# install-check.sh: `make install` into a scratch DESTDIR with PREFIX=/usr, then build the C
# example from that tree with pkg-config alone and run it against the testbed. Also checks
# the installed layout: versioned .so + symlinks, soname, no rpath, header, .a, .pc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
make --no-print-directory install DESTDIR="$root" PREFIX=/usr >/dev/null
lib=$root/usr/lib
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
pass=0 failed=0
check() { if "$@"; then pass=$((pass + 1)); else echo "install-check FAILED: $*"; failed=$((failed + 1)); fi; }
check test -f "$lib/libmailsrv.so.$version"
check test -L "$lib/libmailsrv.so"
check test -f "$lib/libmailsrv.a"
check test -f "$root/usr/include/mailsrv.h"
check test -f "$lib/pkgconfig/mailsrv.pc"
soname=$(readelf -d "$lib/libmailsrv.so.$version" | sed -n 's/.*soname: \[\(.*\)\]/\1/p')
check test -L "$lib/$soname"
check test -z "$(readelf -d "$lib/libmailsrv.so.$version" | grep -E 'RPATH|RUNPATH' || true)"
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
flags=$(pkg-config --cflags --libs mailsrv)
check test "$(pkg-config --modversion mailsrv)" = "$version"
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${CPPFLAGS:-} ${CFLAGS:-} c-tests/example_discover.c $flags ${LDFLAGS:-} -o "$root/example"
check test -z "$(readelf -d "$root/example" | grep -E 'RPATH|RUNPATH' || true)"
out=$(LD_LIBRARY_PATH=$lib "$root/example" joe@example.com "$MAILSRV_TEST_NS" "$MAILSRV_TEST_ANCHOR")
echo "$out" | sed 's/^/  /'
check grep -q "read mail with imaps at mail.example.net" <<<"$out"
check grep -q "NEEDED.*\[$soname\]" <<<"$(readelf -d "$root/example")"
echo "install-check: $pass passed, $failed failed"
[ "$failed" = 0 ]
