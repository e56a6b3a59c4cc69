#!/usr/bin/env bash
# pacc.sh DOC [digest] -- the PACC documents of the testbed (issue 17), byte for byte.
#
# web.sh serves them at https://ua-auto-config.<domain>/.well-known/user-agent-configuration.json
# and dns.sh publishes their digests in _ua-auto-config.<domain> TXT records, so both call
# this one script: the bytes served and the digest that vouches for them cannot drift apart.
#   good   imap, pop3 and submit at mail.example.net; JMAP, CalDAV, CardDAV; oauth-public
#   other  a different document (its digest is the "wrong" one in the mismatch cases)
#   deep   hostile: JSON nested 200 deep
#   big    over the 64 KiB body limit
# With "digest": prints the TXT record's text, v=UAAC1; a=sha256; d=<base64 SHA-256>.
set -euo pipefail
doc() {
    case $1 in
        good) printf '%s' '{"protocols":{"imap":{"host":"mail.example.net"},"pop3":{"host":"mail.example.net"},"submit":{"host":"mail.example.net"},"jmap":{"url":"https://jmap.example.net/session"},"caldav":{"url":"https://dav.example.net/calendars/"},"carddav":{"url":"https://dav.example.net/contacts/"}},"authentication":{"password":true,"oauth-public":{"issuer":"https://auth.example.net"}},"info":{"provider":{"name":"Test PACC provider","shortName":"PACC"}}}' ;;
        other) printf '%s' '{"protocols":{"imap":{"host":"evil.example.net"}},"authentication":{"password":true},"info":{"provider":{"name":"Someone else"}}}' ;;
        deep) printf '{"protocols":{},"x":'; printf '[%.0s' $(seq 200); printf ']%.0s' $(seq 200); printf '}' ;;
        big) printf '{"protocols":{"imap":{"host":"mail.example.net"}},"pad":"'; head -c 70000 /dev/zero | tr '\0' a; printf '"}' ;;
        *) echo "pacc.sh: unknown document $1" >&2; exit 2 ;;
    esac
}
if [[ ${2:-} == digest ]]; then
    printf 'v=UAAC1; a=sha256; d=%s\n' "$(doc "$1" | openssl dgst -sha256 -binary | base64 -w0)"
else
    doc "$1"
fi
