#!/usr/bin/env bash
# smoke.sh -- brings the whole testbed up (via run.sh), checks it with kdig, delv (if installed)
# and openssl s_client, tears it down, and prints "N passed, N failed" last.
# Exit status: 0 when every check passed.
#   smoke.sh            run against a fresh testbed
#   smoke.sh --checks   only the checks, against the testbed named by MAILSRV_* variables
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ${1:-} != --checks ]]; then
    # the summary is printed here, after the teardown, so that it is the last line
    RESULT=$(mktemp "${TMPDIR:-/tmp}/mailsrv-smoke.XXXXXX")
    trap 'rm -f "$RESULT"' EXIT
    rc=0
    SMOKE_RESULT=$RESULT "$HERE/run.sh" "$HERE/smoke.sh" --checks || rc=$?
    if [[ -s $RESULT ]]; then
        cat "$RESULT"
    else
        echo "smoke: the testbed did not come up" >&2
        echo "0 passed, 1 failed"
        (( rc )) || rc=1
    fi
    exit "$rc"
fi
: "${MAILSRV_TESTBED_DIR:?source testbed.env first (or run smoke.sh without --checks)}"

PASS=0 FAIL=0 SKIP=0
ok()   { PASS=$((PASS + 1)); echo "ok   $1"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL $1${2:+: $2}"; }
skip() { SKIP=$((SKIP + 1)); echo "skip $1${2:+: $2}"; }
# check NAME CMD... -- passes when CMD succeeds
check() { local n=$1; shift; if "$@"; then ok "$n"; else bad "$n"; fi; }

NS_HOST=${MAILSRV_TEST_NS%:*}; NS_PORT=${MAILSRV_TEST_NS##*:}
KD=(kdig @"$NS_HOST" -p "$NS_PORT" +noidn +timeout=2 +retry=0)
kd() { "${KD[@]}" "$@" 2>&1; }
CERTS=$MAILSRV_TEST_CERTS

# ---------------------------------------------------------------- DNS
# answer NAME TYPE -> the answer rdata lines (+short)
answer() { kd +short "$1" "$2" | sort; }
eq() { [[ $1 == "$2" ]] || { echo "     got:      ${1//$'\n'/ | }"; echo "     expected: ${2//$'\n'/ | }"; return 1; }; }

for z in . com. net. test. example. example.com. example.net. example.test. bogus.test. \
         xn--bcher-kva.example. insecure.test. hosted.test. dnshosted.test. half.test. moved.test.; do
    out=$(kd +dnssec "$z" SOA)
    if grep -q 'status: NOERROR' <<<"$out" && grep -q 'Flags: qr aa' <<<"$out" \
       && grep -qP '^\S+\s+\d+\s+IN\s+SOA\s' <<<"$out"; then ok "SOA $z (authoritative)"; else bad "SOA $z"; fi
done

check "example.com _imaps SRV"       eq "$(answer _imaps._tcp.example.com SRV)" "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."
check "example.com _imap SRV"        eq "$(answer _imap._tcp.example.com SRV)" "10 1 $MAILSRV_TEST_IMAP_PORT mail.example.net."
check "example.com _submissions SRV" eq "$(answer _submissions._tcp.example.com SRV)" "0 1 $MAILSRV_TEST_SUBMISSIONS_PORT mail.example.net."
check "example.com _submission SRV (tie at priority 0)" eq "$(answer _submission._tcp.example.com SRV)" "0 1 $MAILSRV_TEST_SUBMISSION_PORT mail.example.net."
check "example.com _pop3s SRV"       eq "$(answer _pop3s._tcp.example.com SRV)" "20 1 $MAILSRV_TEST_POP3S_PORT mail.example.net."
check "example.com _pop3 SRV is '.'" eq "$(answer _pop3._tcp.example.com SRV)" "0 0 0 ."
check "example.com apex A/AAAA"      eq "$(answer example.com A; answer example.com AAAA)" $'127.0.0.1\n::1'
check "multi: 3 SRV"                 eq "$(answer _imaps._tcp.multi.example.com SRV)" \
    $'10 20 '"$MAILSRV_TEST_IMAPS_PORT"$' b.example.net.\n10 60 '"$MAILSRV_TEST_IMAPS_PORT"$' a.example.net.\n20 0 '"$MAILSRV_TEST_IMAPS_PORT"' c.example.net.'
check "mixed: '.' plus a real target" eq "$(answer _imaps._tcp.mixed.example.com SRV)" $'0 0 0 .\n0 1 '"$MAILSRV_TEST_IMAPS_PORT"' mail.example.net.'
check "weights: 0/1/3"               eq "$(answer _imaps._tcp.weights.example.com SRV | awk '{print $2}' | tr '\n' ' ')" "0 1 3 "
check "zero: two weight-0 records"   eq "$(answer _imaps._tcp.zero.example.com SRV | awk '{print $1 $2}' | tr '\n' ' ')" "00 00 "
check "prio: priorities 0 and 10"    eq "$(answer _imaps._tcp.prio.example.com SRV | awk '{print $1}' | sort -n | tr '\n' ' ')" "0 10 "
check "pop: _imaps prio 10, _pop3s prio 0" eq "$(answer _imaps._tcp.pop.example.com SRV; answer _pop3s._tcp.pop.example.com SRV)" \
    $'10 1 '"$MAILSRV_TEST_IMAPS_PORT"$' mail.example.net.\n0 1 '"$MAILSRV_TEST_POP3S_PORT"' mail.example.net.'
out=$(kd +noall +answer _imaps._tcp.lowttl.example.com SRV)
check "lowttl: TTL 60"               eq "$(awk '$4=="SRV" {print $2}' <<<"$out")" "60"
out=$(kd _imaps._tcp.inzone.example.com SRV)
check "inzone: target A+AAAA in the additional section" \
    grep -qP '^host\.inzone\.example\.com\.\s+\d+\s+IN\s+AAAA\s+::1' <<<"$(sed -n '/ADDITIONAL SECTION/,$p' <<<"$out")"
out=$(kd +noall +answer _imaps._tcp.alias.example.com SRV)
check "alias: owner CNAME followed to the SRV" \
    bash -c '[[ $(grep -cP "\tCNAME\t_imaps\._tcp\.example\.com\." <<<"$1") == 1 && $(grep -cP "\tSRV\t" <<<"$1") == 1 ]]' _ "$out"
check "cnametarget: SRV target is a CNAME" eq "$(answer _imaps._tcp.cnametarget.example.com SRV; answer mail.example.com CNAME)" \
    $'0 1 '"$MAILSRV_TEST_IMAPS_PORT"$' mail.example.com.\nmail.example.net.'
check "v6: AAAA only"                eq "$(answer v6only.example.net A; answer v6only.example.net AAAA)" "::1"
out=$(kd noaddr.example.net A)
check "noaddr: NODATA for A"         bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "ANSWER: 0;" <<<"$1"' _ "$out"
check "example.net hosts"            eq "$(answer mail.example.net A; answer a.example.net A; answer b.example.net A; answer c.example.net A; answer h40.example.net A)" \
    $'127.0.0.1\n127.0.0.2\n127.0.0.3\n127.0.0.4\n127.0.0.1'
out=$(kd +dnssec _imaps._tcp.nosrv.example.com SRV)
check "nosrv: NXDOMAIN with NSEC proof" bash -c 'grep -q "status: NXDOMAIN" <<<"$1" && grep -qP "\tNSEC\t" <<<"$1"' _ "$out"
check "broken.test: SERVFAIL"        grep -q 'status: SERVFAIL' <<<"$(kd _imaps._tcp.broken.test SRV)"
out=$(kd +ignore +notcp _imaps._tcp.big.example.com SRV)
check "big: TC bit over UDP"         grep -qP '^;; Flags: qr aa tc' <<<"$out"
out=$(kd +tcp +noall +answer _imaps._tcp.big.example.com SRV)
check "big: 40 SRV over TCP"         eq "$(grep -cP '\tSRV\t' <<<"$out")" "40"
out=$(kd +dnssec +noall +answer _imaps._tcp.example.com SRV)
check "example.com SRV has RRSIG"    grep -qP '\tRRSIG\tSRV 13 ' <<<"$out"
out=$(kd +dnssec +noall +answer _imaps._tcp.insecure.test SRV)
check "insecure.test SRV, no RRSIG"  bash -c 'grep -qP "\tSRV\t" <<<"$1" && ! grep -q RRSIG <<<"$1"' _ "$out"
check "insecure.test: the SRV set"   eq "$(answer _submissions._tcp.insecure.test SRV; answer _pop3._tcp.insecure.test SRV)" \
    $'0 1 '"$MAILSRV_TEST_SUBMISSIONS_PORT"$' mail.example.net.\n0 0 0 .'
out=$(kd +dnssec insecure.test DS)
check "insecure.test: no DS (NSEC-proven)" bash -c 'grep -q "ANSWER: 0;" <<<"$1" && grep -qP "^insecure\.test\.\s.*\tNSEC\t" <<<"$1"' _ "$out"
check "bogus.test: DS digest zeroed" grep -qP ' 13 2 0{64}$' <<<"$(answer bogus.test DS)"
check "example.test SRV (in-domain target)" eq "$(answer _imaps._tcp.example.test SRV; answer mail.example.test A)" \
    $'0 1 '"$MAILSRV_TEST_IMAPS_PORT"$' mail.example.test.\n127.0.0.1'
check "xn--bcher-kva.example SRV"    eq "$(answer _imaps._tcp.xn--bcher-kva.example SRV)" "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."

# the TLS-probe zones (unsigned) and the DANE names
check "hosted.test: imaps/submissions/imap/submission SRV" eq \
    "$(for s in imaps submissions imap submission; do answer _$s._tcp.hosted.test SRV; done)" \
    "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."$'\n'"0 1 $MAILSRV_TEST_SUBMISSIONS_PORT mail.example.net."$'\n'"10 1 $MAILSRV_TEST_IMAP_PORT mail.example.net."$'\n'"10 1 $MAILSRV_TEST_SUBMISSION_PORT mail.example.net."
check "hosted.test: pop3s SRV -> srvonly.example.net" eq "$(answer _pop3s._tcp.hosted.test SRV)" "0 1 $MAILSRV_TEST_POP3S_PORT srvonly.example.net."
check "hosted.test: apex A"          eq "$(answer hosted.test A)" "127.0.0.1"
check "dnshosted.test: imaps SRV"    eq "$(answer _imaps._tcp.dnshosted.test SRV)" "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."
check "half.test: imaps + submissions SRV" eq "$(answer _imaps._tcp.half.test SRV; answer _submissions._tcp.half.test SRV)" \
    "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."$'\n'"0 1 $MAILSRV_TEST_SUBMISSIONS_PORT mail.example.net."
check "moved.test: imaps SRV"        eq "$(answer _imaps._tcp.moved.test SRV)" "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."
for z in hosted.test dnshosted.test half.test moved.test; do
    out=$(kd +dnssec +noall +answer _imaps._tcp.$z SRV)
    check "$z SRV, no RRSIG"         bash -c 'grep -qP "\tSRV\t" <<<"$1" && ! grep -q RRSIG <<<"$1"' _ "$out"
    out=$(kd +dnssec $z DS)
    check "$z: no DS (NSEC-proven)"  bash -c 'grep -q "ANSWER: 0;" <<<"$2" && grep -qP "^\Q$1\E\.\s.*\tNSEC\t" <<<"$2"' _ "$z" "$out"
done
check "example.net: srvonly/dane/daneexp/danebad A" eq \
    "$(for h in srvonly dane daneexp danebad; do answer $h.example.net A; done)" $'127.0.20.6\n127.0.20.7\n127.0.20.8\n127.0.20.7'
for h in dane daneexp danebad; do
    out=$(kd +dnssec +noall +answer _imaps._tcp.$h.example.com SRV)
    check "example.com _imaps._tcp.$h SRV (signed)" bash -c 'grep -qP "\tSRV\t0 1 $1 $2\.example\.net\.$" <<<"$3" && grep -qP "\tRRSIG\tSRV 13 " <<<"$3"' \
        _ "$MAILSRV_TEST_IMAPS_PORT" "$h" "$out"
done
# tlsa_rr NAME -> "3 1 1 <lower-case hex>" of the TLSA record(s) at _IMAPS._tcp.NAME.example.net
tlsa_rr() { answer "_$MAILSRV_TEST_IMAPS_PORT._tcp.$1.example.net" TLSA | awk '{d = ""; for (i = 4; i <= NF; i++) d = d $i; print $1, $2, $3, tolower(d)}'; }
check "TLSA dane = 3 1 1 SPKI hash of dane-ee-selfsigned" eq "$(tlsa_rr dane)" "3 1 1 $(cat "$CERTS/dane-ee-selfsigned.tlsa")"
check "TLSA daneexp = 3 1 1 SPKI hash of dane-ee-expired-selfsigned" eq "$(tlsa_rr daneexp)" "3 1 1 $(cat "$CERTS/dane-ee-expired-selfsigned.tlsa")"
check "TLSA danebad = 3 1 1 zeros"   eq "$(tlsa_rr danebad)" "3 1 1 $(printf '0%.0s' {1..64})"
for h in dane daneexp danebad; do
    check "TLSA $h has RRSIG"        grep -qP '\tRRSIG\tTLSA 13 ' <<<"$(kd +dnssec +noall +answer "_$MAILSRV_TEST_IMAPS_PORT._tcp.$h.example.net" TLSA)"
done
spki() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | awk '{print $1}'; }
check ".tlsa files hash the SPKI of their certificates" eq "$(cat "$CERTS/dane-ee-selfsigned.tlsa" "$CERTS/dane-ee-expired-selfsigned.tlsa")" \
    "$(spki "$CERTS/dane-ee-selfsigned.crt"; spki "$CERTS/dane-ee-expired-selfsigned.crt")"
check "MAILSRV_TEST_DANE_TLSA is dane-ee-selfsigned.tlsa" eq "${MAILSRV_TEST_DANE_TLSA:-}" "$(cat "$CERTS/dane-ee-selfsigned.tlsa")"

# dns.sh set-srv: moved.test (unsigned) is changed and restored; in example.test (signed) an
# SRV RRset is added (signed) and removed again
SETSRV=("$HERE/dns.sh" set-srv "$MAILSRV_TESTBED_DIR")
moved=$({ "${SETSRV[@]}" moved.test _imaps._tcp "0 1 $MAILSRV_TEST_IMAPS_PORT b.example.net." 2>&1 >/dev/null && answer _imaps._tcp.moved.test SRV; } || true)
check "set-srv moved.test: new target served" eq "$moved" "0 1 $MAILSRV_TEST_IMAPS_PORT b.example.net."
moved=$({ "${SETSRV[@]}" moved.test _imaps._tcp "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net." 2>&1 >/dev/null && answer _imaps._tcp.moved.test SRV; } || true)
check "set-srv moved.test: restored" eq "$moved" "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."
out=$({ "${SETSRV[@]}" example.test _imaps._tcp.setsrv.example.test. "5 1 $MAILSRV_TEST_IMAPS_PORT mail.example.test." 2>&1 >/dev/null \
      && kd +dnssec +noall +answer _imaps._tcp.setsrv.example.test SRV; } || true)
check "set-srv example.test (signed): added with RRSIG" bash -c 'grep -qP "\tSRV\t5 1 $1 mail\.example\.test\.$" <<<"$2" && grep -qP "\tRRSIG\tSRV 13 " <<<"$2"' \
    _ "$MAILSRV_TEST_IMAPS_PORT" "$out"
out=$({ "${SETSRV[@]}" example.test _imaps._tcp.setsrv 2>&1 >/dev/null && kd +dnssec _imaps._tcp.setsrv.example.test SRV; } || true)
check "set-srv example.test: removed again (NXDOMAIN)" grep -q 'status: NXDOMAIN' <<<"$out"
for c in com. net. test. example. example.com. example.net. example.test. xn--bcher-kva.example.; do
    check "DS for $c signed by its parent" grep -qP '\tRRSIG\tDS 13 ' <<<"$(kd +dnssec +noall +answer "$c" DS)"
done
if [[ -n ${MAILSRV_TEST_NS6:-} ]]; then
    h6=${MAILSRV_TEST_NS6%]:*}; h6=${h6#[}
    check "IPv6 nameserver $MAILSRV_TEST_NS6" eq "$(kdig @"$h6" -p "${MAILSRV_TEST_NS6##*:}" +short +timeout=2 _imaps._tcp.example.com SRV)" \
        "0 1 $MAILSRV_TEST_IMAPS_PORT mail.example.net."
fi
dh=${MAILSRV_TEST_DEAD_NS%:*}; dp=${MAILSRV_TEST_DEAD_NS##*:}
check "dead nameserver $MAILSRV_TEST_DEAD_NS: nothing listens" \
    bash -c '! ss -Hlnu "src $1:$2" | grep -q . && ! ss -Hlnt "src $1:$2" | grep -q .' _ "$dh" "$dp"
check "anchor file: '. IN DNSKEY 257 3 13'" grep -qP '^\. IN DNSKEY 257 3 13 \S+$' "$MAILSRV_TEST_ANCHOR"
check "anchor DS file: '. IN DS <tag> 13 2'" grep -qP '^\. IN DS \d+ 13 2 [0-9a-f]{64}$' "$MAILSRV_TEST_ANCHOR_DS"
key=$(awk '{print $NF}' "$MAILSRV_TEST_ANCHOR")
check "anchor is the root KSK knotd serves" grep -qF "$key" <<<"$(kd +noall +answer . DNSKEY)"

DELV_CONF=$MAILSRV_TESTBED_DIR/dns/anchors/root.delv.conf
if command -v delv >/dev/null; then
    dv() { delv -a "$DELV_CONF" @"$NS_HOST" -p "$NS_PORT" +root=. "$@" 2>&1; }
    for q in _imaps._tcp.example.com _submission._tcp.example.com _imaps._tcp.example.test _imaps._tcp.xn--bcher-kva.example; do
        check "delv: $q fully validated" grep -q '^; fully validated' <<<"$(dv "$q" SRV)"
    done
    check "delv: mail.example.net A fully validated" grep -q '^; fully validated' <<<"$(dv mail.example.net A)"
    check "delv: nosrv NXDOMAIN validated" grep -q 'negative response, fully validated' <<<"$(dv _imaps._tcp.nosrv.example.com SRV)"
    check "delv: insecure.test unsigned"   grep -q '^; unsigned answer' <<<"$(dv _imaps._tcp.insecure.test SRV)"
    check "delv: bogus.test broken chain"  grep -q 'broken trust chain' <<<"$(dv _imaps._tcp.bogus.test SRV)"
    for z in hosted.test dnshosted.test half.test moved.test; do
        check "delv: $z unsigned"      grep -q '^; unsigned answer' <<<"$(dv _imaps._tcp.$z SRV)"
    done
    check "delv: _imaps._tcp.dane.example.com fully validated" grep -q '^; fully validated' <<<"$(dv _imaps._tcp.dane.example.com SRV)"
    for h in dane daneexp danebad; do
        check "delv: TLSA $h fully validated" grep -q '^; fully validated' <<<"$(dv "_$MAILSRV_TEST_IMAPS_PORT._tcp.$h.example.net" TLSA)"
    done
else
    skip "delv checks" "delv not installed (bind9-dnsutils)"
fi

# ---------------------------------------------------------------- mail
if [[ ,${MAILSRV_TEST_PARTS:-}, == *,mail,* ]]; then
    fp_file() { openssl x509 -in "$CERTS/$1.crt" -noout -fingerprint -sha256; }
    # served ADDR PORT SNI|- STARTTLS-PROTO|- -> fingerprint of the certificate the server sends
    served() {
        local a=$1 o=()
        [[ $a == *:* ]] && a="[$a]"
        if [[ $3 == - ]]; then o+=(-noservername); else o+=(-servername "$3"); fi
        [[ $4 != - ]] && o+=(-starttls "$4")
        openssl s_client -connect "$a:$2" "${o[@]}" </dev/null 2>/dev/null \
            | openssl x509 -noout -fingerprint -sha256 2>/dev/null || true
    }
    SERVICES=("imaps $MAILSRV_TEST_IMAPS_PORT -" "imap $MAILSRV_TEST_IMAP_PORT imap"
              "pop3s $MAILSRV_TEST_POP3S_PORT -" "pop3 $MAILSRV_TEST_POP3_PORT pop3"
              "submissions $MAILSRV_TEST_SUBMISSIONS_PORT -" "submission $MAILSRV_TEST_SUBMISSION_PORT smtp")
    # every probe runs in the background; results are compared afterwards
    R=$(mktemp -d "$MAILSRV_TESTBED_DIR/smoke.XXXXXX")
    probes=()
    probe() {  # LABEL EXPECTED-CERT ADDR PORT SNI PROTO
        local i=${#probes[@]}
        probes+=("$1|$2")
        served "$3" "$4" "$5" "$6" >"$R/$i" &
    }
    for a in ${MAILSRV_TEST_MAIL_ADDR:-} ${MAILSRV_TEST_MAIL_ADDR6:-}; do
        for s in "${SERVICES[@]}"; do
            set -- $s
            probe "$1 on $a, SNI example.com"      srvid-multi-example-com "$a" "$2" example.com "$3"
            probe "$1 on $a, SNI mail.example.net" dnsid-mail-example-net  "$a" "$2" mail.example.net "$3"
            probe "$1 on $a, no SNI"               dnsid-mail-example-net  "$a" "$2" - "$3"
            probe "$1 on $a, SNI hosted.test"      srvid-multi-hosted-test "$a" "$2" hosted.test "$3"
            probe "$1 on $a, SNI dnshosted.test"   dnsid-dnshosted-test    "$a" "$2" dnshosted.test "$3"
            # half.test: dovecot has it, postfix does not (the default certificate)
            if [[ $1 == submission* ]]; then half=dnsid-mail-example-net; else half=srvid-imaps-half-test; fi
            probe "$1 on $a, SNI half.test"        "$half"                 "$a" "$2" half.test "$3"
            # insecure.test has no SNI entry: the provider's own name only (T-AUTH-09, T-SEED-03)
            probe "$1 on $a, SNI insecure.test"    dnsid-mail-example-net  "$a" "$2" insecure.test "$3"
        done
    done
    for ac in 127.0.20.1=expired 127.0.20.2=wrong-name 127.0.20.3=untrusted \
              127.0.20.4=srvid-imaps-example-com 127.0.20.5=cn-only 127.0.20.6=srvid-pop3s-hosted-test-only \
              127.0.20.7=dane-ee-selfsigned 127.0.20.8=dane-ee-expired-selfsigned; do
        for s in "${SERVICES[@]}"; do
            set -- $s
            probe "$1 on ${ac%=*}, SNI example.com" "${ac#*=}" "${ac%=*}" "$2" example.com "$3"
        done
        probe "imaps on ${ac%=*}, no SNI" "${ac#*=}" "${ac%=*}" "$MAILSRV_TEST_IMAPS_PORT" - -
    done
    wait
    declare -A FP=()   # certificate name -> fingerprint, computed once per name
    for i in "${!probes[@]}"; do
        label=${probes[$i]%|*}; want=${probes[$i]#*|}
        got=$(<"$R/$i")
        [[ -n ${FP[$want]:-} ]] || FP[$want]=$(fp_file "$want")
        if [[ -n $got && $got == "${FP[$want]}" ]]; then ok "TLS $label -> $want"
        else bad "TLS $label -> $want" "got ${got:-no certificate}"; fi
    done
    rm -rf "$R"

    out=$(openssl s_client -connect "127.0.0.1:$MAILSRV_TEST_IMAPS_PORT" -servername mail.example.net \
          -CAfile "$MAILSRV_TEST_CA" -verify_hostname mail.example.net -verify_return_error </dev/null 2>&1 || true)
    check "TLS chain verifies against MAILSRV_TEST_CA" grep -q 'Verify return code: 0 (ok)' <<<"$out"
    out=$(openssl s_client -connect "127.0.20.1:$MAILSRV_TEST_IMAPS_PORT" -servername mail.example.net \
          -CAfile "$MAILSRV_TEST_CA" </dev/null 2>&1 || true)
    check "expired certificate is reported expired" grep -q 'Verify return code: 10 (certificate has expired)' <<<"$out"
    # DANE-EE with the TLSA records knotd serves: openssl's own DANE check, names ignored
    # (RFC 7671 section 5.1; dane-ee-expired-selfsigned names dane.example.net, not daneexp)
    dane() {  # ADDR NAME -> s_client output
        openssl s_client -connect "$1:$MAILSRV_TEST_IMAPS_PORT" -servername "$2.example.net" -dane_tlsa_domain "$2.example.net" \
            -dane_tlsa_rrdata "$(tlsa_rr "$2")" -dane_ee_no_namechecks -verify_return_error </dev/null 2>&1 || true
    }
    check "DANE: dane.example.net (127.0.20.7) matches its TLSA" grep -q 'matched EE certificate at depth 0' <<<"$(dane 127.0.20.7 dane)"
    check "DANE: daneexp.example.net (127.0.20.8, expired) matches its TLSA" grep -q 'matched EE certificate at depth 0' <<<"$(dane 127.0.20.8 daneexp)"
    check "DANE: danebad.example.net (127.0.20.7) matches no TLSA" grep -q 'no matching DANE TLSA records' <<<"$(dane 127.0.20.7 danebad)"
    out=$(openssl s_client -connect "127.0.20.7:$MAILSRV_TEST_IMAPS_PORT" -servername dane.example.net \
          -CAfile "$MAILSRV_TEST_CA" </dev/null 2>&1 || true)
    check "dane-ee-selfsigned is not issued by the test CA" grep -q 'Verify return code: 18 (self-signed certificate)' <<<"$out"
    out=$(printf 'a LOGIN alice test\r\nb LOGOUT\r\n' | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$MAILSRV_TEST_IMAPS_PORT" 2>/dev/null || true)
    check "IMAPS LOGIN alice/test" grep -q '^a OK' <<<"$out"
    a6=${MAILSRV_TEST_MAIL_ADDR6:-}; a6=${a6:+[$a6]}
    out=$(printf 'USER bob\r\nPASS test\r\nQUIT\r\n' | timeout 5 openssl s_client -quiet -starttls pop3 -connect "${a6:-$MAILSRV_TEST_MAIL_ADDR}:$MAILSRV_TEST_POP3_PORT" 2>/dev/null || true)
    check "POP3 STLS login over ${a6:-$MAILSRV_TEST_MAIL_ADDR}" grep -q '^+OK Logged in' <<<"$out"
    out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "EHLO x\r\nMAIL FROM:<a@example.com>\r\nQUIT\r\n" >&3; cat <&3' _ "$MAILSRV_TEST_SUBMISSION_PORT" || true)
    check "submission requires STARTTLS" bash -c 'grep -q "^250-STARTTLS" <<<"$1" && grep -q "^530 " <<<"$1"' _ "$out"
    out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "a CAPABILITY\r\na LOGOUT\r\n" >&3; cat <&3' _ "$MAILSRV_TEST_IMAP_PORT" || true)
    check "IMAP offers STARTTLS" grep -q '^\* CAPABILITY .*STARTTLS' <<<"$out"
    out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "CAPA\r\nQUIT\r\n" >&3; cat <&3' _ "$MAILSRV_TEST_POP3_PORT" || true)
    check "POP3 offers STLS" grep -q '^STLS' <<<"$out"
else
    skip "mail checks" "mail servers not started (MAILSRV_TEST_PARTS=${MAILSRV_TEST_PARTS:-})"
fi

if (( SKIP )); then summary="$PASS passed, $FAIL failed, $SKIP skipped"; else summary="$PASS passed, $FAIL failed"; fi
if [[ -n ${SMOKE_RESULT:-} ]]; then echo "$summary" >"$SMOKE_RESULT"; else echo; echo "$summary"; fi
(( FAIL == 0 ))
