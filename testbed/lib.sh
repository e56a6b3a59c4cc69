# lib.sh -- helpers shared by the testbed scripts (sourced, not run).

die() { echo "testbed: $*" >&2; exit 1; }

# The one table of the testbed's addresses and ports. Each may be set in the environment
# (a private testbed beside another: other addresses and ports); an empty *_ADDR6 means no
# IPv6. Every script sources this file, so they all agree.
: "${DNS_ADDR:=127.0.10.1}" "${DNS_PORT:=5353}" "${DNS_ADDR6=::1}" "${DEAD_NS:=127.0.10.9:5353}"
: "${MAIL_ADDR:=127.0.0.1}" "${MAIL_ADDR6=::1}"
: "${RELAY_ADDR:=127.0.30.1}"              # sni-relay.py: relay.example.net, danepkix.example.net
: "${WEB_ADDR:=127.0.40.1}"                # nginx: autoconfig documents and the ISPDB
: "${WEB_SLOW_ADDR:=127.0.40.9}"           # nothing answers there unless a test listens (timeouts)
: "${IMAP_PORT:=10143}" "${IMAPS_PORT:=10993}" "${POP3_PORT:=10110}" "${POP3S_PORT:=10995}"
: "${SUBMISSION_PORT:=10587}" "${SUBMISSIONS_PORT:=10465}"
export DNS_ADDR DNS_PORT DNS_ADDR6 DEAD_NS MAIL_ADDR MAIL_ADDR6 RELAY_ADDR WEB_ADDR WEB_SLOW_ADDR \
    IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT SUBMISSION_PORT SUBMISSIONS_PORT

# now_ms -> milliseconds since the epoch
now_ms() { date +%s%3N; }

# pid_alive PID -> true while PID exists and is not a zombie
pid_alive() {
    local pid=$1 st
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [[ $st != Z && -n $st ]]
}

# pidfile_alive FILE -> true if FILE names a live process
pidfile_alive() { [[ -s $1 ]] && pid_alive "$(head -n1 "$1")"; }

# wait_gone TIMEOUT_S PID... -> waits until every PID has exited; 1 on timeout
wait_gone() {
    local limit=$(( $(now_ms) + $1 * 1000 )); shift
    local p left
    while :; do
        left=0
        for p in "$@"; do pid_alive "$p" && left=1; done
        (( left )) || return 0
        (( $(now_ms) < limit )) || return 1
        sleep 0.02
    done
}

# stop_pids NAME TIMEOUT_S PID... -> SIGTERM, wait, then SIGKILL what is left
stop_pids() {
    local name=$1 t=$2; shift 2
    local p live=()
    for p in "$@"; do pid_alive "$p" && live+=("$p"); done
    (( ${#live[@]} )) || return 0
    kill -TERM "${live[@]}" 2>/dev/null || true
    if ! wait_gone "$t" "${live[@]}"; then
        echo "testbed: $name did not exit after ${t}s, sending SIGKILL to ${live[*]}" >&2
        kill -KILL "${live[@]}" 2>/dev/null || true
        wait_gone 5 "${live[@]}" || true
    fi
}

# listening PROTO ADDR PORT -> true if something listens there (no connection is made)
# PROTO is t (TCP) or u (UDP)
listening() {
    local proto=$1 addr=$2 port=$3
    [[ $addr == *:* ]] && addr="[$addr]"
    ss -Hln"$proto" "src $addr:$port" 2>/dev/null | grep -q .
}
