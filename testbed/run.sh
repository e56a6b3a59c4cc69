#!/usr/bin/env bash
# run.sh CMD [ARG...] -- runs CMD against a fresh testbed and tears it down afterwards.
#
# Makes a temporary DIR, runs up.sh DIR, sources DIR/testbed.env, runs CMD, then always
# (exit, Ctrl-C, TERM) runs down.sh DIR and removes DIR. Exits with CMD's status.
# TESTBED_PARTS is passed to up.sh; TESTBED_KEEP=1 keeps DIR (logs) after the run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

(( $# )) || die "usage: run.sh CMD [ARG...]"
TB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mailsrv-testbed.XXXXXX")
CLEANED=0
cleanup() {
    (( CLEANED )) && return 0
    CLEANED=1
    local t0; t0=$(now_ms)
    "$HERE/down.sh" "$TB_DIR" || true
    if [[ ${TESTBED_KEEP:-0} == 1 ]]; then
        echo "testbed: kept $TB_DIR" >&2
    else
        rm -rf "$TB_DIR"
    fi
    echo "testbed: down in $(( $(now_ms) - t0 )) ms" >&2
}
trap 'cleanup' EXIT
trap 'cleanup; trap - INT; kill -INT $$' INT
trap 'cleanup; trap - TERM; kill -TERM $$' TERM

"$HERE/up.sh" "$TB_DIR" >&2
# shellcheck disable=SC1091
. "$TB_DIR/testbed.env"
set +e
"$@"
status=$?
set -e
exit "$status"
