#!/usr/bin/env bash
# run.sh CMD [ARG...] -- runs CMD against a fresh testbed and tears it down afterwards.
#
# Makes a temporary DIR, runs up.sh DIR, sources DIR/testbed.env, runs CMD, then always
# (normal exit, Ctrl-C, SIGTERM e.g. from `timeout`) runs down.sh DIR and removes DIR.
# Exits with CMD's status (128+N when stopped by signal N).
# TESTBED_PARTS is passed to up.sh; TESTBED_KEEP=1 keeps DIR (logs) after the run.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

(( $# )) || die "usage: run.sh CMD [ARG...]"
TB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mailsrv-testbed.XXXXXX")
CLEANED=0
CMD_PID=
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
on_signal() {  # SIGNAME NUMBER
    trap '' INT TERM
    if [[ -n $CMD_PID ]] && pid_alive "$CMD_PID"; then
        kill -s "$1" "$CMD_PID" 2>/dev/null || true
        wait_gone 10 "$CMD_PID" || kill -KILL "$CMD_PID" 2>/dev/null || true
    fi
    cleanup
    exit $(( 128 + $2 ))
}
trap 'cleanup' EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

"$HERE/up.sh" "$TB_DIR" >&2
# shellcheck disable=SC1091
. "$TB_DIR/testbed.env"

# CMD runs as a background child so that a signal to run.sh is handled at once (bash runs traps
# only after a foreground child has ended). A background child of a non-interactive shell starts
# with SIGINT/SIGQUIT ignored and stdin from /dev/null: undo both.
env --default-signal=INT,QUIT "$@" <&0 &
CMD_PID=$!
set +e
wait "$CMD_PID"
status=$?
set -e
CMD_PID=
exit "$status"
