#!/usr/bin/env bash
# A 3-member Capstan or etcd cluster on 127.0.0.1, for side-by-side measurements.
#
#   cluster3.sh start capstan|etcd DIR BASEPORT   start the members that are not running, then
#                                                 wait until `etcdctl endpoint health` is OK on
#                                                 all three (also restarts a killed member)
#   cluster3.sh stop DIR                          SIGTERM every member (SIGKILL after a while);
#                                                 `stop capstan|etcd DIR [BASEPORT]` works too
#   cluster3.sh endpoints DIR                     client endpoints, comma-separated
#   cluster3.sh members DIR                       ENDPOINT=PID_FILE,... (capstan-bench failover)
#   cluster3.sh status DIR                        one line per member
#   cluster3.sh binary capstan|etcd               the server binary this script would start
#
# Member i (1..3) is named m<i>; its client port is BASEPORT + 2(i-1), its peer port the next
# one (BASEPORT 22379: 22379/22380, 22381/22382, 22383/22384). DIR holds m<i>.data (data dir),
# m<i>.log, m<i>.pid and cluster.env (server and base port, so a restart uses the same ones).
# Processes are only ever signalled by the pid in their pid file, and only if that process's
# command line names the member's data dir (a recycled pid is left alone).
#
# Environment:
#   CAPSTAN_BIN           capstan binary (default: $CARGO_TARGET_DIR/release/capstan, else
#                         target/release/capstan of this repository)
#   ETCD_BIN, ETCDCTL_BIN etcd and etcdctl (default /usr/bin/etcd, /usr/bin/etcdctl)
#   CLUSTER3_PIN          1 (default): pin member i to CPU (i-1) mod (CPUs usable) with
#                         taskset, for both servers alike; 0: no pinning. (Capstan pins its
#                         shards to the first CPUs of its affinity mask: unpinned, all three
#                         members would share CPU 0.)
#   CLUSTER3_HEALTH_TIMEOUT_S  how long to wait for health (default 60)
#   CLUSTER3_EXTRA_FLAGS  more flags for every member (word-split)
set -euo pipefail

MEMBERS=(m1 m2 m3)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
ETCDCTL_BIN="${ETCDCTL_BIN:-/usr/bin/etcdctl}"
HEALTH_TIMEOUT_S="${CLUSTER3_HEALTH_TIMEOUT_S:-60}"
STOP_TIMEOUT_S=15

die() {
    echo "cluster3.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

capstan_bin() {
    if [[ -n "${CAPSTAN_BIN:-}" ]]; then
        echo "$CAPSTAN_BIN"
    elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        echo "$CARGO_TARGET_DIR/release/capstan"
    else
        echo "$REPO/target/release/capstan"
    fi
}

server_bin() {
    if [[ "$1" == capstan ]]; then capstan_bin; else echo "$ETCD_BIN"; fi
}

client_port() { echo $(($1 + 2 * ($2 - 1))); }
peer_port() { echo $(($1 + 2 * ($2 - 1) + 1)); }

# The process behind a pid file, if it runs and is that member (not a zombie, not a recycled pid).
member_pid() {
    local dir="$1" name="$2" pid state
    [[ -f "$dir/$name.pid" ]] || return 1
    pid="$(tr -d '[:space:]' <"$dir/$name.pid")"
    [[ "$pid" =~ ^[0-9]+$ && "$pid" -gt 1 ]] || return 1
    [[ -r "/proc/$pid/stat" ]] || return 1
    # The process may exit between these reads: no message, it is simply not running.
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qxF "$dir/$name.data" || return 1
    echo "$pid"
}

load_env() {
    local dir="$1"
    [[ -f "$dir/cluster.env" ]] || die "$dir/cluster.env not found (no cluster started there)"
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
}

endpoints() {
    local dir="$1" list=() i
    load_env "$dir"
    for i in 1 2 3; do list+=("127.0.0.1:$(client_port "$BASEPORT" "$i")"); done
    (IFS=,; echo "${list[*]}")
}

members() {
    local dir="$1" list=() i
    load_env "$dir"
    for i in 1 2 3; do list+=("127.0.0.1:$(client_port "$BASEPORT" "$i")=$dir/m$i.pid"); done
    (IFS=,; echo "${list[*]}")
}

# Something accepts connections on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

healthy() {
    local port="$1"
    ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="http://127.0.0.1:$port" --dial-timeout=2s \
        --command-timeout=3s endpoint health >/dev/null 2>&1
}

launch() {
    local server="$1" dir="$2" base="$3" i="$4" cluster="$5" token="$6"
    local name="m$i" cport pport binary cpus ncpu
    cport="$(client_port "$base" "$i")"
    pport="$(peer_port "$base" "$i")"
    local flags=(
        --name "$name"
        --data-dir "$dir/$name.data"
        --listen-client-urls "http://127.0.0.1:$cport"
        --advertise-client-urls "http://127.0.0.1:$cport"
        --listen-peer-urls "http://127.0.0.1:$pport"
        --initial-advertise-peer-urls "http://127.0.0.1:$pport"
        --initial-cluster "$cluster"
        --initial-cluster-state new
        --initial-cluster-token "$token"
    )
    binary="$(server_bin "$server")"
    if [[ "$server" == capstan ]]; then flags+=(--shards 1); fi
    [[ -x "$binary" ]] || die "$binary is not an executable (set CAPSTAN_BIN or ETCD_BIN)"
    # shellcheck disable=SC2206
    if [[ -n "${CLUSTER3_EXTRA_FLAGS:-}" ]]; then flags+=($CLUSTER3_EXTRA_FLAGS); fi
    local command=("$binary" "${flags[@]}")
    if [[ "${CLUSTER3_PIN:-1}" == 1 ]]; then
        mapfile -t cpus < <(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' |
            awk -F- '{ if (NF == 2) { for (c = $1; c <= $2; c++) print c } else print $1 }')
        ncpu="${#cpus[@]}"
        command=(taskset -c "${cpus[$(((i - 1) % ncpu))]}" "${command[@]}")
    fi
    echo "--- $(date -u +%FT%TZ) start: ${command[*]}" >>"$dir/$name.log"
    # taskset execs the server, so $! is the server's pid.
    env -u CAPSTAN_LOG "${command[@]}" </dev/null >>"$dir/$name.log" 2>&1 &
    echo "$!" >"$dir/$name.pid"
}

start() {
    local server="$1" dir="$2" base="$3"
    [[ "$server" == capstan || "$server" == etcd ]] || die "server must be capstan or etcd"
    [[ "$base" =~ ^[0-9]+$ && "$base" -ge 1024 && "$base" -le 65530 ]] || die "bad BASEPORT $base"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/cluster.env" ]]; then
        load_env "$dir"
        [[ "$SERVER" == "$server" && "$BASEPORT" == "$base" ]] ||
            die "$dir holds a $SERVER cluster on $BASEPORT; stop it and use another DIR"
    else
        printf 'SERVER=%s\nBASEPORT=%s\n' "$server" "$base" >"$dir/cluster.env"
    fi
    local token="cluster3-$server-$base" cluster="" i
    for i in 1 2 3; do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$(peer_port "$base" "$i")"
    done
    local started=() port
    for i in 1 2 3; do
        if ! member_pid "$dir" "m$i" >/dev/null; then
            for port in "$(client_port "$base" "$i")" "$(peer_port "$base" "$i")"; do
                ! listening "$port" || die "port $port is in use (not by a member of $dir)"
            done
            launch "$server" "$dir" "$base" "$i" "$cluster" "$token"
            started+=("m$i")
        fi
    done
    local deadline=$((SECONDS + HEALTH_TIMEOUT_S)) pending
    while true; do
        pending=()
        for i in 1 2 3; do
            if ! member_pid "$dir" "m$i" >/dev/null; then
                echo "cluster3.sh: m$i exited; last lines of $dir/m$i.log:" >&2
                tail -n 20 "$dir/m$i.log" >&2
                exit 1
            fi
            healthy "$(client_port "$base" "$i")" || pending+=("m$i")
        done
        [[ ${#pending[@]} -eq 0 ]] && break
        if ((SECONDS >= deadline)); then
            die "not healthy within ${HEALTH_TIMEOUT_S}s: ${pending[*]} (logs in $dir)"
        fi
        sleep 0.2
    done
    echo "cluster3.sh: $server healthy on $(endpoints "$dir") (started: ${started[*]:-none})" >&2
}

stop() {
    local dir="$1" name pid pids=() names=()
    [[ -d "$dir" ]] || die "$dir is not a directory"
    dir="$(cd "$dir" && pwd)"
    for name in "${MEMBERS[@]}"; do
        if pid="$(member_pid "$dir" "$name")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        fi
    done
    local deadline=$((SECONDS + STOP_TIMEOUT_S)) k alive
    while true; do
        alive=0
        for k in "${!names[@]}"; do
            member_pid "$dir" "${names[$k]}" >/dev/null && alive=1
        done
        ((alive == 0)) && break
        if ((SECONDS >= deadline)); then
            for k in "${!names[@]}"; do
                if pid="$(member_pid "$dir" "${names[$k]}")"; then
                    echo "cluster3.sh: ${names[$k]} (pid $pid) ignored SIGTERM: SIGKILL" >&2
                    kill -KILL "$pid" 2>/dev/null || true
                fi
            done
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    for name in "${MEMBERS[@]}"; do rm -f "$dir/$name.pid"; done
    echo "cluster3.sh: stopped ${names[*]:-nothing} in $dir" >&2
}

status() {
    local dir="$1" i pid
    load_env "$dir"
    for i in 1 2 3; do
        if pid="$(member_pid "$dir" "m$i")"; then
            echo "m$i $SERVER 127.0.0.1:$(client_port "$BASEPORT" "$i") pid $pid"
        else
            echo "m$i $SERVER 127.0.0.1:$(client_port "$BASEPORT" "$i") down"
        fi
    done
}

[[ $# -ge 2 ]] || usage
command="$1"
shift
case "$command" in
start)
    [[ $# -eq 3 ]] || usage
    start "$1" "$2" "$3"
    ;;
stop)
    if [[ "$1" == capstan || "$1" == etcd ]]; then shift; fi
    [[ $# -ge 1 ]] || usage
    stop "$1"
    ;;
endpoints) endpoints "$1" ;;
members) members "$(cd "$1" && pwd)" ;;
status) status "$1" ;;
binary) server_bin "$1" ;;
*) usage ;;
esac
