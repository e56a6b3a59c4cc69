#!/usr/bin/env bash
# The walk-through behind `make demo`, run inside testbed/run.sh (which starts knotd with the
# signed test zones on 127.0.10.1:5353 under a private DNSSEC root, and stops it afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release/mailsrv
NS=(--nameserver "$MAILSRV_TEST_NS" --trust-anchor "$MAILSRV_TEST_ANCHOR")
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "1. Joe types joe@example.com. mailsrv asks DNS for all six mail services at once"
echo "   (_imaps _imap _pop3s _pop3 _submissions _submission under _tcp.example.com), orders"
echo "   the answers by RFC 2782, looks up the targets' addresses, and validates every RRset"
echo "   with DNSSEC itself, from the trust anchor it was given (never a server's AD bit)."
run $B discover joe@example.com "${NS[@]}"

say "2. The same through the C API: a 60-line C program linked against libmailsrv"
cc -std=c11 -Wall -Wextra -Werror -Iinclude c-tests/example_discover.c -Ltarget/release -lmailsrv \
   -Wl,-rpath,"$PWD/target/release" -o target/release/example_discover
run target/release/example_discover joe@example.com "$MAILSRV_TEST_NS" "$MAILSRV_TEST_ANCHOR"

say "3. A domain whose zone is not signed: the answer is usable but INSECURE,"
echo "   so the client must still prove it some other way before trusting it."
run $B discover alice@insecure.test "${NS[@]}" --service imaps

say "4. A domain whose signatures do not validate: BOGUS is an error, never 'no record'"
run $B discover bob@bogus.test "${NS[@]}" --service imaps --service submissions

say "5. A server failure is not 'no record' either (RFC 6186 clients must not fall back)"
run $B discover carol@broken.test "${NS[@]}" --service imaps
echo "   ...while a real NXDOMAIN, proven by signed NSEC records, is 'no_record':"
run $B discover dave@nosrv.example.com "${NS[@]}" --service imaps

say "6. Internationalised domains become A-labels before any query"
run $B discover "eve@bücher.example" "${NS[@]}" --service imaps

say "7. Machine-readable output for scripts and admins"
run $B discover joe@example.com "${NS[@]}" --service imaps --json

say "Done. Next: 'make check' runs the whole test suite against the same servers."
