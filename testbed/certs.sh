#!/usr/bin/env bash
# certs.sh OUT -- test CA and leaf certificates for the mailsrv testbed.
#
# Writes OUT/NAME.crt, OUT/NAME.key and OUT/NAME.pem (key + leaf + chain, for servers),
# OUT/ca.crt (the trust anchor), OUT/ca-bundle.pem, OUT/other-ca.crt, OUT/nc-ca.crt, and
# OUT/NAME.tlsa (hex SHA-256 of the SPKI, for TLSA 3 1 1) for the two DANE-EE certificates.
# All keys are EC P-256, except the leaf-key cases (KEYTYPE below: RSA 1024, RSA 2048, DSA).
# Leaves are issued with `openssl ca` so that notBefore/notAfter can be set explicitly.
# Idempotent: if OUT/ca.crt and every certificate exist nothing is regenerated; ca.crt is
# written last, so it marks a complete OUT.
# Writes nothing outside OUT (scratch files live in OUT/.ca).
set -euo pipefail

OUT=${1:?usage: certs.sh OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$OUT/.ca

# Certificates added after the first set (the probe, DANE and EKU cases). An OUT made by an
# older certs.sh (ca.crt present, these missing) gets them from its existing CAs in OUT/.ca.
EXTRA=(srvid-multi-hosted-test dnsid-dnshosted-test srvid-imaps-half-test srvid-pop3s-hosted-test-only
       dane-ee-selfsigned dane-ee-expired-selfsigned eku-client nc-dns-outside
       srvid-imaps-relayed-hosted-test
       rsa-1024-mail-example-net rsa-2048-mail-example-net dsa-mail-example-net
       wildcard-co-uk wildcard-s3-amazonaws-com web-autoconfig
       web-discovery guess-ac-test guessu-ac-test)
TLSA=(dane-ee-selfsigned dane-ee-expired-selfsigned)   # these also get OUT/NAME.tlsa
extras_done() {
    local n
    for n in "${EXTRA[@]}"; do [[ -s $OUT/$n.pem ]] || return 1; done
    for n in "${TLSA[@]}"; do [[ -s $OUT/$n.tlsa ]] || return 1; done
}
if [[ -s $OUT/ca.crt ]]; then
    extras_done && exit 0
    FULL=0
    for f in ca.crt ca.key nc-ca.crt nc-ca.key index.txt serial; do
        [[ -s $W/$f ]] || { echo "certs.sh: $OUT lacks ${EXTRA[*]} and $W/$f to add them; remove $OUT" >&2; exit 1; }
    done
else
    FULL=1
    rm -rf "$W"
    mkdir -p "$W/new"
    : >"$W/index.txt"
    echo 1000 >"$W/serial"
    # leaves must not trip over equal subjects (several CN=mail.example.net)
    echo "unique_subject = no" >"$W/index.txt.attr"
    # dns.sh reads the .tlsa files once ca.crt exists: none may survive from an earlier run
    for n in "${TLSA[@]}"; do rm -f "$OUT/$n.tlsa"; done
fi

NOW_MINUS_2D=$(date -u -d '-2 days' +%Y%m%d%H%M%SZ)
NOW_PLUS_10Y=$(date -u -d '+10 years' +%Y%m%d%H%M%SZ)
CA_START=20190101000000Z
CA_END=21200101000000Z

# ---------------------------------------------------------------- DER helpers
# hexstr TEXT -> hex of TEXT after printf %b (so '\0' in TEXT becomes a NUL byte)
hexstr() { printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'; }
# tlv TAG_HEX VALUE_HEX -> DER TLV (definite length, short or one/two-byte long form)
tlv() {
    local tag=$1 val=$2 n
    n=$(( ${#val} / 2 ))
    if (( n < 128 )); then printf '%s%02x%s' "$tag" "$n" "$val"
    elif (( n < 256 )); then printf '%s81%02x%s' "$tag" "$n" "$val"
    else printf '%s82%04x%s' "$tag" "$n" "$val"
    fi
}
OID_SRVNAME=06082b06010505070807          # 1.3.6.1.5.5.7.8.7 id-on-dnsSRV
# srvname_gn STRING_TAG TEXT -> GeneralName otherName [0] { OID, [0] EXPLICIT <string> }
srvname_gn() { tlv a0 "${OID_SRVNAME}$(tlv a0 "$(tlv "$1" "$(hexstr "$2")")")"; }
dnsname_gn() { tlv 82 "$(hexstr "$1")"; }
san_der() { tlv 30 "$(printf '%s' "$@")"; }

DER_SRVID_UTF8=$(san_der "$(srvname_gn 0c '_imaps.example.com')")
DER_NUL_IN_SAN=$(san_der "$(dnsname_gn 'mail.example.net\0.evil.org')")
DER_SRVID_NUL=$(san_der "$(srvname_gn 16 '_imaps.example.com\0.evil.org')")

# ---------------------------------------------------------------- openssl config
cat >"$W/openssl.cnf" <<CNF
[ ca ]
default_ca = CA_default

[ CA_default ]
dir              = $W
database         = $W/index.txt
serial           = $W/serial
new_certs_dir    = $W/new
default_md       = sha256
policy           = policy_any
email_in_dn      = no
copy_extensions  = none
unique_subject   = no
default_days     = 3650

# the added certificates: their own database, so that they are issued in parallel with the
# first set (whose serial numbers stay 1000...) rather than after it
[ CA_extra ]
dir              = $W
database         = $W/x/index.txt
serial           = $W/x/serial
new_certs_dir    = $W/x/new
default_md       = sha256
policy           = policy_any
email_in_dn      = no
copy_extensions  = none
unique_subject   = no
default_days     = 3650

[ policy_any ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = optional
emailAddress           = optional

[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder

[ ext_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ ext_nc_ca ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
nameConstraints        = critical, permitted;DNS:example.net

[ ext_dns_mail_example_net ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:mail.example.net

[ ext_srvid_imaps_example_com ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.example.com

[ ext_srvid_multi_example_com ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = @san_srv_multi
[ san_srv_multi ]
otherName.1 = 1.3.6.1.5.5.7.8.7;IA5STRING:_imap.example.com
otherName.2 = 1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.example.com
otherName.3 = 1.3.6.1.5.5.7.8.7;IA5STRING:_pop3.example.com
otherName.4 = 1.3.6.1.5.5.7.8.7;IA5STRING:_pop3s.example.com
otherName.5 = 1.3.6.1.5.5.7.8.7;IA5STRING:_submission.example.com
otherName.6 = 1.3.6.1.5.5.7.8.7;IA5STRING:_submissions.example.com

[ ext_dns_example_com ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:example.com

[ ext_wildcard_example_net ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:*.example.net

[ ext_no_san ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ ext_wrong_name ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:wrong.example.org

[ ext_srvid_utf8 ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
2.5.29.17              = DER:$DER_SRVID_UTF8

[ ext_nul_in_san ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
2.5.29.17              = DER:$DER_NUL_IN_SAN

[ ext_srvid_nul ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
2.5.29.17              = DER:$DER_SRVID_NUL

[ ext_idn_srvid ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.xn--bcher-kva.example, DNS:xn--bcher-kva.example

[ ext_selfsigned ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
subjectAltName         = DNS:mail.example.net

[ ext_srvid_multi_hosted_test ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = @san_srv_hosted
[ san_srv_hosted ]
otherName.1 = 1.3.6.1.5.5.7.8.7;IA5STRING:_imap.hosted.test
otherName.2 = 1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.hosted.test
otherName.3 = 1.3.6.1.5.5.7.8.7;IA5STRING:_pop3.hosted.test
otherName.4 = 1.3.6.1.5.5.7.8.7;IA5STRING:_pop3s.hosted.test
otherName.5 = 1.3.6.1.5.5.7.8.7;IA5STRING:_submission.hosted.test
otherName.6 = 1.3.6.1.5.5.7.8.7;IA5STRING:_submissions.hosted.test

[ ext_srvid_imaps_relayed ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.relayed.hosted.test

# the testbed's web server (web.sh): every HTTPS name it serves for account discovery
[ ext_web_autoconfig ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:autoconfig.ac.test,DNS:wk.ac.test,DNS:autoconfig.up.ac.test,DNS:autoconfig.down.ac.test,DNS:autoconfig.hop.ac.test,DNS:autoconfig.hopin.ac.test,DNS:hopin.ac.test,DNS:autoconfig.loop.ac.test,DNS:autoconfig.huge.ac.test,DNS:autoconfig.deep.ac.test,DNS:autoconfig.entity.ac.test,DNS:autoconfig.latin1.ac.test,DNS:autoconfig.broken.ac.test,DNS:autoconfig.dane.ac.test,DNS:autoconfig.danebad.ac.test,DNS:autoconfig.plainsock.ac.test,DNS:autoconfig.rank.ac.test,DNS:ispdb.ac.test,DNS:autoconfig.example.net

# web.sh, issue 17: the PACC hosts and the Exchange Autodiscover hosts
[ ext_web_discovery ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:ua-auto-config.pacc.example.com,DNS:ua-auto-config.paccbad.example.com,DNS:ua-auto-config.paccroll.example.com,DNS:ua-auto-config.pacc.ac.test,DNS:ua-auto-config.paccbad.ac.test,DNS:ua-auto-config.paccnotxt.ac.test,DNS:ua-auto-config.paccdeep.ac.test,DNS:ua-auto-config.paccbig.ac.test,DNS:autodiscover.adisc.ac.test,DNS:mailhost.adhttp.ac.test,DNS:autodiscover.adprov.example.net,DNS:autodiscover.adredir.ac.test,DNS:autodiscover.adloop.ac.test,DNS:autodiscover.adloop2.ac.test,DNS:autodiscover.adout.ac.test,DNS:autodiscover.adauth.ac.test,DNS:autodiscover.adhloop.ac.test,DNS:autodiscover.adhostile.ac.test

# mail.sh, issue 17: the servers guessing finds. guess.ac.test: the host names and the mail
# domain (so the probe proves it); guessu.ac.test: the host name only (the probe fails)
[ ext_guess_ac_test ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:guess.ac.test,DNS:imap.guess.ac.test,DNS:mail.guess.ac.test,DNS:smtp.guess.ac.test

[ ext_guessu_ac_test ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:imap.guessu.ac.test

[ ext_dns_dnshosted_test ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:dnshosted.test

[ ext_srvid_imaps_half_test ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.half.test

[ ext_srvid_pop3s_hosted_test ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_pop3s.hosted.test

[ ext_dane_ee ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
subjectAltName         = DNS:dane.example.net

[ ext_eku_client ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:mail.example.net

[ ext_wildcard_co_uk ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:*.co.uk

[ ext_wildcard_s3_amazonaws_com ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:*.s3.amazonaws.com

[ ext_dns_mail_example_com ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = DNS:mail.example.com
CNF

CNF=$W/openssl.cnf

# Leaves whose key is not P-256 (the leaf-key checks): NAME -> openssl req -newkey argument.
declare -A KEYTYPE=(
    [rsa-1024-mail-example-net]=rsa:1024
    [rsa-2048-mail-example-net]=rsa:2048
    [dsa-mail-example-net]=dsa:$W/dsa.param
)
# newkey NAME SUBJECT -> W/NAME.key (P-256 unless KEYTYPE says otherwise, PKCS#8) and W/NAME.csr
newkey() {
    local kt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    if [[ -n ${KEYTYPE[$1]:-} ]]; then
        kt=(-newkey "${KEYTYPE[$1]}")
        if [[ ${KEYTYPE[$1]} == dsa:* && ! -s $W/dsa.param ]]; then
            openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 \
                -out "$W/dsa.param.tmp" 2>/dev/null && mv "$W/dsa.param.tmp" "$W/dsa.param"
        fi
    fi
    openssl req -new -config "$CNF" "${kt[@]}" -nodes \
        -keyout "$W/$1.key" -out "$W/$1.csr" -subj "$2" 2>/dev/null
}
CA_SEC=CA_default   # the [ CA_* ] section (database) that sign and selfsign use
# sign NAME ISSUER EXT START END  (ISSUER is a basename in W: ca, other-ca, nc-ca)
sign() {
    openssl ca -batch -notext -config "$CNF" -name "$CA_SEC" -cert "$W/$2.crt" -keyfile "$W/$2.key" \
        -extensions "$3" -startdate "$4" -enddate "$5" \
        -in "$W/$1.csr" -out "$W/$1.crt" 2>"$W/$1.err" || { cat "$W/$1.err" >&2; return 1; }
}
selfsign() {  # NAME EXT START END
    openssl ca -batch -notext -selfsign -config "$CNF" -name "$CA_SEC" -keyfile "$W/$1.key" \
        -extensions "$2" -startdate "$3" -enddate "$4" \
        -in "$W/$1.csr" -out "$W/$1.crt" 2>"$W/$1.err" || { cat "$W/$1.err" >&2; return 1; }
}

# ---------------------------------------------------------------- keys + CSRs (parallel)
declare -A SUBJ=()
declare -A SUBJ_BASE=(
    [ca]="/CN=mailsrv Test CA"
    [other-ca]="/CN=Other CA"
    [nc-ca]="/CN=NC Intermediate"
    [dnsid-mail-example-net]="/CN=mail.example.net"
    [srvid-imaps-example-com]="/CN=SRV-ID test"
    [srvid-multi-example-com]="/CN=SRV-ID multi"
    [dnsid-example-com]="/CN=DNS-ID example.com"
    [wildcard-example-net]="/CN=wildcard example.net"
    [cn-only]="/CN=mail.example.net"
    [expired]="/CN=expired"
    [not-yet-valid]="/CN=not yet valid"
    [wrong-name]="/CN=wrong name"
    [untrusted]="/CN=untrusted"
    [srvid-utf8]="/CN=SRV-ID UTF8String"
    [nul-in-san]="/CN=NUL in dNSName"
    [srvid-nul]="/CN=NUL in SRVName"
    [idn-srvid]="/CN=IDN SRV-ID"
    [nc-srvid-outside]="/CN=NC SRV-ID outside"
    [nc-dns-inside]="/CN=NC DNS-ID inside"
    [selfsigned]="/CN=self-signed"
)
declare -A SUBJ_EXTRA=(
    [srvid-multi-hosted-test]="/CN=SRV-ID hosted"
    [dnsid-dnshosted-test]="/CN=DNS-ID dnshosted.test"
    [srvid-imaps-half-test]="/CN=SRV-ID half"
    [srvid-pop3s-hosted-test-only]="/CN=SRV-ID pop3s hosted only"
    [dane-ee-selfsigned]="/CN=DANE-EE self-signed"
    [dane-ee-expired-selfsigned]="/CN=DANE-EE expired self-signed"
    [eku-client]="/CN=EKU clientAuth only"
    [nc-dns-outside]="/CN=NC DNS-ID outside"
    [srvid-imaps-relayed-hosted-test]="/CN=SRV-ID relayed.hosted.test"
    [rsa-1024-mail-example-net]="/CN=RSA 1024 mail.example.net"
    [rsa-2048-mail-example-net]="/CN=RSA 2048 mail.example.net"
    [dsa-mail-example-net]="/CN=DSA mail.example.net"
    [wildcard-co-uk]="/CN=wildcard co.uk"
    [wildcard-s3-amazonaws-com]="/CN=wildcard s3.amazonaws.com"
    [web-autoconfig]="/CN=autoconfig web server"
    [web-discovery]="/CN=PACC and Autodiscover web server"
    [guess-ac-test]="/CN=guess.ac.test"
    [guessu-ac-test]="/CN=imap.guessu.ac.test"
)
if (( FULL )); then for n in "${!SUBJ_BASE[@]}"; do SUBJ[$n]=${SUBJ_BASE[$n]}; done; fi
for n in "${!SUBJ_EXTRA[@]}"; do SUBJ[$n]=${SUBJ_EXTRA[$n]}; done
pids=()
for n in "${!SUBJ[@]}"; do
    newkey "$n" "${SUBJ[$n]}" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

V=("$NOW_MINUS_2D" "$NOW_PLUS_10Y")
publish() {  # NAME CHAIN...   (chain = issuer certs, nearest first)
    local n=$1; shift
    cp "$W/$n.crt" "$OUT/$n.crt"
    install -m 600 "$W/$n.key" "$OUT/$n.key"
    ( umask 077; cat "$W/$n.key" "$W/$n.crt" "$@" >"$OUT/$n.pem" )
}
# ---------------------------------------------------------------- the added certificates
make_extras() {
    local CA_SEC=CA_extra n
    rm -rf "$W/x"
    mkdir -p "$W/x/new"
    : >"$W/x/index.txt"
    echo "unique_subject = no" >"$W/x/index.txt.attr"
    echo 2000 >"$W/x/serial"
    sign srvid-multi-hosted-test      ca ext_srvid_multi_hosted_test  "${V[@]}"
    sign dnsid-dnshosted-test         ca ext_dns_dnshosted_test       "${V[@]}"
    sign srvid-imaps-half-test        ca ext_srvid_imaps_half_test    "${V[@]}"
    sign srvid-pop3s-hosted-test-only ca ext_srvid_pop3s_hosted_test  "${V[@]}"
    sign srvid-imaps-relayed-hosted-test ca ext_srvid_imaps_relayed   "${V[@]}"
    sign eku-client                   ca ext_eku_client               "${V[@]}"
    sign web-autoconfig               ca ext_web_autoconfig           "${V[@]}"
    sign web-discovery                ca ext_web_discovery            "${V[@]}"
    sign guess-ac-test                ca ext_guess_ac_test            "${V[@]}"
    sign guessu-ac-test               ca ext_guessu_ac_test           "${V[@]}"
    sign nc-dns-outside               nc-ca ext_dns_mail_example_com  "${V[@]}"
    sign rsa-1024-mail-example-net    ca ext_dns_mail_example_net     "${V[@]}"
    sign rsa-2048-mail-example-net    ca ext_dns_mail_example_net     "${V[@]}"
    sign dsa-mail-example-net         ca ext_dns_mail_example_net     "${V[@]}"
    sign wildcard-co-uk               ca ext_wildcard_co_uk           "${V[@]}"
    sign wildcard-s3-amazonaws-com    ca ext_wildcard_s3_amazonaws_com "${V[@]}"
    selfsign dane-ee-selfsigned         ext_dane_ee                   "${V[@]}"
    # the same name as dane-ee-selfsigned (so it does not name its host daneexp.example.net), expired
    selfsign dane-ee-expired-selfsigned ext_dane_ee                   20200101000000Z 20200201000000Z
    for n in srvid-multi-hosted-test dnsid-dnshosted-test srvid-imaps-half-test \
             srvid-pop3s-hosted-test-only eku-client srvid-imaps-relayed-hosted-test \
             rsa-1024-mail-example-net rsa-2048-mail-example-net dsa-mail-example-net \
             wildcard-co-uk wildcard-s3-amazonaws-com web-autoconfig web-discovery \
             guess-ac-test guessu-ac-test; do
        publish "$n" "$W/ca.crt"
    done
    publish nc-dns-outside "$W/nc-ca.crt" "$W/ca.crt"
    publish dane-ee-selfsigned
    publish dane-ee-expired-selfsigned
    # NAME.tlsa: hex SHA-256 of the SubjectPublicKeyInfo DER, the data of a "TLSA 3 1 1" record
    for n in "${TLSA[@]}"; do
        openssl x509 -in "$W/$n.crt" -noout -pubkey | openssl pkey -pubin -outform DER \
            | openssl dgst -sha256 -r | awk '{print $1}' >"$OUT/$n.tlsa.tmp"
        [[ $(<"$OUT/$n.tlsa.tmp") =~ ^[0-9a-f]{64}$ ]] || { echo "certs.sh: bad SPKI hash for $n" >&2; return 1; }
        mv "$OUT/$n.tlsa.tmp" "$OUT/$n.tlsa"
    done
}

if (( FULL )); then
# ---------------------------------------------------------------- CAs
selfsign ca ext_ca "$CA_START" "$CA_END"
selfsign other-ca ext_ca "$CA_START" "$CA_END"
sign nc-ca ca ext_nc_ca "$CA_START" "$CA_END"
make_extras & XPID=$!

# ---------------------------------------------------------------- leaves
sign dnsid-mail-example-net  ca ext_dns_mail_example_net     "${V[@]}"
sign srvid-imaps-example-com ca ext_srvid_imaps_example_com  "${V[@]}"
sign srvid-multi-example-com ca ext_srvid_multi_example_com  "${V[@]}"
sign dnsid-example-com       ca ext_dns_example_com          "${V[@]}"
sign wildcard-example-net    ca ext_wildcard_example_net     "${V[@]}"
sign cn-only                 ca ext_no_san                   "${V[@]}"
sign expired                 ca ext_dns_mail_example_net     20200101000000Z 20200201000000Z
sign not-yet-valid           ca ext_dns_mail_example_net     20990101000000Z 21000101000000Z
sign wrong-name              ca ext_wrong_name               "${V[@]}"
sign untrusted               other-ca ext_dns_mail_example_net "${V[@]}"
sign srvid-utf8              ca ext_srvid_utf8               "${V[@]}"
sign nul-in-san              ca ext_nul_in_san               "${V[@]}"
sign srvid-nul               ca ext_srvid_nul                "${V[@]}"
sign idn-srvid               ca ext_idn_srvid                "${V[@]}"
sign nc-srvid-outside        nc-ca ext_srvid_imaps_example_com "${V[@]}"
sign nc-dns-inside           nc-ca ext_dns_mail_example_net  "${V[@]}"
selfsign selfsigned          ext_selfsigned                  "${V[@]}"

# ---------------------------------------------------------------- publish
for n in dnsid-mail-example-net srvid-imaps-example-com srvid-multi-example-com dnsid-example-com \
         wildcard-example-net cn-only expired not-yet-valid wrong-name srvid-utf8 nul-in-san \
         srvid-nul idn-srvid; do
    publish "$n" "$W/ca.crt"
done
publish untrusted "$W/other-ca.crt"
publish nc-srvid-outside "$W/nc-ca.crt" "$W/ca.crt"
publish nc-dns-inside "$W/nc-ca.crt" "$W/ca.crt"
publish selfsigned
cp "$W/other-ca.crt" "$OUT/other-ca.crt"
cp "$W/nc-ca.crt" "$OUT/nc-ca.crt"
cp "$W/ca.crt" "$OUT/ca-bundle.pem"
wait "$XPID"
else
    make_extras
fi

# ca.crt last: its presence marks a complete OUT
if (( FULL )); then
    cp "$W/ca.crt" "$OUT/ca.crt.tmp" && mv "$OUT/ca.crt.tmp" "$OUT/ca.crt"
fi
