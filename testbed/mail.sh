#!/usr/bin/env bash
# mail.sh start|stop DIR CERTDIR -- dovecot (IMAP/POP3) and postfix (submission) for the mailsrv tests.
#
#   dovecot: IMAP 10143 (STARTTLS), IMAPS 10993, POP3 10110 (STLS), POP3S 10995
#   postfix: submission 10587 (STARTTLS required), submissions 10465 (implicit TLS)
# on MAIL_ADDR (127.0.0.1) and MAIL_ADDR6 (::1) with the default certificate and SNI certificates,
# plus every address of LOCAL_CERTS, where one certificate is served whatever the SNI.
#
# Env (defaults):
#   MAIL_ADDR=127.0.0.1  MAIL_ADDR6=::1 (empty = no IPv6)
#   IMAP_PORT=10143 IMAPS_PORT=10993 POP3_PORT=10110 POP3S_PORT=10995
#   SUBMISSION_PORT=10587 SUBMISSIONS_PORT=10465
#   DEFAULT_CERT=dnsid-mail-example-net
#   SNI_CERTS="example.com=srvid-multi-example-com mail.example.net=dnsid-mail-example-net
#              hosted.test=srvid-multi-hosted-test dnshosted.test=dnsid-dnshosted-test
#              guess.ac.test=guess-ac-test imap.guess.ac.test=guess-ac-test
#              smtp.guess.ac.test=guess-ac-test imap.guessu.ac.test=guessu-ac-test"
#                                  (SNI name=certificate, served by dovecot and postfix)
#   DOVECOT_SNI_CERTS="half.test=srvid-imaps-half-test"   (SNI served by dovecot only: postfix
#                                  answers half.test with DEFAULT_CERT)
#   LOCAL_CERTS="127.0.20.1=expired 127.0.20.2=wrong-name 127.0.20.3=untrusted
#                127.0.20.4=srvid-imaps-example-com 127.0.20.5=cn-only
#                127.0.20.6=srvid-pop3s-hosted-test-only 127.0.20.7=dane-ee-selfsigned
#                127.0.20.8=dane-ee-expired-selfsigned"
# Certificates are CERTDIR/NAME.pem (key + leaf + chain) as written by certs.sh.
# Runs as root (postfix's master and dovecot need it). Writes only inside DIR; `chmod 711 DIR`
# because dovecot's mail processes (nobody) must traverse it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

CMD=${1:-}; DIR=${2:-}; CERTDIR=${3:-}
[[ ($CMD == start && -n $DIR && -n $CERTDIR) || ($CMD == stop && -n $DIR) ]] \
    || die "usage: mail.sh start DIR CERTDIR | mail.sh stop DIR"

DEFAULT_CERT=${DEFAULT_CERT:-dnsid-mail-example-net}
SNI_CERTS=${SNI_CERTS-example.com=srvid-multi-example-com mail.example.net=dnsid-mail-example-net hosted.test=srvid-multi-hosted-test dnshosted.test=dnsid-dnshosted-test guess.ac.test=guess-ac-test imap.guess.ac.test=guess-ac-test smtp.guess.ac.test=guess-ac-test imap.guessu.ac.test=guessu-ac-test}
DOVECOT_SNI_CERTS=${DOVECOT_SNI_CERTS-half.test=srvid-imaps-half-test relayed.hosted.test=srvid-imaps-relayed-hosted-test}
# the SNI relay (sni-relay.py): on RELAY_ADDR:IMAPS_PORT it pipes SNI = RELAY_VICTIM to
# MAIL_ADDR and answers any other SNI itself with RELAY_CERT (*.example.net), logging commands
RELAY_VICTIM=${RELAY_VICTIM:-relayed.hosted.test}
RELAY_CERT=${RELAY_CERT:-wildcard-example-net}
LOCAL_CERTS=${LOCAL_CERTS-127.0.20.1=expired 127.0.20.2=wrong-name 127.0.20.3=untrusted 127.0.20.4=srvid-imaps-example-com 127.0.20.5=cn-only 127.0.20.6=srvid-pop3s-hosted-test-only 127.0.20.7=dane-ee-selfsigned 127.0.20.8=dane-ee-expired-selfsigned}
READY_TIMEOUT=${MAIL_READY_TIMEOUT:-20}

# pids of one server: what we started ($!) and what the daemon wrote itself
dovecot_pids() {
    local f
    for f in "$DIR/dovecot.pid" "$DIR/dovecot/run/master.pid"; do
        [[ -s $f ]] && head -n1 "$f"
    done | sort -u
}
postfix_pids() {
    local f
    for f in "$DIR/postfix.pid" "$DIR/postfix/queue/pid/master.pid"; do
        [[ -s $f ]] && awk 'NR==1 {print $1}' "$f"
    done | sort -u
}
stop_dovecot() {
    local p; p=$(dovecot_pids)
    [[ -n $p ]] && stop_pids dovecot 15 $p
    rm -f "$DIR/dovecot.pid"
}
stop_postfix() {
    local p; p=$(postfix_pids)
    # killing the master ends its children; the start-fg shell ($!) exits with it
    [[ -n $p ]] && stop_pids postfix 15 $p
    rm -f "$DIR/postfix.pid"
}
stop_relay() {
    if [[ -s $DIR/relay.pid ]]; then stop_pids relay 15 "$(head -n1 "$DIR/relay.pid")"; fi
    rm -f "$DIR/relay.pid"
}
stop_all() {
    stop_dovecot & local a=$!
    stop_postfix & local b=$!
    stop_relay & local c=$!
    wait "$a" || true; wait "$b" || true; wait "$c" || true
}

if [[ $CMD == stop ]]; then
    [[ -d $DIR ]] || exit 0
    DIR=$(cd "$DIR" && pwd)
    stop_all
    exit 0
fi

# ------------------------------------------------------------------ start: checks
[[ $(id -u) == 0 ]] || die "mail.sh must run as root (postfix master, dovecot)"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CERTDIR=$(cd "$CERTDIR" && pwd)
for p in $(dovecot_pids) $(postfix_pids); do
    pid_alive "$p" && die "mail servers already run for $DIR (pid $p); run 'mail.sh stop $DIR' first"
done
ADDRS=("$MAIL_ADDR")
[[ -n $MAIL_ADDR6 ]] && ADDRS+=("$MAIL_ADDR6")
declare -A LOCAL=()
for kv in $LOCAL_CERTS; do LOCAL[${kv%%=*}]=${kv#*=}; done
declare -A SNI=()      # postfix and dovecot
for kv in $SNI_CERTS; do SNI[${kv%%=*}]=${kv#*=}; done
declare -A DSNI=()     # dovecot: SNI plus DOVECOT_SNI_CERTS
for n in "${!SNI[@]}"; do DSNI[$n]=${SNI[$n]}; done
for kv in $DOVECOT_SNI_CERTS; do DSNI[${kv%%=*}]=${kv#*=}; done
for c in "$DEFAULT_CERT" "${LOCAL[@]}" "${DSNI[@]}" "$RELAY_CERT"; do
    [[ -s $CERTDIR/$c.pem ]] || die "missing certificate $CERTDIR/$c.pem (run certs.sh first)"
done
LOCAL_ADDRS=($(printf '%s\n' "${!LOCAL[@]}" | sort -V))
SNI_NAMES=($(printf '%s\n' "${!SNI[@]}" | sort))
DSNI_NAMES=($(printf '%s\n' "${!DSNI[@]}" | sort))
ALL_ADDRS=("${ADDRS[@]}" "${LOCAL_ADDRS[@]}")
PORTS=("$IMAP_PORT" "$IMAPS_PORT" "$POP3_PORT" "$POP3S_PORT" "$SUBMISSION_PORT" "$SUBMISSIONS_PORT")
for a in "${ALL_ADDRS[@]}"; do
    for p in "${PORTS[@]}"; do
        listening t "$a" "$p" && die "something already listens on $a port $p"
    done
done

chmod 711 "$DIR"
rm -rf "$DIR/dovecot" "$DIR/postfix"
mkdir -p "$DIR/dovecot/run" "$DIR/dovecot/state" "$DIR/dovecot/home" "$DIR/postfix/etc" "$DIR/postfix/queue" "$DIR/postfix/data"
chown postfix "$DIR/postfix/data"
chown nobody:nogroup "$DIR/dovecot/home"

# ------------------------------------------------------------------ dovecot.conf
# SNI certificates live under `local <default address>` rather than at top level: dovecot 2.3
# reports a conflict (at run time: the login process dies) when a top-level `local_name` and a
# `local <IP>` block both set ssl_cert. This way an address of LOCAL_CERTS serves its certificate
# whatever the SNI, and the default addresses serve the SNI certificates.
cert_lines() {  # INDENT NAME
    printf '%sssl_cert = <%s\n%sssl_key = <%s\n' "$1" "$CERTDIR/$2.pem" "$1" "$CERTDIR/$2.pem"
}
{
    cat <<CONF
# generated by mail.sh
base_dir = $DIR/dovecot/run
state_dir = $DIR/dovecot/state
instance_name = mailsrv-testbed
log_path = $DIR/dovecot/dovecot.log
protocols = imap pop3
listen = $(IFS=,; echo "${ALL_ADDRS[*]}" | sed 's/,/, /g')
shutdown_clients = yes
ssl = yes
ssl_min_protocol = TLSv1.2
$(cert_lines "" "$DEFAULT_CERT")
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {
  driver = static
  args = password=test
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DIR/dovecot/home/%u
}
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = $IMAPS_PORT
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = $POP3S_PORT
    ssl = yes
  }
}
CONF
    for a in "${ADDRS[@]}"; do
        (( ${#DSNI[@]} )) || continue
        echo "local $a {"
        for n in "${DSNI_NAMES[@]}"; do
            echo "  local_name $n {"
            cert_lines "    " "${DSNI[$n]}"
            echo "  }"
        done
        echo "}"
    done
    for a in "${LOCAL_ADDRS[@]}"; do
        echo "local $a {"
        cert_lines "  " "${LOCAL[$a]}"
        echo "}"
    done
} >"$DIR/dovecot/dovecot.conf"

# ------------------------------------------------------------------ postfix
PF=$DIR/postfix
ERR="error:mailsrv testbed delivers no mail"
v6=""; [[ -n $MAIL_ADDR6 ]] && v6=", [$MAIL_ADDR6]"
cat >"$PF/etc/main.cf" <<CONF
# generated by mail.sh
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $DIR
maillog_file = $PF/maillog
myhostname = mail.example.net
mydomain = example.net
myorigin = \$myhostname
mydestination =
relayhost =
inet_interfaces = $MAIL_ADDR$v6
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128
local_recipient_maps =
alias_maps =
alias_database =
default_transport = $ERR
relay_transport = $ERR
local_transport = $ERR
virtual_transport = $ERR
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# never talk to the (non-loopback) system resolver
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
smtpd_tls_chain_files = $CERTDIR/$DEFAULT_CERT.pem
tls_server_sni_maps = hash:$PF/etc/sni
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 0
CONF
for n in "${SNI_NAMES[@]}"; do echo "$n $CERTDIR/${SNI[$n]}.pem"; done >"$PF/etc/sni"

smtpd_services() {  # ADDR_PREFIX EXTRA_OPTIONS
    cat <<CONF
${1}$SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes$2
${1}$SUBMISSIONS_PORT inet n - n - - smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt$2
CONF
}
{
    echo "# generated by mail.sh; every service unchrooted"
    smtpd_services "" ""
    for a in "${LOCAL_ADDRS[@]}"; do
        smtpd_services "$a:" "
  -o smtpd_tls_chain_files=$CERTDIR/${LOCAL[$a]}.pem
  -o tls_server_sni_maps="
    done
    cat <<'CONF'
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
} >"$PF/etc/master.cf"
# postfix reads a config file only once it is older than ~2 s (it polls in 300 ms steps
# while the mtime is that fresh), so age the files instead of waiting
touch -d '-1 minute' "$PF/etc/main.cf" "$PF/etc/master.cf" "$PF/etc/sni"
postmap -c "$PF/etc" -F "hash:$PF/etc/sni"
touch -d '-1 minute' "$PF/etc/sni.db"

# ------------------------------------------------------------------ start both
T0=$(now_ms)
dovecot -F -c "$DIR/dovecot/dovecot.conf" </dev/null >"$DIR/dovecot/stdout.log" 2>&1 &
echo $! >"$DIR/dovecot.pid"
DPID=$!
postfix -c "$PF/etc" start-fg </dev/null >"$PF/stdout.log" 2>&1 &
echo $! >"$DIR/postfix.pid"
PPID_=$!
DEADLINE=$(( T0 + READY_TIMEOUT * 1000 ))

fail() {
    echo "testbed: mail: $*" >&2
    local f
    for f in "$DIR/dovecot/stdout.log" "$DIR/dovecot/dovecot.log" "$PF/stdout.log" "$PF/maillog"; do
        [[ -s $f ]] && { echo "---- $f (tail)" >&2; tail -n 20 "$f" >&2; }
    done
    stop_all
    exit 1
}
# banner ADDR PORT PREFIX -> reads the first line of the server greeting
banner() {
    local a=$1 line
    [[ $a == *:* ]] && a="[$a]"
    exec 7<>"/dev/tcp/${a//[\[\]]/}/$2" || return 1
    IFS= read -r -t 2 line <&7 || { exec 7>&-; return 1; }
    exec 7>&-
    [[ $line == "$3"* ]]
}
ready() {
    local a p
    for a in "${ALL_ADDRS[@]}"; do
        for p in "${PORTS[@]}"; do listening t "$a" "$p" || return 1; done
    done
    banner "$MAIL_ADDR" "$IMAP_PORT" "* OK" 2>/dev/null || return 1
    banner "$MAIL_ADDR" "$SUBMISSION_PORT" "220 " 2>/dev/null || return 1
}
mkdir -p "$DIR/relay"
python3 "$HERE/sni-relay.py" "$RELAY_ADDR" "$IMAPS_PORT" "$MAIL_ADDR" "$RELAY_VICTIM" \
    "$CERTDIR/$RELAY_CERT.pem" "$DIR/relay/commands.log" </dev/null >"$DIR/relay/stdout.log" 2>&1 &
echo $! >"$DIR/relay.pid"
RPID=$!
until ready && listening t "$RELAY_ADDR" "$IMAPS_PORT"; do
    pid_alive "$DPID" || fail "dovecot exited during start-up"
    pid_alive "$PPID_" || fail "postfix exited during start-up"
    pid_alive "$RPID" || fail "sni-relay.py exited during start-up"
    (( $(now_ms) < DEADLINE )) || fail "not ready after ${READY_TIMEOUT}s"
    sleep 0.03
done
echo "mail: dovecot pid $DPID, postfix master pid $(postfix_pids | tail -n1) ready on ${ALL_ADDRS[*]} in $(( $(now_ms) - T0 )) ms"
