#!/usr/bin/env bash
# web.sh start DIR CERTDIR | stop DIR -- nginx on loopback for account discovery (issue 16).
#
# Serves autoconfig documents (provider URL, .well-known, plain HTTP), redirects (HTTPS to
# HTTPS inside and outside the mail domain, HTTP to HTTPS, HTTPS to HTTP, a loop), broken and
# hostile XML, and an ISPDB directory (https://ispdb.ac.test/v1.1/<domain>), for the mail
# domains of the ac.test zone (dns.sh), hosted.test and the provider example.net.
# HTTPS uses CERTDIR/web-autoconfig (the test CA); the URLs of the draft fix the ports, so
# nginx listens on WEB_ADDR:443 and WEB_ADDR:80 (as root); WEB_ADDR is 127.0.40.1 by default.
#
# Env: WEB_ADDR (127.0.40.1), IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT SUBMISSION_PORT
#      SUBMISSIONS_PORT (the ports the documents name), WEB_READY_TIMEOUT (20 s).
# Writes only inside DIR; stops nginx by PID.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

CMD=${1:-}; DIR=${2:-}
[[ ($CMD == start || $CMD == stop) && -n $DIR ]] || die "usage: web.sh start DIR CERTDIR | stop DIR"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

stop_web() {
    if [[ -s $DIR/nginx.pid ]]; then stop_pids nginx 10 "$(head -n1 "$DIR/nginx.pid")"; fi
    rm -f "$DIR/nginx.pid"
}
if [[ $CMD == stop ]]; then stop_web; exit 0; fi

CERTDIR=${3:-}
[[ -n $CERTDIR && -s $CERTDIR/web-autoconfig.crt ]] || die "web.sh start needs CERTDIR with web-autoconfig (certs.sh)"
CERTDIR=$(cd "$CERTDIR" && pwd)
READY_TIMEOUT=${WEB_READY_TIMEOUT:-20}
command -v nginx >/dev/null || die "nginx is not installed (testbed/install.sh)"
if pidfile_alive "$DIR/nginx.pid"; then die "nginx already runs in $DIR"; fi

rm -rf "$DIR/https" "$DIR/http" "$DIR/tmp"
mkdir -p "$DIR/https" "$DIR/http" "$DIR/tmp"
cat "$CERTDIR/web-autoconfig.crt" "$CERTDIR/ca.crt" >"$DIR/web.crt"
install -m 600 "$CERTDIR/web-autoconfig.key" "$DIR/web.key"

# doc FILE (content on stdin)
doc() { mkdir -p "$(dirname "$1")"; cat >"$1"; }
# server TYPE HOST PORT SOCKET [USERNAME]
server() {
    local tag=incomingServer
    [[ $1 == smtp ]] && tag=outgoingServer
    cat <<X
    <$tag type="$1">
      <hostname>$2</hostname>
      <port>$3</port>
      <socketType>$4</socketType>
      <username>${5:-%EMAILADDRESS%}</username>
      <authentication>password-cleartext</authentication>
    </$tag>
X
}
# config VERSION DOMAIN (servers on stdin)
config() {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<clientConfig version=\"$1\">"
    echo "  <emailProvider id=\"$2\">"
    echo "    <domain>$2</domain>"
    echo "    <displayName>Test provider for $2</displayName>"
    cat
    echo "  </emailProvider>"
    [[ $1 == 1.2 ]] && echo "  <oAuth2><issuer>auth.example.net</issuer><scope>mail</scope><authURL>https://auth.example.net/authorize</authURL><tokenURL>https://auth.example.net/token</tokenURL></oAuth2>"
    echo "</clientConfig>"
}
full_set() {  # every service at mail.example.net, implicit TLS first
    server imap mail.example.net "$IMAPS_PORT" SSL
    server imap mail.example.net "$IMAP_PORT" STARTTLS
    server pop3 mail.example.net "$POP3S_PORT" SSL
    server smtp mail.example.net "$SUBMISSIONS_PORT" SSL
    server smtp mail.example.net "$SUBMISSION_PORT" STARTTLS %EMAILLOCALPART%
}
H=$DIR/https; P=$DIR/http; AC=mail/config-v1.1.xml
full_set | config 1.2 ac.test | doc "$H/autoconfig.ac.test/$AC"
full_set | config 1.1 wk.ac.test | doc "$H/wk.ac.test/.well-known/autoconfig/$AC"
full_set | config 1.1 plain.ac.test | doc "$P/autoconfig.plain.ac.test/$AC"
full_set | config 1.1 hopin.ac.test | doc "$H/hopin.ac.test/mail/moved.xml"
server imap mail.example.net "$IMAPS_PORT" SSL | config 1.1 rank.ac.test | doc "$H/autoconfig.rank.ac.test/$AC"
# the probe applied to an autoconfig host: hosted.test over plain HTTP only
{ server imap mail.example.net "$IMAPS_PORT" SSL; server smtp mail.example.net "$SUBMISSIONS_PORT" SSL; } \
    | config 1.1 hosted.test | doc "$P/autoconfig.hosted.test/$AC"
# DANE for an autoconfig host
server imap dane.example.net "$IMAPS_PORT" SSL | config 1.1 dane.ac.test | doc "$H/autoconfig.dane.ac.test/$AC"
server imap danebad.example.net "$IMAPS_PORT" SSL | config 1.1 danebad.ac.test | doc "$H/autoconfig.danebad.ac.test/$AC"
# a plaintext server next to a TLS one
{ server imap mail.example.net "$IMAP_PORT" plain; server imap mail.example.net "$IMAPS_PORT" SSL; } \
    | config 1.1 plainsock.ac.test | doc "$H/autoconfig.plainsock.ac.test/$AC"
# the provider behind MX records (mxs.example.com signed, mxu.ac.test unsigned): one host in
# the provider's domain, one outside it (mail.example.test)
{ server imap mail.example.net "$IMAPS_PORT" SSL; server imap mail.example.test "$IMAPS_PORT" SSL
  server smtp mail.example.net "$SUBMISSIONS_PORT" SSL; } | config 1.1 example.net | doc "$H/autoconfig.example.net/$AC"
# ISPDB entries
full_set | config 1.1 ispdbonly.ac.test | doc "$H/ispdb.ac.test/v1.1/ispdbonly.ac.test"
full_set | config 1.1 slow.ac.test | doc "$H/ispdb.ac.test/v1.1/slow.ac.test"
full_set | config 1.1 ispdbprov.ac.test | doc "$H/ispdb.ac.test/v1.1/ispdbprov.ac.test"
# hostile and broken documents
{ echo '<?xml version="1.0"?><clientConfig><!--'; head -c 100000 /dev/zero | tr '\0' x; echo '--></clientConfig>'; } \
    | doc "$H/autoconfig.huge.ac.test/$AC"
{ echo '<clientConfig>'; for _ in $(seq 100); do printf '<a>'; done; for _ in $(seq 100); do printf '</a>'; done; echo '</clientConfig>'; } \
    | doc "$H/autoconfig.deep.ac.test/$AC"
doc "$H/autoconfig.entity.ac.test/$AC" <<'X'
<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<clientConfig version="1.1"><emailProvider id="x"><displayName>&lol3;</displayName></emailProvider></clientConfig>
X
printf '<?xml version="1.0" encoding="ISO-8859-1"?>\n<clientConfig version="1.1"><emailProvider id="x"><displayName>caf\xe9</displayName></emailProvider></clientConfig>\n' \
    | doc "$H/autoconfig.latin1.ac.test/$AC"
printf '<clientConfig version="1.1"><emailProvider id="x"><incomingServer type="imap"><hostname>mail.example.net</clientConfig>\n' \
    | doc "$H/autoconfig.broken.ac.test/$AC"
chmod -R a+rX "$DIR/https" "$DIR/http"

cat >"$DIR/nginx.conf" <<CONF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events { worker_connections 128; }
http {
    access_log $DIR/access.log;
    client_body_temp_path $DIR/tmp/body;
    proxy_temp_path $DIR/tmp/proxy;
    fastcgi_temp_path $DIR/tmp/fastcgi;
    uwsgi_temp_path $DIR/tmp/uwsgi;
    scgi_temp_path $DIR/tmp/scgi;
    default_type application/xml;
    ssl_certificate $DIR/web.crt;
    ssl_certificate_key $DIR/web.key;
    server {
        listen $WEB_ADDR:443 ssl default_server;
        server_name _;
        root $DIR/https;
        location / { try_files /\$host\$uri =404; }
    }
    server {
        listen $WEB_ADDR:80 default_server;
        server_name _;
        root $DIR/http;
        location / { try_files /\$host\$uri =404; }
    }
    # HTTP to HTTPS: refused by mailsrv (only HTTPS-to-HTTPS redirects are followed)
    server { listen $WEB_ADDR:80; server_name autoconfig.up.ac.test;
             return 301 https://autoconfig.up.ac.test/$AC; }
    # HTTPS to HTTP: refused
    server { listen $WEB_ADDR:443 ssl; server_name autoconfig.down.ac.test;
             return 301 http://autoconfig.plain.ac.test/$AC; }
    # HTTPS to HTTPS out of the mail domain (hop.ac.test -> ac.test): followed, no HTTPS_DOMAIN
    server { listen $WEB_ADDR:443 ssl; server_name autoconfig.hop.ac.test;
             return 302 https://autoconfig.ac.test/$AC; }
    # HTTPS to HTTPS inside the mail domain: followed, HTTPS_DOMAIN
    server { listen $WEB_ADDR:443 ssl; server_name autoconfig.hopin.ac.test;
             return 302 https://hopin.ac.test/mail/moved.xml; }
    # a redirect loop: the hop limit
    server { listen $WEB_ADDR:443 ssl; server_name autoconfig.loop.ac.test;
             return 302 https://autoconfig.loop.ac.test/\$uri; }
}
CONF

nginx -t -q -e "$DIR/error.log" -p "$DIR" -c "$DIR/nginx.conf" 2>"$DIR/nginx-t.log" \
    || { cat "$DIR/nginx-t.log" >&2; die "nginx rejects $DIR/nginx.conf"; }
nginx -e "$DIR/error.log" -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' </dev/null >"$DIR/nginx.out" 2>&1 &
NPID=$!
echo "$NPID" >"$DIR/nginx.pid.start"
limit=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
until listening t "$WEB_ADDR" 443 && listening t "$WEB_ADDR" 80; do
    pid_alive "$NPID" || { cat "$DIR/error.log" "$DIR/nginx.out" >&2 || true; die "nginx exited during start-up"; }
    (( $(now_ms) < limit )) || { stop_pids nginx 5 "$NPID"; die "nginx did not listen within ${READY_TIMEOUT}s"; }
    sleep 0.02
done
rm -f "$DIR/nginx.pid.start"
echo "testbed: web (nginx pid $NPID) on $WEB_ADDR:443 and :80"
