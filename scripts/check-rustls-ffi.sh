#!/usr/bin/env bash
# check-rustls-ffi.sh [LIB] [HEADER] [RUSTLS_H]
#
# mailsrv_rustls_verify_server_cert (src/ffi/rustls_verifier.rs) against the rustls-ffi release
# mailsrv pins, offline:
#  1. one release everywhere: Cargo.toml's `=X.Y.Z` pin, Cargo.lock, the Rust constant and
#     include/mailsrv.h's MAILSRV_RUSTLS_FFI_VERSION, and RUSTLS_VERSION_* in that rustls.h;
#  2. rustls.h's callback typedef and `struct rustls_verify_server_cert_params` (and the two
#     slice structs it embeds) are the ones this code was written against;
#  3. mailsrv.h's prototype is rustls.h's callback typedef with mailsrv's name, text for text;
#  4. compiled with gcc and clang (C11), both include orders, and g++ (C++11), -Werror: the
#     function's type IS rustls_verify_server_cert_callback, and the struct layout relations
#     the Rust side asserts (tests in rustls_verifier.rs) hold in C too;
#  5. LIB exports the callback and no rustls_* symbol (rustls-ffi's #[no_mangle] functions are
#     linked in but hidden by -Wl,--exclude-libs,ALL): `nm -D --defined-only | grep -v mailsrv_`
#     is empty.
# RUSTLS_H defaults to the rustls.h shipped in the locked rustls-ffi crate (cargo metadata,
# offline), i.e. what the crate's build script exports as DEP_RUSTLS_FFI_INCLUDE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
lib=${1:-target/debug/libmailsrv.so}
header=${2:-include/mailsrv.h}
rustls_h=${3:-}
fail=0
bad() { echo "check-rustls-ffi: $*" >&2; fail=1; }

# ------------------------------------------------------------------ 1. one release
pinned=$(sed -n 's/^rustls-ffi = .*version = "=\([0-9][0-9.]*\)".*/\1/p' Cargo.toml)
locked=$(awk '$0 == "name = \"rustls-ffi\"" { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
const=$(sed -n 's/^pub const MAILSRV_RUSTLS_FFI_VERSION: &str = "\(.*\)";$/\1/p' src/ffi/rustls_verifier.rs)
macro=$(sed -n 's/^#define MAILSRV_RUSTLS_FFI_VERSION "\(.*\)"$/\1/p' "$header")
[ -n "$pinned" ] || bad "Cargo.toml does not pin rustls-ffi to one release (version = \"=X.Y.Z\")"
for pair in "Cargo.lock:$locked" "rustls_verifier.rs:$const" "$header:$macro"; do
    [ "${pair#*:}" = "$pinned" ] || bad "${pair%%:*} says rustls-ffi '${pair#*:}', Cargo.toml pins '$pinned'"
done
if [ -z "$rustls_h" ]; then
    dir=$(cargo metadata --format-version 1 --offline 2>/dev/null |
          jq -r '.packages[] | select(.name == "rustls-ffi") | .manifest_path' | xargs dirname)
    rustls_h=$dir/src/rustls.h
fi
[ -f "$rustls_h" ] || { bad "no rustls.h at '$rustls_h'"; exit 1; }
hver=$(for p in MAJOR MINOR PATCH; do sed -n "s/^#define RUSTLS_VERSION_$p \([0-9]*\)$/\1/p" "$rustls_h"; done | paste -sd.)
[ "$hver" = "$pinned" ] || bad "$rustls_h is rustls-ffi $hver, not $pinned"

# ------------------------------------------------------------------ 2. rustls.h's types
# One line per declaration, whitespace collapsed.
decl() {  # FILE REGEX-START -> the declaration starting there, up to its ';' at depth 0
    awk -v start="$2" '
        !on && $0 ~ start { on = 1; text = "" }
        on { text = text " " $0; o = gsub(/\{/, "{", text); c = gsub(/\}/, "}", text)
             if (o == c && $0 ~ /;[[:space:]]*$/) { print text; exit } }' "$1" |
        tr -s ' \t' '  ' | sed 's/^ //; s/ $//; s/( /(/g; s/ )/)/g'
}
want_params='typedef struct rustls_verify_server_cert_params { struct rustls_slice_bytes end_entity_cert_der; const struct rustls_slice_slice_bytes *intermediate_certs_der; struct rustls_str server_name; struct rustls_slice_bytes ocsp_response; } rustls_verify_server_cert_params;'
want_bytes='typedef struct rustls_slice_bytes { const uint8_t *data; size_t len; } rustls_slice_bytes;'
want_str='typedef struct rustls_str { const char *data; size_t len; } rustls_str;'
want_user='typedef void *rustls_verify_server_cert_user_data;'
want_cb='typedef uint32_t (*rustls_verify_server_cert_callback)(rustls_verify_server_cert_user_data userdata, const struct rustls_verify_server_cert_params *params);'
check_decl() {  # WHAT REGEX WANT
    local got; got=$(decl "$rustls_h" "$2")
    [ "$got" = "$3" ] || bad "rustls.h's $1 changed:
    want: $3
    got:  $got"
}
check_decl "parameter struct" '^typedef struct rustls_verify_server_cert_params \{' "$want_params"
check_decl "rustls_slice_bytes" '^typedef struct rustls_slice_bytes \{' "$want_bytes"
check_decl "rustls_str" '^typedef struct rustls_str \{' "$want_str"
check_decl "userdata type" '^typedef void \*rustls_verify_server_cert_user_data;' "$want_user"
check_decl "callback typedef" '^typedef uint32_t \(\*rustls_verify_server_cert_callback\)' "$want_cb"

# ------------------------------------------------------------------ 3. mailsrv.h's prototype
cb=$(decl "$rustls_h" '^typedef uint32_t \(\*rustls_verify_server_cert_callback\)')
expected=$(echo "$cb" | sed 's/^typedef //; s/(\*rustls_verify_server_cert_callback)/mailsrv_rustls_verify_server_cert/;
                              s/rustls_verify_server_cert_user_data userdata/void *userdata/')
ours=$(decl "$header" '^uint32_t mailsrv_rustls_verify_server_cert\(')
[ "$ours" = "$expected" ] || bad "mailsrv.h's prototype differs from rustls.h's callback typedef:
    rustls.h: $expected
    mailsrv.h: $ours"
grep -qx 'struct rustls_verify_server_cert_params;' "$header" ||
    bad "$header does not forward-declare struct rustls_verify_server_cert_params"

# ------------------------------------------------------------------ 4. the compilers agree
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$rustls_h" "$tmp/rustls.h"
cp "$header" "$tmp/mailsrv.h"
cat >"$tmp/c_body.h" <<'EOF'
#include <stddef.h>
_Static_assert(__builtin_types_compatible_p(__typeof__(&mailsrv_rustls_verify_server_cert),
                                            rustls_verify_server_cert_callback),
               "callback type");
_Static_assert(offsetof(struct rustls_verify_server_cert_params, end_entity_cert_der) == 0, "layout");
_Static_assert(offsetof(struct rustls_verify_server_cert_params, intermediate_certs_der) ==
               sizeof(struct rustls_slice_bytes), "layout");
_Static_assert(offsetof(struct rustls_verify_server_cert_params, server_name) ==
               sizeof(struct rustls_slice_bytes) + sizeof(void *), "layout");
_Static_assert(offsetof(struct rustls_verify_server_cert_params, ocsp_response) ==
               sizeof(struct rustls_slice_bytes) + sizeof(void *) + sizeof(struct rustls_str), "layout");
_Static_assert(sizeof(struct rustls_verify_server_cert_params) ==
               2 * sizeof(struct rustls_slice_bytes) + sizeof(void *) + sizeof(struct rustls_str), "layout");
rustls_verify_server_cert_callback installed = mailsrv_rustls_verify_server_cert; /* no cast */
EOF
printf '#include "rustls.h"\n#include "mailsrv.h"\n#include "c_body.h"\n' >"$tmp/a.c"
printf '#include "mailsrv.h"\n#include "rustls.h"\n#include "c_body.h"\n' >"$tmp/b.c"
# rustls.h itself is C only (`enum rustls_result` and `typedef uint32_t rustls_result`), so
# the C++ check uses rustls.h's callback typedef (as compared in 3.) with mailsrv.h alone.
cat >"$tmp/cxx.cc" <<EOF
#include <type_traits>
#include "mailsrv.h"
typedef void *rustls_verify_server_cert_user_data;
$cb
static_assert(std::is_same<decltype(&mailsrv_rustls_verify_server_cert),
                           rustls_verify_server_cert_callback>::value, "callback type");
EOF
inc="-I$tmp"
for c in gcc clang; do
    command -v $c >/dev/null || continue
    for f in a b; do
        $c -std=c11 -Wall -Wextra -Wpedantic -Werror -DDEFINE_RING $inc -fsyntax-only "$tmp/$f.c" ||
            bad "$c: $f.c (mailsrv.h and rustls.h together) does not compile"
    done
done
if command -v g++ >/dev/null; then
    g++ -std=c++11 -Wall -Wextra -Werror $inc -fsyntax-only "$tmp/cxx.cc" || bad "g++: C++ check does not compile"
fi

# ------------------------------------------------------------------ 5. symbols
if [ -f "$lib" ]; then
    exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
    echo "$exported" | grep -qx mailsrv_rustls_verify_server_cert || bad "$lib does not export mailsrv_rustls_verify_server_cert"
    stray=$(echo "$exported" | grep -v '^mailsrv_' || true)
    [ -z "$stray" ] || bad "$lib exports symbols without the mailsrv_ prefix:
$stray"
    hidden=$(nm "$lib" | awk '$3 ~ /^rustls_/ {print $3}' | sort -u | wc -l)
else
    bad "no library at $lib"
fi

if [ $fail = 0 ]; then
    echo "rustls-ffi: release $pinned everywhere; mailsrv.h's callback is rustls.h's type (gcc, clang, g++);" \
         "$lib exports only mailsrv_* ($hidden rustls_* functions linked in, hidden)"
fi
exit $fail
