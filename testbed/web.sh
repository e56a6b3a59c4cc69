#!/usr/bin/env bash
# web.sh start DIR CERTDIR | stop DIR -- nginx on loopback for account discovery (issue 16).
#
# Serves autoconfig documents (provider URL, .well-known, plain HTTP), redirects (HTTPS to
# HTTPS inside and outside the mail domain, HTTP to HTTPS, HTTPS to HTTP, a loop), broken and
# hostile XML, and an ISPDB directory (https://ispdb.ac.test/v1.1/<domain>), for the mail
# domains of the ac.test zone (dns.sh), hosted.test and the provider example.net.
# Issue 17: PACC documents (pacc.sh; dns.sh publishes their digests) and Exchange
# Autodiscover answers to POST only (settings, RedirectAddr chains and loops, Basic
# credentials, a plain-HTTP redirect to HTTPS, an HTTPS redirect loop, hostile XML).
# HTTPS uses CERTDIR/web-autoconfig and CERTDIR/web-discovery (the test CA); the URLs of the
# drafts fix the ports, so nginx listens on WEB_ADDR:443 and WEB_ADDR:80 (as root); WEB_ADDR
# is 127.0.40.1 by default. The Autodiscover credentials are joe / secret.
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
[[ -n $CERTDIR && -s $CERTDIR/web-autoconfig.crt && -s $CERTDIR/web-discovery.crt ]] \
    || die "web.sh start needs CERTDIR with web-autoconfig and web-discovery (certs.sh)"
CERTDIR=$(cd "$CERTDIR" && pwd)
READY_TIMEOUT=${WEB_READY_TIMEOUT:-20}
command -v nginx >/dev/null || die "nginx is not installed (testbed/install.sh)"
if pidfile_alive "$DIR/nginx.pid"; then die "nginx already runs in $DIR"; fi

rm -rf "$DIR/https" "$DIR/http" "$DIR/tmp"
mkdir -p "$DIR/https" "$DIR/http" "$DIR/tmp"
cat "$CERTDIR/web-autoconfig.crt" "$CERTDIR/ca.crt" >"$DIR/web.crt"
install -m 600 "$CERTDIR/web-autoconfig.key" "$DIR/web.key"
cat "$CERTDIR/web-discovery.crt" "$CERTDIR/ca.crt" >"$DIR/web2.crt"
install -m 600 "$CERTDIR/web-discovery.key" "$DIR/web2.key"
printf 'joe:%s\n' "$(openssl passwd -apr1 secret)" >"$DIR/htpasswd"

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
# PACC (issue 17): the documents whose digests dns.sh publishes
WK=.well-known/user-agent-configuration.json
for d in pacc.example.com paccbad.example.com paccroll.example.com pacc.ac.test paccbad.ac.test \
         paccnotxt.ac.test; do
    "$HERE/pacc.sh" good | doc "$H/ua-auto-config.$d/$WK"
done
"$HERE/pacc.sh" deep | doc "$H/ua-auto-config.paccdeep.ac.test/$WK"
"$HERE/pacc.sh" big | doc "$H/ua-auto-config.paccbig.ac.test/$WK"
# Exchange Autodiscover (issue 17): answers to POST /autodiscover/autodiscover.xml
ad() {  # ACCOUNT-XML (stdin) -> a POX answer
    echo '<?xml version="1.0" encoding="utf-8"?>'
    echo '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">'
    echo '  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">'
    echo '    <User><DisplayName>Test Autodiscover user</DisplayName></User>'
    echo '    <Account><AccountType>email</AccountType>'
    cat
    echo '    </Account>'
    echo '  </Response>'
    echo '</Autodiscover>'
}
ad_settings() {  # every service at mail.example.net, an Exchange-only entry, a plaintext one
    cat <<X
      <Action>settings</Action>
      <Protocol><Type>EXCH</Type><Server>exchange.example.net</Server></Protocol>
      <Protocol><Type>IMAP</Type><Server>mail.example.net</Server><Port>$IMAPS_PORT</Port><SSL>on</SSL><Encryption>SSL</Encryption></Protocol>
      <Protocol><Type>POP3</Type><Server>mail.example.net</Server><Port>$POP3S_PORT</Port><Encryption>SSL</Encryption></Protocol>
      <Protocol><Type>SMTP</Type><Server>mail.example.net</Server><Port>$SUBMISSIONS_PORT</Port><Encryption>SSL</Encryption></Protocol>
      <Protocol><Type>SMTP</Type><Server>mail.example.net</Server><Port>$SUBMISSION_PORT</Port><Encryption>TLS</Encryption></Protocol>
      <Protocol><Type>IMAP</Type><Server>mail.example.net</Server><Port>$IMAP_PORT</Port><SSL>off</SSL></Protocol>
X
}
redirect_addr() { printf '      <Action>redirectAddr</Action><RedirectAddr>%s</RedirectAddr>\n' "$1"; }
AD=autodiscover/autodiscover.xml
for h in autodiscover.adisc.ac.test mailhost.adhttp.ac.test autodiscover.adprov.example.net \
         autodiscover.adauth.ac.test; do
    ad_settings | ad | doc "$H/$h/$AD"
done
redirect_addr joe@adisc.ac.test | ad | doc "$H/autodiscover.adredir.ac.test/$AD"
redirect_addr joe@adloop2.ac.test | ad | doc "$H/autodiscover.adloop.ac.test/$AD"
redirect_addr joe@adloop.ac.test | ad | doc "$H/autodiscover.adloop2.ac.test/$AD"
redirect_addr joe@hosted.test | ad | doc "$H/autodiscover.adout.ac.test/$AD"
doc "$H/autodiscover.adhostile.ac.test/$AD" <<'X'
<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Autodiscover><Response><User><DisplayName>&lol2;</DisplayName></User></Response></Autodiscover>
X
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
    # issue 17: the PACC and Autodiscover hosts. Autodiscover answers POST only: nginx's
    # static module refuses POST (405), which error_page turns into the file, read again as
    # an internal GET under /_post/
    server {
        listen $WEB_ADDR:443 ssl;
        server_name ua-auto-config.pacc.example.com ua-auto-config.paccbad.example.com
                    ua-auto-config.paccroll.example.com ua-auto-config.pacc.ac.test
                    ua-auto-config.paccbad.ac.test ua-auto-config.paccnotxt.ac.test
                    ua-auto-config.paccdeep.ac.test ua-auto-config.paccbig.ac.test
                    autodiscover.adisc.ac.test mailhost.adhttp.ac.test autodiscover.adprov.example.net
                    autodiscover.adredir.ac.test autodiscover.adloop.ac.test autodiscover.adloop2.ac.test
                    autodiscover.adout.ac.test autodiscover.adhostile.ac.test;
        ssl_certificate $DIR/web2.crt;
        ssl_certificate_key $DIR/web2.key;
        root $DIR/https;
        location = /$AD {
            limit_except POST { deny all; }
            error_page 405 =200 /_post\$uri;
            try_files /\$host\$uri =404;
        }
        location /_post/ { internal; alias $DIR/https/; }
        location / { try_files /\$host\$uri =404; }
    }
    # Basic credentials (joe / secret) before the answer
    server {
        listen $WEB_ADDR:443 ssl;
        server_name autodiscover.adauth.ac.test;
        ssl_certificate $DIR/web2.crt;
        ssl_certificate_key $DIR/web2.key;
        root $DIR/https;
        location = /$AD {
            auth_basic "autodiscover";
            auth_basic_user_file $DIR/htpasswd;
            limit_except POST { deny all; }
            error_page 405 =200 /_post\$uri;
            try_files /\$host\$uri =404;
        }
        location /_post/ { internal; alias $DIR/https/; }
    }
    # an HTTPS redirect loop (POST too)
    server { listen $WEB_ADDR:443 ssl; server_name autodiscover.adhloop.ac.test;
             ssl_certificate $DIR/web2.crt; ssl_certificate_key $DIR/web2.key;
             return 302 https://autodiscover.adhloop.ac.test/$AD; }
    # plain HTTP to HTTPS: the only use of Autodiscover's http:// URL
    server { listen $WEB_ADDR:80; server_name autodiscover.adhttp.ac.test;
             return 302 https://mailhost.adhttp.ac.test/$AD; }
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
