#!/usr/bin/env bash
# dns.sh start DIR [CERTDIR] | stop DIR | set-srv DIR ZONE OWNER [RDATA...]
#   -- authoritative knotd for the mailsrv tests.
#
# One knotd serves a fake, DNSSEC-signed DNS tree on loopback:
#   .  ->  com. net. test. example.  ->  example.com example.net example.test
#          insecure.test hosted.test dnshosted.test half.test moved.test (no DS: unsigned)
#          bogus.test (wrong DS) broken.test (no DS, zone fails to load)
#          xn--bcher-kva.example
# All signed zones are signed by knotd itself (ECDSA P-256, NSEC, no key rollover).
# Trust anchors for the fake root land in DIR/anchors/.
#
# start: example.net carries TLSA 3 1 1 records made from CERTDIR/dane-ee-*.tlsa (certs.sh).
#   knotd starts at once; the TLSA records are added when CERTDIR is complete (CERTDIR/ca.crt
#   and the .tlsa files exist), so certs.sh may run at the same time (up.sh does). Without
#   CERTDIR, dns.sh runs certs.sh DIR/certs itself.
# set-srv DIR ZONE OWNER [RDATA...]: replaces the SRV RRset of OWNER (relative to ZONE, or
#   absolute with a final dot) in the zone file of the running knotd, reloads the zone with
#   knotc and returns once knotd serves exactly the new records (signed, in a signed zone).
#   Each RDATA is one record, "PRIO WEIGHT PORT TARGET"; none removes the RRset.
#   DIR may also be up.sh's DIR (then DIR/dns is used). A restart of dns.sh restores the zone.
#
# Env: DNS_ADDR (127.0.10.1) DNS_PORT (5353) DNS_ADDR6 (::1, empty = no IPv6)
#      IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT SUBMISSION_PORT SUBMISSIONS_PORT (SRV ports)
# Writes only inside DIR. A restart on the same DIR keeps the keys (and so the anchors).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

CMD=${1:-}; DIR=${2:-}
[[ ($CMD == start || $CMD == stop || $CMD == set-srv) && -n $DIR ]] \
    || die "usage: dns.sh start DIR [CERTDIR] | stop DIR | set-srv DIR ZONE OWNER [RDATA...]"

READY_TIMEOUT=${DNS_READY_TIMEOUT:-20}

# zone -> parent; "-" for the root
declare -A PARENT=(
    [.]=- [com.]=. [net.]=. [test.]=. [example.]=.
    [example.com.]=com. [example.net.]=net.
    [example.test.]=test. [insecure.test.]=test. [bogus.test.]=test. [broken.test.]=test.
    [hosted.test.]=test. [dnshosted.test.]=test. [half.test.]=test. [moved.test.]=test.
    [ac.test.]=test.
    [xn--bcher-kva.example.]=example.
)
PARENTS=(. com. net. test. example.)                     # zones that carry delegations
LEAVES=(example.com. example.net. example.test. bogus.test. xn--bcher-kva.example.)  # signed, no children
UNSIGNED=(insecure.test. hosted.test. dnshosted.test. half.test. moved.test. ac.test.)
BROKEN=(broken.test.)
SIGNED=("${PARENTS[@]}" "${LEAVES[@]}")
NO_DS=("${UNSIGNED[@]}" broken.test.)                    # delegated without DS
# the DANE-EE certificates whose SPKI hashes (CERTDIR/NAME.tlsa) go into example.net
TLSA_CERTS=(dane-ee-selfsigned dane-ee-expired-selfsigned)
BAD_DS=(bogus.test.)                                     # delegated with a wrong DS

fname() { [[ $1 == . ]] && echo root.zone || echo "${1%.}.zone"; }
write_zone() {  # ZONE (content on stdin); rewritten only when it changed
    local f=$DIR/zones/$(fname "$1") tmp
    tmp=$(mktemp "$DIR/zones/.tmp.XXXXXX")
    cat >"$tmp"
    if [[ -f $f ]] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv "$tmp" "$f"; fi
}

stop_dns() {
    local pids=()
    [[ -s $DIR/knotd.pid ]] && pids+=("$(cat "$DIR/knotd.pid")")
    [[ -s $DIR/run/knot.pid ]] && pids+=("$(cat "$DIR/run/knot.pid")")
    (( ${#pids[@]} )) && stop_pids knotd 10 "${pids[@]}"
    rm -f "$DIR/knotd.pid" "$DIR/run/knot.pid"
}

if [[ $CMD == stop ]]; then
    [[ -d $DIR ]] || exit 0
    DIR=$(cd "$DIR" && pwd)
    stop_dns
    exit 0
fi

# ------------------------------------------------------------------ set-srv
if [[ $CMD == set-srv ]]; then
    (( $# >= 4 )) || die "usage: dns.sh set-srv DIR ZONE OWNER [RDATA...]"
    [[ -d $DIR ]] || die "set-srv: no directory $DIR"
    DIR=$(cd "$DIR" && pwd)
    [[ ! -f $DIR/knot.conf && -f $DIR/dns/knot.conf ]] && DIR=$DIR/dns   # up.sh's DIR
    [[ -f $DIR/knot.conf ]] || die "set-srv: no knot.conf in $DIR"
    pidfile_alive "$DIR/knotd.pid" || pidfile_alive "$DIR/run/knot.pid" || die "set-srv: knotd does not run for $DIR"
    ZONE=${3,,}; [[ $ZONE == *. ]] || ZONE=$ZONE.
    [[ " ${SIGNED[*]} ${UNSIGNED[*]} " == *" $ZONE "* ]] || die "set-srv: $ZONE is not a zone of the testbed"
    OWNER=${4,,}
    if [[ $OWNER == @ || $OWNER == "$ZONE" ]]; then REL=@; ABS=$ZONE
    elif [[ $OWNER == *."$ZONE" ]]; then REL=${OWNER%."$ZONE"}; ABS=$OWNER
    elif [[ $OWNER == *. ]]; then die "set-srv: $4 is not inside $ZONE"
    else REL=$OWNER; ABS=$OWNER.$ZONE
    fi
    shift 4
    RECS=()
    for arg in "$@"; do
        while IFS= read -r line; do
            [[ -n ${line//[[:space:]]/} ]] || continue
            read -r pr w po t extra <<<"$line"
            [[ $pr =~ ^[0-9]+$ && $w =~ ^[0-9]+$ && $po =~ ^[0-9]+$ && -n $t && -z $extra ]] \
                || die "set-srv: bad SRV RDATA '$line' (want: PRIORITY WEIGHT PORT TARGET)"
            t=${t,,}; [[ $t == *. ]] || t=$t.$ZONE
            RECS+=("$pr $w $po $t")
        done <<<"$arg"
    done
    F=$DIR/zones/$(fname "$ZONE")
    [[ -f $F ]] || die "set-srv: no zone file $F"
    READY_TIMEOUT=${DNS_READY_TIMEOUT:-20}
    T0=$(now_ms); DEADLINE=$(( T0 + READY_TIMEOUT * 1000 ))
    # one change at a time: read, rewrite and reload the zone file under a lock
    exec 9>"$DIR/zones/.set-srv.lock"
    flock -w "$READY_TIMEOUT" 9 || die "set-srv: $DIR/zones/.set-srv.lock is held by another set-srv"
    AWK_RR='function own(x) { x = tolower(x); return x == r || x == a }
            function rtype(  i) { for (i = 2; i <= NF; i++) { if ($i ~ /^[0-9]+$/ || toupper($i) == "IN") continue; return toupper($i) } return "" }'
    # keep the TTL of the RRset (lowttl has 60), if the zone file gives one
    ttl=$(awk -v r="$REL" -v a="$ABS" "$AWK_RR"' own($1) && rtype() == "SRV" && $2 ~ /^[0-9]+$/ { print $2; exit }' "$F")
    {
        awk -v r="$REL" -v a="$ABS" "$AWK_RR"' !(own($1) && rtype() == "SRV")' "$F"
        for rec in "${RECS[@]}"; do echo "$REL ${ttl:+$ttl }SRV $rec"; done
    } | write_zone "$ZONE"
    knotc -c "$DIR/knot.conf" -b zone-reload "$ZONE" >/dev/null || die "set-srv: knotc zone-reload $ZONE failed"
    # wait until knotd serves exactly RECS (with an RRSIG in a signed zone)
    listen=$(awk '$1 == "listen:" { print $2; exit }' "$DIR/knot.conf")   # ADDR@PORT
    KDIG=(kdig @"${listen%@*}" -p "${listen##*@}" +tcp +timeout=1 +retry=0 +noidn +noall +answer +dnssec)
    want=$(printf '%s\n' "${RECS[@]}" | sed '/^$/d' | sort)
    signed=0; [[ " ${SIGNED[*]} " == *" $ZONE "* ]] && signed=1
    served() {
        local out got
        out=$("${KDIG[@]}" "$ABS" SRV 2>/dev/null) || return 1
        got=$(awk '$4 == "SRV" { print tolower($5 " " $6 " " $7 " " $8) }' <<<"$out" | sort)
        [[ $got == "$want" ]] || return 1
        (( signed && ${#RECS[@]} )) || return 0
        awk '$4 == "RRSIG" && $5 == "SRV" { f = 1 } END { exit !f }' <<<"$out"
    }
    until served; do
        (( $(now_ms) < DEADLINE )) || die "set-srv: knotd does not serve the new $ABS SRV after ${READY_TIMEOUT}s"
        sleep 0.03
    done
    echo "dns: $ABS SRV = ${RECS[*]:-(none)} in $(( $(now_ms) - T0 )) ms"
    exit 0
fi

# ------------------------------------------------------------------ start
CERTDIR=${3:-}
OWN_CERTS=0
if [[ -z $CERTDIR ]]; then CERTDIR=$DIR/certs; OWN_CERTS=1; fi
[[ $CERTDIR == /* ]] || CERTDIR=$PWD/$CERTDIR
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if pidfile_alive "$DIR/knotd.pid" || pidfile_alive "$DIR/run/knot.pid"; then
    die "knotd already runs for $DIR (pid $(cat "$DIR/knotd.pid" 2>/dev/null || cat "$DIR/run/knot.pid")); run 'dns.sh stop $DIR' first"
fi
for a in "$DNS_ADDR" ${DNS_ADDR6:+"$DNS_ADDR6"}; do
    if listening u "$a" "$DNS_PORT" || listening t "$a" "$DNS_PORT"; then
        die "something already listens on $a port $DNS_PORT"
    fi
done
mkdir -p "$DIR/zones" "$DIR/db" "$DIR/run" "$DIR/anchors"
rm -f "$DIR/knotd.log"

# ------------------------------------------------------------------ knot.conf
{
    echo "server:"
    echo "    rundir: $DIR/run"
    echo "    pidfile: $DIR/run/knot.pid"
    [[ $(id -u) == 0 ]] && echo "    user: root:root"
    echo "    listen: $DNS_ADDR@$DNS_PORT"
    [[ -n $DNS_ADDR6 ]] && echo "    listen: $DNS_ADDR6@$DNS_PORT"
    cat <<CONF
    udp-workers: 1
    tcp-workers: 1
    background-workers: 2

log:
  - target: stderr
    any: info

database:
    storage: $DIR/db

control:
    listen: $DIR/run/knot.sock

policy:
  - id: test
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    nsec3: off
    dnskey-ttl: 300
    zone-max-ttl: 300
    propagation-delay: 0

template:
  - id: default
    storage: $DIR/zones
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    semantic-checks: off
  - id: signed
    storage: $DIR/zones
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    dnssec-signing: on
    dnssec-policy: test

zone:
CONF
    for z in "${SIGNED[@]}"; do
        printf '  - domain: "%s"\n    template: signed\n    file: "%s"\n' "$z" "$(fname "$z")"
    done
    for z in "${UNSIGNED[@]}" "${BROKEN[@]}"; do
        printf '  - domain: "%s"\n    file: "%s"\n' "$z" "$(fname "$z")"
    done
} >"$DIR/knot.conf"

# ------------------------------------------------------------------ zone files
# certs_ready -> CERTDIR is complete (ca.crt is written last) and holds the .tlsa files
certs_ready() {
    local n
    [[ -s $CERTDIR/ca.crt ]] || return 1
    for n in "${TLSA_CERTS[@]}"; do [[ -s $CERTDIR/$n.tlsa ]] || return 1; done
}
# read_tlsa -> TLSA[NAME] = the hex SPKI hash of CERTDIR/NAME.crt
declare -A TLSA=()
read_tlsa() {
    local n h
    for n in "${TLSA_CERTS[@]}"; do
        h=$(tr -d ' \n' <"$CERTDIR/$n.tlsa")
        [[ $h =~ ^[0-9a-fA-F]{64}$ ]] || { echo "testbed: dns: $CERTDIR/$n.tlsa holds no SHA-256 hex" >&2; return 1; }
        TLSA[$n]=${h,,}
    done
}
# head ZONE -> $TTL, SOA, apex NS ns1.ZONE (or ns.root-servers. for the root) and its address
zone_head() {
    local z=$1 ns
    if [[ $z == . ]]; then ns=ns.root-servers.; else ns=ns1.$z; fi
    echo "\$ORIGIN $z"
    echo "\$TTL 300"
    echo "@ SOA $ns hostmaster.${z#.} 1 3600 600 86400 300"
    echo "@ NS $ns"
    echo "$ns A $DNS_ADDR"
    [[ -n $DNS_ADDR6 ]] && echo "$ns AAAA $DNS_ADDR6"
    return 0
}
six_services() {  # the RFC 6186/8314 SRV set pointing at mail.example.net
    cat <<Z
_imaps._tcp        SRV 0  1 $IMAPS_PORT mail.example.net.
_imap._tcp         SRV 10 1 $IMAP_PORT mail.example.net.
_submissions._tcp  SRV 0  1 $SUBMISSIONS_PORT mail.example.net.
_submission._tcp   SRV 0  1 $SUBMISSION_PORT mail.example.net.
_pop3s._tcp        SRV 20 1 $POP3S_PORT mail.example.net.
_pop3._tcp         SRV 0  0 0 .
Z
}

# the TXT text of a PACC document's digest (pacc.sh: the same bytes web.sh serves)
pacc_txt() { echo "\"$("$HERE/pacc.sh" "$1" digest)\""; }

{ zone_head example.com.; six_services; cat <<Z
@ A 127.0.0.1
@ AAAA ::1
; PACC (issue 17) in a signed zone: a matching digest, a mismatching one, two during a rollover
ua-auto-config.pacc A $WEB_ADDR
_ua-auto-config.pacc TXT $(pacc_txt good)
ua-auto-config.paccbad A $WEB_ADDR
_ua-auto-config.paccbad TXT $(pacc_txt other)
ua-auto-config.paccroll A $WEB_ADDR
_ua-auto-config.paccroll TXT $(pacc_txt other)
_ua-auto-config.paccroll TXT $(pacc_txt good)
; Exchange Autodiscover: a signed SRV record naming a host in another domain
_autodiscover._tcp.adsrv SRV 0 0 443 autodiscover.adprov.example.net.
; account discovery: a signed MX into the provider example.net (autoconfig.example.net)
mxs MX 10 mx1.example.net.
_imaps._tcp.multi SRV 10 60 $IMAPS_PORT a.example.net.
_imaps._tcp.multi SRV 10 20 $IMAPS_PORT b.example.net.
_imaps._tcp.multi SRV 20 0  $IMAPS_PORT c.example.net.
_imaps._tcp.mixed SRV 0 0 0 .
_imaps._tcp.mixed SRV 0 1 $IMAPS_PORT mail.example.net.
_imaps._tcp.inzone SRV 0 1 $IMAPS_PORT host.inzone.example.com.
host.inzone A 127.0.0.1
host.inzone AAAA ::1
_imaps._tcp.alias CNAME _imaps._tcp.example.com.
_imaps._tcp.cnametarget SRV 0 1 $IMAPS_PORT mail.example.com.
mail CNAME mail.example.net.
_imaps._tcp.v6 SRV 0 1 $IMAPS_PORT v6only.example.net.
_imaps._tcp.noaddr SRV 0 1 $IMAPS_PORT noaddr.example.net.
_imaps._tcp.prio SRV 10 1 $IMAPS_PORT a.example.net.
_imaps._tcp.prio SRV 0 1 $IMAPS_PORT b.example.net.
_imaps._tcp.zero SRV 0 0 $IMAPS_PORT a.example.net.
_imaps._tcp.zero SRV 0 0 $IMAPS_PORT b.example.net.
_imaps._tcp.weights SRV 0 0 $IMAPS_PORT a.example.net.
_imaps._tcp.weights SRV 0 1 $IMAPS_PORT b.example.net.
_imaps._tcp.weights SRV 0 3 $IMAPS_PORT c.example.net.
_imaps._tcp.lowttl 60 SRV 0 1 $IMAPS_PORT mail.example.net.
_imaps._tcp.shortttl 3 SRV 0 1 $IMAPS_PORT mail.example.net.
_imaps._tcp.pop SRV 10 1 $IMAPS_PORT mail.example.net.
_pop3s._tcp.pop SRV 0 1 $POP3S_PORT mail.example.net.
_imaps._tcp.dane SRV 0 1 $IMAPS_PORT dane.example.net.
_imaps._tcp.daneexp SRV 0 1 $IMAPS_PORT daneexp.example.net.
_imaps._tcp.danebad SRV 0 1 $IMAPS_PORT danebad.example.net.
Z
  for i in $(seq -w 1 40); do echo "_imaps._tcp.big SRV 0 1 $IMAPS_PORT h$i.example.net."; done
} | write_zone example.com.

# example.net; with-tlsa adds the TLSA records of the DANE-EE certificates (read_tlsa first)
net_zone() {
    zone_head example.net.; cat <<Z
mail A 127.0.0.1
mail AAAA ::1
a A 127.0.0.2
b A 127.0.0.3
c A 127.0.0.4
v6only AAAA ::1
noaddr TXT "no address"
www CNAME mail
srvonly A 127.0.20.6
dane A 127.0.20.7
daneexp A 127.0.20.8
danebad A 127.0.20.7
_$IMAPS_PORT._tcp.danebad TLSA 3 1 1 0000000000000000000000000000000000000000000000000000000000000000
relay A $RELAY_ADDR
mx1 A 127.0.0.1
autoconfig A $WEB_ADDR
autodiscover.adprov A $WEB_ADDR
imap.guessdane A 127.0.20.7
danepkix A $RELAY_ADDR
_$IMAPS_PORT._tcp.danepkix TLSA 3 1 1 0000000000000000000000000000000000000000000000000000000000000000
Z
    for i in $(seq -w 1 40); do echo "h$i A 127.0.0.1"; done
    if [[ ${1:-} == with-tlsa ]]; then
        echo "_$IMAPS_PORT._tcp.dane TLSA 3 1 1 ${TLSA[dane-ee-selfsigned]}"
        echo "_$IMAPS_PORT._tcp.daneexp TLSA 3 1 1 ${TLSA[dane-ee-expired-selfsigned]}"
        # guessing (issue 17): the guessed imap.guessdane.example.net proves itself by DANE
        echo "_$IMAPS_PORT._tcp.imap.guessdane TLSA 3 1 1 ${TLSA[dane-ee-selfsigned]}"
    fi
}
# the TLSA records go in at once when the certificates exist, else in step 2 (after knotd started)
if certs_ready; then read_tlsa || exit 1; fi
net_zone ${TLSA[dane-ee-selfsigned]:+with-tlsa} | write_zone example.net.

{ zone_head insecure.test.; six_services; echo "@ A 127.0.0.1"; } | write_zone insecure.test.

# unsigned zones for the TLS probe (no DNSSEC: the probe alone has to authenticate the SRV answer)
{ zone_head hosted.test.; cat <<Z
_imaps._tcp       SRV 0  1 $IMAPS_PORT mail.example.net.
_submissions._tcp SRV 0  1 $SUBMISSIONS_PORT mail.example.net.
_imap._tcp        SRV 10 1 $IMAP_PORT mail.example.net.
_submission._tcp  SRV 10 1 $SUBMISSION_PORT mail.example.net.
_pop3s._tcp       SRV 0  1 $POP3S_PORT srvonly.example.net.
@ A 127.0.0.1
autoconfig A $WEB_ADDR
; the SNI-relay attack: an (unsigned, so forgeable) SRV record naming the relay
_imaps._tcp.relayed SRV 0 1 $IMAPS_PORT relay.example.net.
Z
} | write_zone hosted.test.

# ac.test (unsigned): mail domains for account discovery (web.sh serves their documents)
{ zone_head ac.test.
  for n in autoconfig autoconfig.plain wk autoconfig.up autoconfig.down autoconfig.hop autoconfig.hopin \
           hopin autoconfig.loop autoconfig.huge autoconfig.deep autoconfig.entity autoconfig.latin1 \
           autoconfig.broken autoconfig.dane autoconfig.danebad autoconfig.plainsock autoconfig.rank \
           ispdb \
           ua-auto-config.pacc ua-auto-config.paccbad ua-auto-config.paccnotxt ua-auto-config.paccdeep \
           ua-auto-config.paccbig \
           autodiscover.adisc autodiscover.adhttp mailhost.adhttp autodiscover.adredir autodiscover.adloop \
           autodiscover.adloop2 autodiscover.adout autodiscover.adauth autodiscover.adhloop \
           autodiscover.adhostile; do
      echo "$n A $WEB_ADDR"
  done
  cat <<Z
autoconfig.slow A $WEB_SLOW_ADDR
autoconfig.slowprov A $WEB_SLOW_ADDR
mxu MX 10 mx1.example.net.
mxi MX 10 mx.ispdbprov.ac.test.
rank MX 10 mx.slowprov.ac.test.
; PACC (issue 17), unsigned: matching, mismatching, a hostile document (matching), too big
_ua-auto-config.pacc TXT $(pacc_txt good)
_ua-auto-config.paccbad TXT $(pacc_txt other)
_ua-auto-config.paccdeep TXT $(pacc_txt deep)
_ua-auto-config.paccbig TXT $(pacc_txt big)
; Exchange Autodiscover: an unsigned SRV record naming a host outside ac.test
_autodiscover._tcp.adsrvu SRV 0 0 443 autodiscover.adprov.example.net.
; guessing: imap. and smtp. of guess.ac.test (their certificate names guess.ac.test too),
; imap. of guessu.ac.test (its certificate names only itself)
imap.guess A 127.0.0.1
smtp.guess A 127.0.0.1
imap.guessu A 127.0.0.1
Z
} | write_zone ac.test.

{ zone_head dnshosted.test.; echo "_imaps._tcp SRV 0 1 $IMAPS_PORT mail.example.net."; } | write_zone dnshosted.test.

{ zone_head half.test.; cat <<Z
_imaps._tcp       SRV 0 1 $IMAPS_PORT mail.example.net.
_submissions._tcp SRV 0 1 $SUBMISSIONS_PORT mail.example.net.
Z
} | write_zone half.test.

# moved.test: tests change its target at run time (dns.sh set-srv); a restart restores it
{ zone_head moved.test.; echo "_imaps._tcp SRV 0 1 $IMAPS_PORT mail.example.net."; } | write_zone moved.test.

{ zone_head bogus.test.; cat <<Z
_imaps._tcp       SRV 0 1 $IMAPS_PORT mail.example.net.
_submissions._tcp SRV 0 1 $SUBMISSIONS_PORT mail.example.net.
Z
} | write_zone bogus.test.

{ zone_head example.test.; cat <<Z
_imaps._tcp SRV 0 1 $IMAPS_PORT mail.example.test.
mail A 127.0.0.1
Z
} | write_zone example.test.

{ zone_head xn--bcher-kva.example.; cat <<Z
_imaps._tcp       SRV 0 1 $IMAPS_PORT mail.example.net.
_submissions._tcp SRV 0 1 $SUBMISSIONS_PORT mail.example.net.
Z
} | write_zone xn--bcher-kva.example.

# broken.test: declared in knot.conf, but its zone file does not parse -> SERVFAIL
printf 'this is { not a zone file\n' | write_zone broken.test.

# parents: delegations (+glue) for their children; DS records come in step 2
parent_zone() {  # ZONE [with-ds]
    local z=$1 c ds
    zone_head "$z"
    for c in "${!PARENT[@]}"; do
        [[ ${PARENT[$c]} == "$z" ]] || continue
        echo "$c NS ns1.$c"
        echo "ns1.$c A $DNS_ADDR"
        [[ -n $DNS_ADDR6 ]] && echo "ns1.$c AAAA $DNS_ADDR6"
        if [[ ${2:-} == with-ds ]]; then
            if [[ " ${NO_DS[*]} " == *" $c "* ]]; then continue; fi
            ds=$(keymgr -c "$DIR/knot.conf" "$c" ds | awk '$2=="DS" && $5=="2"')
            [[ -n $ds ]] || die "keymgr printed no DS for $c"
            if [[ " ${BAD_DS[*]} " == *" $c "* ]]; then
                # right key tag and algorithm, digest zeroed
                ds=$(awk '{printf "%s DS %s %s %s %s\n", $1, $3, $4, $5, "0000000000000000000000000000000000000000000000000000000000000000"}' <<<"$ds")
            fi
            echo "$ds"
        fi
    done | sort
}
for z in "${PARENTS[@]}"; do
    # keep an existing (final) version on restart: the keys, and so the DS, do not change
    [[ -f $DIR/zones/$(fname "$z") ]] || parent_zone "$z" | write_zone "$z"
done

# ------------------------------------------------------------------ start knotd
T0=$(now_ms)
CERTS_PID=
if (( OWN_CERTS )); then "$HERE/certs.sh" "$CERTDIR" >/dev/null & CERTS_PID=$!; fi
KPID=
# stopped while starting (up.sh does that when certs.sh fails): take knotd along
trap '[[ -n $KPID ]] && stop_pids knotd 10 "$KPID"; stop_dns; exit 143' TERM
trap '[[ -n $KPID ]] && stop_pids knotd 10 "$KPID"; stop_dns; exit 130' INT
knotd -c "$DIR/knot.conf" </dev/null >"$DIR/knotd.log" 2>&1 &
KPID=$!
echo "$KPID" >"$DIR/knotd.pid"
DEADLINE=$(( T0 + READY_TIMEOUT * 1000 ))

fail() {
    echo "testbed: dns: $*" >&2
    echo "---- $DIR/knotd.log (tail)" >&2
    tail -n 40 "$DIR/knotd.log" >&2 || true
    stop_dns
    [[ -n $CERTS_PID ]] && { wait "$CERTS_PID" 2>/dev/null || true; }
    exit 1
}
# TCP: a query sent before knotd reads its UDP socket would wait for the whole timeout
KDIG=(kdig @"$DNS_ADDR" -p "$DNS_PORT" +tcp +timeout=1 +retry=0 +noidn +noall +answer +dnssec)

# poll_until DESCRIPTION COMMAND... -> repeats COMMAND until it succeeds (bounded)
poll_until() {
    local what=$1; shift
    while ! "$@"; do
        pid_alive "$KPID" || fail "knotd exited while waiting for $what"
        (( $(now_ms) < DEADLINE )) || fail "not ready after ${READY_TIMEOUT}s: $what"
        sleep 0.03
    done
}
# every signed zone answers SOA with an RRSIG, the unsigned ones answer SOA
all_soa() {
    local q=() z out
    for z in "${SIGNED[@]}" "${UNSIGNED[@]}"; do q+=("$z" SOA); done
    out=$("${KDIG[@]}" "${q[@]}" 2>/dev/null) || return 1
    for z in "${SIGNED[@]}"; do
        awk -v z="$z" '$1==z && $4=="RRSIG" && $5=="SOA" {f=1} END {exit !f}' <<<"$out" || return 1
    done
    for z in "${UNSIGNED[@]}"; do
        awk -v z="$z" '$1==z && $4=="SOA" {f=1} END {exit !f}' <<<"$out" || return 1
    done
}
poll_until "SOA of every zone" all_soa

# step 2: now that every zone has its keys, put the DS records into the parents,
# and the TLSA records (once the certificates exist) into example.net
for z in "${PARENTS[@]}"; do parent_zone "$z" with-ds | write_zone "$z"; done
if [[ -n $CERTS_PID ]]; then wait "$CERTS_PID" || fail "certs.sh $CERTDIR failed"; CERTS_PID=; fi
poll_until "the certificates in $CERTDIR (ca.crt, ${TLSA_CERTS[*]/%/.tlsa})" certs_ready
read_tlsa || fail "bad .tlsa file in $CERTDIR"
net_zone with-tlsa | write_zone example.net.
knotc -c "$DIR/knot.conf" zone-reload "${PARENTS[@]}" example.net. >/dev/null \
    || fail "knotc zone-reload failed"

# ...and wait until every secure delegation serves its (signed) DS
all_ds() {
    local q=() c out
    for c in "${!PARENT[@]}"; do
        [[ $c == . || " ${NO_DS[*]} " == *" $c "* ]] && continue
        q+=("$c" DS)
    done
    out=$("${KDIG[@]}" "${q[@]}" 2>/dev/null) || return 1
    for c in "${!PARENT[@]}"; do
        [[ $c == . || " ${NO_DS[*]} " == *" $c "* ]] && continue
        awk -v z="$c" '$1==z && $4=="RRSIG" && $5=="DS" {f=1} END {exit !f}' <<<"$out" || return 1
    done
}
poll_until "DS of every secure delegation" all_ds
# ...and the signed TLSA records
all_tlsa() {
    local out
    out=$("${KDIG[@]}" "_$IMAPS_PORT._tcp.dane.example.net." TLSA "_$IMAPS_PORT._tcp.daneexp.example.net." TLSA 2>/dev/null) || return 1
    tlsa_served "_$IMAPS_PORT._tcp.dane.example.net." "${TLSA[dane-ee-selfsigned]}" <<<"$out" || return 1
    tlsa_served "_$IMAPS_PORT._tcp.daneexp.example.net." "${TLSA[dane-ee-expired-selfsigned]}" <<<"$out"
}
tlsa_served() {  # OWNER HEX <kdig output
    awk -v o="$1" -v h="$2" '$1 == o && $4 == "TLSA" { d = ""; for (i = 8; i <= NF; i++) d = d $i; if (tolower(d) == h && $5 $6 $7 == "311") t = 1 }
                             $1 == o && $4 == "RRSIG" && $5 == "TLSA" { s = 1 } END { exit !(t && s) }'
}
poll_until "the TLSA records of example.net" all_tlsa
trap - TERM INT

# ------------------------------------------------------------------ anchors
keymgr -c "$DIR/knot.conf" . ds | awk '$2=="DS" {$2="IN DS"; print}' >"$DIR/anchors/root.ds.tmp"
keymgr -c "$DIR/knot.conf" . dnskey >"$DIR/anchors/root.dnskey.noclass.tmp"
awk '$2=="DNSKEY" && $3==257 {$2="IN DNSKEY"; print}' "$DIR/anchors/root.dnskey.noclass.tmp" >"$DIR/anchors/root.dnskey.tmp"
[[ -s $DIR/anchors/root.ds.tmp && -s $DIR/anchors/root.dnskey.tmp ]] || fail "could not export the root anchors"
for z in "${SIGNED[@]}"; do keymgr -c "$DIR/knot.conf" "$z" ds; done | awk '$2=="DS" {$2="IN DS"; print}' >"$DIR/anchors/zones.ds.tmp"
# the same KSK as a delv/named trust-anchors clause: delv -a DIR/anchors/root.delv.conf +root=.
awk '{printf "trust-anchors {\n    \"%s\" static-key %s %s %s \"%s\";\n};\n", $1, $4, $5, $6, $7}' \
    "$DIR/anchors/root.dnskey.tmp" >"$DIR/anchors/root.delv.conf.tmp"
for f in root.ds root.dnskey root.dnskey.noclass root.delv.conf zones.ds; do mv "$DIR/anchors/$f.tmp" "$DIR/anchors/$f"; done

echo "dns: knotd pid $KPID ready on $DNS_ADDR@$DNS_PORT${DNS_ADDR6:+ and [$DNS_ADDR6]@$DNS_PORT} in $(( $(now_ms) - T0 )) ms"
