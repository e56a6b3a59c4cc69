#!/usr/bin/env bash
# down.sh DIR -- stops every server that up.sh started in DIR (in parallel, by PID).
# Leaves DIR and its files (logs, keys, certificates) in place.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

DIR=${1:-}
[[ -n $DIR ]] || die "usage: down.sh DIR"
[[ -d $DIR ]] || exit 0
DIR=$(cd "$DIR" && pwd)
rc=0
"$HERE/mail.sh" stop "$DIR/mail" & m=$!
"$HERE/dns.sh" stop "$DIR/dns" & d=$!
"$HERE/web.sh" stop "$DIR/web" & w=$!
wait "$m" || rc=1
wait "$w" || rc=1
wait "$d" || rc=1
rm -f "$DIR/testbed.env"
exit "$rc"
