#!/usr/bin/env bash
# buildflags-check.sh: a distribution's CFLAGS and LDFLAGS reach what is built.
#
# A release build (`make all`) in its own target dir (target/buildflags-check) with marker
# flags added to the usual hardening ones:
#   CFLAGS  += -frecord-gcc-switches -fstack-clash-protection      (the C that cargo compiles,
#              i.e. ring, records its code-generation options in .GCC.command.line; GCC
#              leaves -D options out, so the marker is a harmless hardening option)
#   LDFLAGS += -Wl,--hash-style=both                                (a DT_HASH entry appears)
# then libmailsrv.so and the mailsrv CLI must carry both marks, and a C program built the way
# install-check/deb-check build it ($CC $CPPFLAGS $CFLAGS ... $LDFLAGS) too. Takes a full
# release build the first time (the dir is kept for the next run).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/target/buildflags-check
cflags="-O2 -g0 -frecord-gcc-switches -fstack-clash-protection"
ldflags="-Wl,-z,relro -Wl,-z,now -Wl,--hash-style=both"
pass=0 failed=0
check() { if "$@"; then pass=$((pass + 1)); else echo "buildflags-check FAILED: $*"; failed=$((failed + 1)); fi; }
t0=$(date +%s%N)
make --no-print-directory all CARGO_TARGET_DIR="$dir" RELEASE_DIR="$dir/release" \
    CFLAGS="$cflags" LDFLAGS="$ldflags" >/dev/null
echo "buildflags-check: release build in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
# (grep reads a captured string: `readelf | grep -q` fails under pipefail when grep quits early)
has_hash() { grep -q '(HASH)' <<<"$(readelf -d "$1")"; }
has_cflags() { grep -q -- -fstack-clash-protection <<<"$(readelf -p .GCC.command.line "$1" 2>/dev/null)"; }
check has_hash "$dir/release/libmailsrv.so"
check has_hash "$dir/release/mailsrv"
check has_cflags "$dir/release/libmailsrv.so"
check has_cflags "$dir/release/libmailsrv.a"
check test -z "$(readelf -d "$dir/release/libmailsrv.so" | grep -E 'RPATH|RUNPATH' || true)"
check grep -q BIND_NOW <<<"$(readelf -d "$dir/release/libmailsrv.so")"
# A C program compiled and linked the way the packaging checks do it.
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${CPPFLAGS:-} $cflags -Iinclude \
    c-tests/example_discover.c -L"$dir/release" -lmailsrv $ldflags -o "$dir/example_discover"
check has_hash "$dir/example_discover"
check has_cflags "$dir/example_discover"
echo "buildflags-check: $pass passed, $failed failed"
[ "$failed" = 0 ]
