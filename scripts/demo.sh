#!/usr/bin/env bash
# The walk-through behind `make demo`, run inside testbed/run.sh, which starts on loopback a
# DNSSEC-signed DNS tree under a private root (knotd, 127.0.10.1:5353), dovecot (IMAP, POP3)
# and postfix (submission) with certificates from the project's own test CA, and nginx
# (autoconfig documents and an ISPDB, testbed/web.sh: a default part of run.sh), and stops them
# afterwards. Nothing here leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release/mailsrv
DNS=(--nameserver "$MAILSRV_TEST_NS" --trust-anchor "$MAILSRV_TEST_ANCHOR")
TLS=(--ca-file "$MAILSRV_TEST_CA")
IMAPS=$MAILSRV_TEST_IMAPS_PORT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$@"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

say "1. Discovery. Joe types joe@example.com; mailsrv asks DNS for all six mail services at once"
note "(_imaps _imap _pop3s _pop3 _submissions _submission under _tcp.example.com), orders the" \
     "answers by RFC 2782, looks up the targets' addresses, and validates every RRset with" \
     "DNSSEC itself, from the trust anchor it was given (never a server's AD bit)."
run $B discover joe@example.com "${DNS[@]}"

say "2. The same through the C API: a small C program linked against libmailsrv"
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${CPPFLAGS:-} ${CFLAGS:-} -Iinclude c-tests/example_discover.c -Ltarget/release -lmailsrv \
   -Wl,-rpath,"$PWD/target/release" ${LDFLAGS:-} -o target/release/example_discover
run target/release/example_discover joe@example.com "$MAILSRV_TEST_NS" "$MAILSRV_TEST_ANCHOR"

say "3. What DNS alone cannot be trusted for: unsigned, bogus and failing zones"
note "An unsigned zone gives an INSECURE answer: usable, but not proof of anything."
run $B discover alice@insecure.test "${DNS[@]}" --service imaps
note "Signatures that do not validate are BOGUS: an error, never 'no record'." \
     "(Nothing usable was found, so the command exits with status 2.)"
run $B discover bob@bogus.test "${DNS[@]}" --service imaps || true
note "A server failure is LOOKUP_FAILED, and a signed NXDOMAIN is NO_RECORD:"
run $B discover carol@broken.test "${DNS[@]}" --service imaps || true
run $B discover dave@nosrv.example.com "${DNS[@]}" --service imaps || true

say "4. Is the answer authentic? One verdict per service"
note "example.com is DNSSEC-signed: AUTHENTIC by DNSSEC, no connection needed."
run $B verify joe@example.com "${DNS[@]}" "${TLS[@]}" --service imaps
note "hosted.test is not signed. mailsrv connects to the target with SNI = hosted.test and" \
     "requires a certificate naming hosted.test (here the SRV-ID _imaps.hosted.test), then" \
     "reconnects with SNI = mail.example.net and requires the target's own certificate:"
run $B verify ann@hosted.test "${DNS[@]}" "${TLS[@]}" --service imaps
note "insecure.test's provider only proves its own name: UNVERIFIED. The user must confirm," \
     "with no click-through, and only once the answer has persisted:"
run $B verify ann@insecure.test "${DNS[@]}" "${TLS[@]}" --service imaps

note "dane.example.com is signed and publishes a DNSSEC-signed TLSA record for its server's key" \
     "(DANE, RFC 7673): the self-signed certificate is accepted because DNSSEC vouches for it:"
run $B verify ann@dane.example.com "${DNS[@]}" "${TLS[@]}" --service imaps

say "5. The binding: how the connection that carries the password must be made"
note "Each verdict above ends with a 'connect:' line. For example.com (DNSSEC) it is the" \
     "server's own name. For hosted.test (probe, server outside the domain) it is SNI =" \
     "hosted.test and its SRV-ID: that is the session the probe proved."
note "Why it matters: relayed.hosted.test's unsigned SRV record (think: forged by an on-path" \
     "attacker) names relay.example.net, an SNI relay. It pipes SNI = relayed.hosted.test to the" \
     "genuine provider and answers any other SNI itself with a valid certificate. Both checks pass:"
run $B verify ann@relayed.hosted.test "${DNS[@]}" "${TLS[@]}" --service imaps
binding=$($B verify ann@relayed.hosted.test "${DNS[@]}" "${TLS[@]}" --service imaps --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["connect"]["binding"])')
note "Logging in with the binding reaches the genuine provider (Dovecot) through the relay," \
     "which sees only ciphertext:"
run $B connect --binding "$binding" "${DNS[@]}" "${TLS[@]}"
note "A login to the target under its own name -- what clients did before -- reaches the relay:"
run $B connect "relay.example.net:$IMAPS" "${DNS[@]}" "${TLS[@]}"
note "dane.example.com's binding enforces its TLSA record, so its self-signed server is usable:"
dane=$($B verify ann@dane.example.com "${DNS[@]}" "${TLS[@]}" --service imaps --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["connect"]["binding"])')
run $B connect --binding "$dane" "${DNS[@]}" "${TLS[@]}"

say "6. Connect for mail work: SNI = the server's own name, its certificate checked, never plaintext"
run $B connect "mail.example.net:$MAILSRV_TEST_IMAP_PORT" --starttls imap "${DNS[@]}" "${TLS[@]}"
note "The same server with SNI = the mail domain presents the hosted SRV-ID certificate:"
run $B connect "mail.example.net:$IMAPS" --sni example.com --expect-srv-id imaps:example.com "${DNS[@]}" "${TLS[@]}"
note "An expired certificate is a hard failure, with its precise reason:"
run $B connect "127.0.20.1:$IMAPS" --expect-dns-id mail.example.net "${DNS[@]}" "${TLS[@]}" || true

say "7. Later: the SRV record changed. What may the client do?"
hist=$(mktemp -d)/history
note "The account was set up with old.example.net; insecure.test now points elsewhere."
run $B change insecure.test --service imaps --saved old.example.net:993 --history "$hist" "${DNS[@]}" "${TLS[@]}"
note "Eight days later, the same unverified answer has persisted: now the user may be asked."
run $B change insecure.test --service imaps --saved old.example.net:993 --history "$hist" \
    --now $(( $(date +%s) + 8 * 86400 )) "${DNS[@]}" "${TLS[@]}"
note "For the signed domain the change is authenticated, so the client may update at once:"
run $B change example.com --service imaps --saved old.example.net:993 "${DNS[@]}" "${TLS[@]}"
rm -rf "$(dirname "$hist")"

say "8. Most domains publish no SRV records: account discovery asks every source clients use"
[[ -n ${MAILSRV_TEST_ISPDB:-} ]] || { echo "the testbed's web part (nginx, testbed/web.sh) is not running" >&2; exit 1; }
note "ac.test has no SRV record, but its provider serves https://autoconfig.ac.test/; every server" \
     "it names gets a verdict, evidence and a binding, exactly like an SRV target:"
run $B autoconfig joe@ac.test --ispdb "$MAILSRV_TEST_ISPDB" "${DNS[@]}" "${TLS[@]}"
note "mxs.example.com has neither SRV nor a document: its DNSSEC-signed MX names example.net," \
     "whose document is taken; a host outside example.net stays unverified:"
run $B autoconfig joe@mxs.example.com --ispdb "$MAILSRV_TEST_ISPDB" "${DNS[@]}" "${TLS[@]}"

say "Done. 'make check' runs every test against the same servers; docs/ has the integration guide."
