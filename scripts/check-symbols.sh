#!/usr/bin/env bash
# check-symbols.sh LIB HEADER SONAME VERSION
# The exported dynamic symbols are exactly the header's functions (all mailsrv_*), the
# SONAME is set, and the header's version macros equal Cargo.toml's version.
set -euo pipefail
lib=$1 header=$2 soname=$3 version=$4
fail=0

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWiV]$/ {print $3}' | sed 's/@.*//' | sort -u)
declared=$(grep -oE '^[a-z_ ]*[a-z_0-9]+ \*?(mailsrv_[a-z0-9_]+)\(' "$header" \
           | grep -oE 'mailsrv_[a-z0-9_]+\($' | tr -d '(' | sort -u)
# Test-only exports (#if defined(MAILSRV_TEST_HOOKS)) count only when the library has them.
if ! echo "$exported" | grep -qx mailsrv_test_panic; then
    declared=$(echo "$declared" | grep -vx mailsrv_test_panic)
fi
if ! diff <(echo "$declared") <(echo "$exported") >/tmp/mailsrv-symdiff.$$; then
    echo "exported symbols differ from the header's functions (< header only, > library only):"
    cat /tmp/mailsrv-symdiff.$$
    fail=1
fi
rm -f /tmp/mailsrv-symdiff.$$
if echo "$exported" | grep -v '^mailsrv_' | grep -q .; then
    echo "symbols without the mailsrv_ prefix are exported:"; echo "$exported" | grep -v '^mailsrv_'
    fail=1
fi
stray=$(grep -E '^#define [A-Za-z_]+' "$header" | awk '{print $2}' | grep -vE '^(MAILSRV_|mailsrv_)' || true)
if [ -n "$stray" ]; then echo "header defines names without the MAILSRV_ prefix:"; echo "$stray"; fail=1; fi
stray=$(grep -oE '^typedef [a-z]+ [A-Za-z_]+ [A-Za-z_]+;' "$header" | awk '{print $4}' | tr -d ';' | grep -v '^mailsrv_' || true)
if [ -n "$stray" ]; then echo "header declares types without the mailsrv_ prefix:"; echo "$stray"; fail=1; fi
got=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$got" = "$soname" ] || { echo "SONAME is '$got', want '$soname'"; fail=1; }
IFS=. read -r maj min pat <<<"$version"
for m in "MAJOR $maj" "MINOR $min" "PATCH $pat" "NUMBER $((maj * 10000 + min * 100 + pat))"; do
    set -- $m
    grep -qE "^#define MAILSRV_VERSION_$1 $2\$" "$header" || { echo "MAILSRV_VERSION_$1 is not $2"; fail=1; }
done
n=$(echo "$exported" | wc -l)
[ $fail = 0 ] && echo "symbols: $n exported, all declared in the header; SONAME $got; version $version"
exit $fail
