#!/usr/bin/env bash
# Storage at scale, etcd and Capstan side by side: one single-member server at a time.
#
#   storage-1m.sh OUTDIR [KEYS]        KEYS defaults to 1000000
#
# For each server (etcd, then capstan), on a fresh data dir OUTDIR/<server>/data:
#   1. fill      KEYS distinct keys (capstan-bench put --sequential-keys, one put per key,
#                no warm-up), throughput; then `get --count-only` checks the key count
#   2. sizes     member/ (du, apparent and allocated), the DB file (etcd: member/snap/db,
#                capstan: member/pages.db, n/a while absent), `endpoint status` dbSize and
#                dbSizeInUse, revision, VmRSS of the server
#   3. overwrite every key once more (half the history is garbage), throughput, sizes again
#   4. restart   SIGTERM (time to exit), start again; time from exec to the first successful
#                `etcdctl get` of a probe key (polled every 20 ms), VmRSS once serving
#   5. put       PUT_SECONDS of puts (capstan-bench put --duration) to random keys of the key
#                space, PUT_CLIENTS clients (closed loop; open loop at STORAGE1M_PUT_RATE if
#                set): p50/p99/p99.9/max, throughput
#   6. defrag    `etcdctl compaction --physical <revision>`, sizes, then the same put run with
#                `etcdctl defrag` started DEFRAG_DELAY_S into it: defrag duration (or
#                "unsupported" if the server answers Unimplemented), the run's figures, sizes
#                right after the defrag returned and at the end of the run
#   7. stop      SIGTERM, wait for exit; the data dir is removed unless STORAGE1M_KEEP_DATA=1
#
# OUTDIR gets summary.md (one table per step, etcd and capstan columns), results.tsv (server,
# metric, value), meta.txt, run.log, and per server: server.log, the capstan-bench reports
# (*.json, stderr in *.err), endpoint status (status-*.json), compaction.out, defrag.out.
# Every process started here is stopped on exit, also on failure or Ctrl-C (by pid, checked
# against its command line). A failed server is reported and the next one still runs.
#
# Settings (environment; defaults in brackets):
#   STORAGE1M_SERVERS ["etcd capstan"]   STORAGE1M_CLIENT_PORT [23790]  STORAGE1M_PEER_PORT [23800]
#   STORAGE1M_KEY_SIZE [16]  STORAGE1M_VAL_SIZE [256]  STORAGE1M_QUOTA_BYTES [8589934592]
#   STORAGE1M_FILL_CLIENTS [256]  STORAGE1M_FILL_CONNS [8]
#   STORAGE1M_PUT_CLIENTS [16]  STORAGE1M_PUT_CONNS [4]  STORAGE1M_PUT_SECONDS [20]
#   STORAGE1M_PUT_RATE [0: closed loop]
#   STORAGE1M_DEFRAG_DELAY_S [2]  STORAGE1M_SETTLE_S [5] (pause before measuring sizes)
#   STORAGE1M_START_TIMEOUT_S [600]  STORAGE1M_STOP_TIMEOUT_S [300] (then SIGKILL)
#   STORAGE1M_RUN_TIMEOUT_S [7200] (one capstan-bench run)  STORAGE1M_KEEP_DATA [0]
#   STORAGE1M_ETCD_FLAGS, STORAGE1M_CAPSTAN_FLAGS  more server flags (word-split)
#   STORAGE1M_BENCH_BIN (default: $CARGO_TARGET_DIR/release/capstan-bench, else target/release/)
#   CAPSTAN_BIN (default: $CARGO_TARGET_DIR/release/capstan, else target/release/capstan)
#   ETCD_BIN [/usr/bin/etcd]  ETCDCTL_BIN [/usr/bin/etcdctl]
# Servers are not pinned: each may use every CPU, and capstan-bench runs on the same machine.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

usage() {
    sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
KEYS="${2:-1000000}"
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || usage
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"

read -r -a SERVERS <<<"${STORAGE1M_SERVERS:-etcd capstan}"
CLIENT_PORT="${STORAGE1M_CLIENT_PORT:-23790}"
PEER_PORT="${STORAGE1M_PEER_PORT:-23800}"
KEY_SIZE="${STORAGE1M_KEY_SIZE:-16}"
VAL_SIZE="${STORAGE1M_VAL_SIZE:-256}"
QUOTA_BYTES="${STORAGE1M_QUOTA_BYTES:-8589934592}"
FILL_CLIENTS="${STORAGE1M_FILL_CLIENTS:-256}"
FILL_CONNS="${STORAGE1M_FILL_CONNS:-8}"
PUT_CLIENTS="${STORAGE1M_PUT_CLIENTS:-16}"
PUT_CONNS="${STORAGE1M_PUT_CONNS:-4}"
PUT_SECONDS="${STORAGE1M_PUT_SECONDS:-20}"
PUT_RATE="${STORAGE1M_PUT_RATE:-0}"
DEFRAG_DELAY_S="${STORAGE1M_DEFRAG_DELAY_S:-2}"
SETTLE_S="${STORAGE1M_SETTLE_S:-5}"
START_TIMEOUT_S="${STORAGE1M_START_TIMEOUT_S:-600}"
STOP_TIMEOUT_S="${STORAGE1M_STOP_TIMEOUT_S:-300}"
RUN_TIMEOUT_S="${STORAGE1M_RUN_TIMEOUT_S:-7200}"
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
ETCDCTL_BIN="${ETCDCTL_BIN:-/usr/bin/etcdctl}"
if [[ -n "${STORAGE1M_BENCH_BIN:-}" ]]; then
    BENCH="$STORAGE1M_BENCH_BIN"
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    BENCH="$CARGO_TARGET_DIR/release/capstan-bench"
else
    BENCH="$REPO/target/release/capstan-bench"
fi
if [[ -n "${CAPSTAN_BIN:-}" ]]; then
    :
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    CAPSTAN_BIN="$CARGO_TARGET_DIR/release/capstan"
else
    CAPSTAN_BIN="$REPO/target/release/capstan"
fi
PROBE_KEY="storage-1m/probe"
PROBE_VALUE="probe-value"
MEMBER_NAME="storage1m"

log() {
    local line
    line="storage-1m.sh: $(date -u +%TZ) $*"
    echo "$line" >&2
    echo "$line" >>"$OUT/run.log"
}
die() {
    log "error: $*"
    exit 1
}

for number in "$CLIENT_PORT" "$PEER_PORT" "$KEY_SIZE" "$VAL_SIZE" "$QUOTA_BYTES" \
    "$FILL_CLIENTS" "$FILL_CONNS" "$PUT_CLIENTS" "$PUT_CONNS" "$PUT_SECONDS" \
    "$DEFRAG_DELAY_S" "$SETTLE_S" "$START_TIMEOUT_S" "$STOP_TIMEOUT_S" \
    "$RUN_TIMEOUT_S"; do
    [[ "$number" =~ ^[0-9]+$ ]] || die "not a whole number: $number (check STORAGE1M_*)"
done
[[ "$PUT_RATE" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "STORAGE1M_PUT_RATE must be a number"
[[ -x "$BENCH" ]] || die "no capstan-bench at $BENCH (cargo build --release -p capstan-bench)"
[[ -x "$ETCDCTL_BIN" ]] || die "no etcdctl at $ETCDCTL_BIN"
command -v jq >/dev/null || die "jq is needed"
for server in "${SERVERS[@]}"; do
    case "$server" in
    etcd) [[ -x "$ETCD_BIN" ]] || die "no etcd at $ETCD_BIN" ;;
    capstan) [[ -x "$CAPSTAN_BIN" ]] || die "no capstan at $CAPSTAN_BIN (set CAPSTAN_BIN)" ;;
    *) die "unknown server $server in STORAGE1M_SERVERS" ;;
    esac
done

now_ns() { date +%s%N; }
ms_since() { echo $((($(now_ns) - $1) / 1000000)); }

# ---------------------------------------------------------------------------------------------
# Processes. Every pid we start is written to a file under OUTDIR/<server>/ and only signalled
# while its command line still names what we started (a recycled pid is left alone).

# The pid in FILE if that process runs (not a zombie) and its command line has WORD.
pid_of() {
    local file="$1" word="$2" pid state
    [[ -f "$file" ]] || return 1
    pid="$(tr -d '[:space:]' <"$file")"
    [[ "$pid" =~ ^[0-9]+$ && "$pid" -gt 1 ]] || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$word" || return 1
    echo "$pid"
}

# SIGTERM the process of FILE (if it is still ours), SIGKILL after TIMEOUT_S.
stop_pid_file() {
    local file="$1" word="$2" timeout_s="$3" pid deadline
    pid="$(pid_of "$file" "$word")" || { rm -f "$file"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout_s))
    while pid_of "$file" "$word" >/dev/null; do
        if ((SECONDS >= deadline)); then
            log "pid $pid ($file) ignored SIGTERM for ${timeout_s}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.1
    done
    rm -f "$file"
}

# Any process still running with a data dir of OUTDIR on its command line (ours, by its path).
leftovers() {
    local proc pid
    for proc in /proc/[0-9]*; do
        pid="${proc#/proc/}"
        [[ "$pid" != "$$" && "$pid" != "${BASHPID:-}" ]] || continue
        if { tr '\0' '\n' <"$proc/cmdline"; } 2>/dev/null | grep -qxF -- "$OUT/$1/data"; then
            echo "$pid"
        fi
    done
}

# Stops what a server's run left running: its capstan-bench, its server, any straggler.
cleanup_server() {
    local server="$1" dir="$OUT/$1" pid
    stop_pid_file "$dir/bench.pid" "$BENCH" 10
    stop_pid_file "$dir/server.pid" "$dir/data" 30
    for pid in $(leftovers "$server"); do
        log "$server: process $pid still runs on $dir/data: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------------------------------------
# One server's measurements; run in a subshell per server (set -e ends only that server).

SERVER=""
DIR=""
START_NS=0

result() {
    printf '%s\t%s\t%s\n' "$SERVER" "$1" "$2" >>"$OUT/results.tsv"
    log "  $SERVER $1 = $2"
}

ctl() {
    ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="http://127.0.0.1:$CLIENT_PORT" \
        --dial-timeout=2s "$@"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

server_pid() { pid_of "$DIR/server.pid" "$DIR/data"; }

start_server() {
    local binary flags extra
    flags=(
        --name "$MEMBER_NAME"
        --data-dir "$DIR/data"
        --listen-client-urls "http://127.0.0.1:$CLIENT_PORT"
        --advertise-client-urls "http://127.0.0.1:$CLIENT_PORT"
        --listen-peer-urls "http://127.0.0.1:$PEER_PORT"
        --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT"
        --initial-cluster "$MEMBER_NAME=http://127.0.0.1:$PEER_PORT"
        --quota-backend-bytes "$QUOTA_BYTES"
    )
    if [[ "$SERVER" == etcd ]]; then
        binary="$ETCD_BIN"
        extra="${STORAGE1M_ETCD_FLAGS:-}"
    else
        binary="$CAPSTAN_BIN"
        extra="${STORAGE1M_CAPSTAN_FLAGS:-}"
    fi
    # shellcheck disable=SC2206 # word-split on purpose
    if [[ -n "$extra" ]]; then flags+=($extra); fi
    local port
    for port in "$CLIENT_PORT" "$PEER_PORT"; do
        ! listening "$port" || die "port $port is in use by another process"
    done
    echo "--- $(date -u +%FT%TZ) start: $binary ${flags[*]}" >>"$DIR/server.log"
    START_NS="$(now_ns)"
    # env execs the server: $! is the server's pid.
    env -u CAPSTAN_LOG "$binary" "${flags[@]}" </dev/null >>"$DIR/server.log" 2>&1 &
    echo "$!" >"$DIR/server.pid"
}

# Polls every 20 ms until `etcdctl get PROBE_KEY` succeeds (and, with "probe", returns the
# probe's value); SERVING_MS: the milliseconds since the server was exec'd.
SERVING_MS=""
wait_serving() {
    local want="$1" deadline=$((SECONDS + START_TIMEOUT_S)) value
    while true; do
        if ! server_pid >/dev/null; then
            tail -n 30 "$DIR/server.log" >&2 || true
            die "$SERVER exited while starting (log: $DIR/server.log)"
        fi
        if listening "$CLIENT_PORT" &&
            value="$(ctl --command-timeout=2s get "$PROBE_KEY" --print-value-only 2>/dev/null)"; then
            if [[ "$want" != probe || "$value" == "$PROBE_VALUE" ]]; then
                SERVING_MS="$(ms_since "$START_NS")"
                return 0
            fi
        fi
        ((SECONDS < deadline)) || die "$SERVER not serving within ${START_TIMEOUT_S}s"
        sleep 0.02
    done
}

# SIGTERM, wait for the exit: STOP_MS, STOP_HOW (exited | killed).
STOP_MS=""
STOP_HOW=""
stop_server() {
    local pid started deadline how=exited
    pid="$(server_pid)" || die "$SERVER is not running at stop time"
    started="$(now_ns)"
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while server_pid >/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$SERVER ignored SIGTERM for ${STOP_TIMEOUT_S}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            how=killed
            sleep 0.5
            break
        fi
        sleep 0.02
    done
    STOP_MS="$(ms_since "$started")"
    STOP_HOW="$how"
    wait "$pid" 2>/dev/null || true
    rm -f "$DIR/server.pid"
}

rss_bytes() {
    local pid
    pid="$(server_pid)" || { echo n/a; return 0; }
    awk '/^VmRSS:/ { print $2 * 1024; found = 1 } END { if (!found) print "n/a" }' \
        "/proc/$pid/status" 2>/dev/null || echo n/a
}

file_bytes() { if [[ -f "$1" ]]; then stat -c %s "$1"; else echo n/a; fi; }
dir_apparent_bytes() { if [[ -d "$1" ]]; then du -sb "$1" | cut -f1; else echo n/a; fi; }
dir_allocated_bytes() { if [[ -d "$1" ]]; then du -s -B1 "$1" | cut -f1; else echo n/a; fi; }

db_file() {
    if [[ "$SERVER" == etcd ]]; then
        echo "$DIR/data/member/snap/db"
    else
        echo "$DIR/data/member/pages.db"
    fi
}

# endpoint status -w json into status-PHASE.json: STATUS_REVISION, STATUS_DB_SIZE,
# STATUS_DB_IN_USE ("n/a" for a field the server leaves out).
STATUS_REVISION=""
STATUS_DB_SIZE=""
STATUS_DB_IN_USE=""
status() {
    local file="$DIR/status-$1.json" fields
    ctl --command-timeout=60s endpoint status -w json >"$file"
    fields="$(jq -r '.[0].Status | [(.header.revision // "n/a"), (.dbSize // "n/a"),
        (.dbSizeInUse // "n/a")] | map(tostring) | join(" ")' "$file")"
    read -r STATUS_REVISION STATUS_DB_SIZE STATUS_DB_IN_USE <<<"$fields"
}

# sizes PHASE [SETTLE_S]: the sizes and RSS, SETTLE_S (default STORAGE1M_SETTLE_S) from now.
sizes() {
    local phase="$1"
    sleep "${2:-$SETTLE_S}"
    status "$phase"
    result "$phase.member_apparent_bytes" "$(dir_apparent_bytes "$DIR/data/member")"
    result "$phase.member_allocated_bytes" "$(dir_allocated_bytes "$DIR/data/member")"
    result "$phase.wal_apparent_bytes" "$(dir_apparent_bytes "$DIR/data/member/wal")"
    result "$phase.db_file_bytes" "$(file_bytes "$(db_file)")"
    result "$phase.status_db_size_bytes" "$STATUS_DB_SIZE"
    result "$phase.status_db_in_use_bytes" "$STATUS_DB_IN_USE"
    result "$phase.revision" "$STATUS_REVISION"
    result "$phase.rss_bytes" "$(rss_bytes)"
}

# capstan-bench NAME ARGS... in the background (its pid in bench.pid), report in NAME.json.
bench_start() {
    local name="$1"
    shift
    timeout -k 10 "$RUN_TIMEOUT_S" "$BENCH" --endpoints "127.0.0.1:$CLIENT_PORT" \
        --label "$SERVER" --output json --request-timeout 120s "$@" \
        >"$DIR/$name.json" 2>"$DIR/$name.err" &
    echo "$!" >"$DIR/bench.pid"
}

bench_wait() {
    local name="$1" pid rc=0
    pid="$(tr -d '[:space:]' <"$DIR/bench.pid")"
    wait "$pid" || rc=$?
    rm -f "$DIR/bench.pid"
    if ((rc != 0)); then
        tail -n 5 "$DIR/$name.err" >&2 || true
        die "capstan-bench $name failed (exit $rc; see $DIR/$name.err)"
    fi
}

bench_run() {
    bench_start "$@"
    bench_wait "$1"
}

# The figures of a bench report as results PREFIX.*.
bench_results() {
    local prefix="$1" name="$2" fields count errors elapsed ops p50 p99 p999 max
    fields="$(jq -r '.series[0] |
        [.count, .errors, .elapsed_s, .throughput_ops_per_s, .latency_ms.p50,
         .latency_ms.p99, .latency_ms["p99.9"], .latency_ms.max] | map(tostring) | join(" ")' \
        "$DIR/$name.json")"
    read -r count errors elapsed ops p50 p99 p999 max <<<"$fields"
    result "$prefix.count" "$count"
    result "$prefix.errors" "$errors"
    result "$prefix.elapsed_s" "$elapsed"
    result "$prefix.ops_per_s" "$ops"
    result "$prefix.p50_ms" "$p50"
    result "$prefix.p99_ms" "$p99"
    result "$prefix.p999_ms" "$p999"
    result "$prefix.max_ms" "$max"
    if [[ "$errors" != 0 ]]; then
        log "  $SERVER $name: $errors errors: $(jq -r '.series[0].error_kinds[0][0]' \
            "$DIR/$name.json")"
    fi
}

# Result NAME: the keys in the store, less the probe key. (etcdctl 3.4 has no --count-only;
# a range answers the count of the whole range whatever its limit.)
keys_result() {
    local output count
    output="$(ctl --command-timeout=600s get "" --from-key --keys-only --limit 1 -w json)"
    count="$(jq -r '.count // 0' <<<"$output")"
    result "$1" "$((count - 1))"
}

# The put run of steps 5 and 6: PUT_SECONDS long (--total only bounds it).
PUT_ARGS=(--clients "$PUT_CLIENTS" --conns "$PUT_CONNS" --duration "${PUT_SECONDS}s"
    --total 100000000 put --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" --key-space-size "$KEYS")
if [[ "$PUT_RATE" != 0 ]]; then PUT_ARGS+=(--rate "$PUT_RATE"); fi

fill_like() {
    local name="$1"
    bench_run "$name" --clients "$FILL_CLIENTS" --conns "$FILL_CONNS" --warmup 0 \
        --total "$KEYS" put --key-size "$KEY_SIZE" --val-size "$VAL_SIZE" \
        --sequential-keys --key-space-size "$KEYS"
    bench_results "$name" "$name"
}

measure_server() {
    SERVER="$1"
    DIR="$OUT/$SERVER"
    trap 'cleanup_server "$SERVER"' EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    trap 'log "$SERVER: failed at line $LINENO: $BASH_COMMAND"' ERR
    mkdir -p "$DIR"
    rm -rf "$DIR/data"
    rm -f "$DIR"/*.json "$DIR"/*.err "$DIR"/*.out "$DIR/server.log"

    log "$SERVER: start on a fresh data dir $DIR/data"
    start_server
    wait_serving any
    result start.first_get_ms "$SERVING_MS"
    ctl --command-timeout=10s put "$PROBE_KEY" "$PROBE_VALUE" >/dev/null

    log "$SERVER: 1. fill $KEYS keys"
    fill_like fill
    keys_result fill.keys
    log "$SERVER: 2. sizes after the fill"
    sizes fill

    log "$SERVER: 3. overwrite every key"
    fill_like overwrite
    keys_result overwrite.keys
    sizes overwrite

    log "$SERVER: 4. restart"
    stop_server
    result restart.stop_ms "$STOP_MS"
    result restart.stop_how "$STOP_HOW"
    start_server
    wait_serving probe
    result restart.first_get_ms "$SERVING_MS"
    result restart.rss_bytes "$(rss_bytes)"

    log "$SERVER: 5. put for ${PUT_SECONDS}s, no defrag"
    bench_run put "${PUT_ARGS[@]}"
    bench_results put put

    log "$SERVER: 6. compaction, then put for ${PUT_SECONDS}s with a defrag"
    local revision started
    status pre-compaction
    revision="$STATUS_REVISION"
    started="$(now_ns)"
    ctl --command-timeout=600s compaction --physical "$revision" >"$DIR/compaction.out" 2>&1 ||
        die "compaction failed: $(cat "$DIR/compaction.out")"
    result compaction.revision "$revision"
    result compaction.duration_ms "$(ms_since "$started")"
    sizes before-defrag

    local bench_started defrag_started defrag_ended defrag_rc=0 bench_ended
    bench_start put-defrag "${PUT_ARGS[@]}"
    bench_started="$(now_ns)"
    sleep "$DEFRAG_DELAY_S"
    defrag_started="$(now_ns)"
    ctl --command-timeout=600s defrag >"$DIR/defrag.out" 2>&1 || defrag_rc=$?
    defrag_ended="$(now_ns)"
    sizes after-defrag 0
    bench_wait put-defrag
    bench_ended="$(now_ns)"
    if ((defrag_rc == 0)); then
        result defrag.outcome ok
        result defrag.duration_ms "$(((defrag_ended - defrag_started) / 1000000))"
    elif grep -qi 'unimplemented' "$DIR/defrag.out"; then
        result defrag.outcome unsupported
        result defrag.duration_ms n/a
    else
        result defrag.outcome "failed (exit $defrag_rc)"
        result defrag.duration_ms n/a
        log "  defrag: $(tr '\n' ' ' <"$DIR/defrag.out")"
    fi
    result defrag.started_into_run_ms "$(((defrag_started - bench_started) / 1000000))"
    result defrag.ended_into_run_ms "$(((defrag_ended - bench_started) / 1000000))"
    result defrag.run_ended_ms "$(((bench_ended - bench_started) / 1000000))"
    bench_results put-defrag put-defrag
    keys_result put-defrag.keys
    sizes end-of-run

    log "$SERVER: 7. stop"
    stop_server
    result final.stop_ms "$STOP_MS"
    result final.stop_how "$STOP_HOW"
    if [[ "${STORAGE1M_KEEP_DATA:-0}" != 1 ]]; then rm -rf "$DIR/data"; fi
    log "$SERVER: done"
}

# ---------------------------------------------------------------------------------------------
# Report.

write_meta() {
    {
        echo "date: $(date -u +%FT%TZ)"
        echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)" \
            "($(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) changed files)"
        echo "kernel: $(uname -r)"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') x $(nproc)"
        echo "memory: $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "disk of OUTDIR: $(df -hT "$OUT" | tail -1)"
        local server
        for server in "${SERVERS[@]}"; do
            if [[ "$server" == etcd ]]; then
                echo "etcd: $ETCD_BIN, $("$ETCD_BIN" --version 2>&1 | grep -m1 'etcd Version')"
            else
                echo "capstan: $CAPSTAN_BIN, $("$CAPSTAN_BIN" --version 2>&1 | head -1)"
            fi
        done
        echo "etcdctl: $ETCDCTL_BIN, $("$ETCDCTL_BIN" version 2>&1 | head -1)"
        echo "bench: $BENCH"
        echo "settings: keys=$KEYS key_size=$KEY_SIZE val_size=$VAL_SIZE" \
            "quota_bytes=$QUOTA_BYTES fill_clients=$FILL_CLIENTS fill_conns=$FILL_CONNS" \
            "put_clients=$PUT_CLIENTS put_conns=$PUT_CONNS put_seconds=$PUT_SECONDS" \
            "put_rate=$PUT_RATE" \
            "defrag_delay_s=$DEFRAG_DELAY_S settle_s=$SETTLE_S"
        echo "extra flags: etcd '${STORAGE1M_ETCD_FLAGS:-}' capstan '${STORAGE1M_CAPSTAN_FLAGS:-}'"
    } >"$OUT/meta.txt"
}

# table TITLE KEY:LABEL...  one markdown table of these results, etcd and capstan columns.
table() {
    local title="$1"
    shift
    echo "### $title"
    echo
    printf '%s\n' "$@" | awk -F'\t' -v results="$OUT/results.tsv" '
        function shown(key, value) {
            if (value == "") return "-"
            if (value !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) return value
            if (key ~ /_bytes$/) return sprintf("%.1f MiB", value / 1048576)
            if (key ~ /ops_per_s$/) return sprintf("%.0f", value)
            if (key ~ /_ms$/) {
                if (value + 0 >= 100 || value ~ /^[0-9]+$/) return sprintf("%.0f ms", value)
                return sprintf("%.3f ms", value)
            }
            if (key ~ /_s$/) return sprintf("%.2f s", value)
            return value
        }
        function numeric(value) { return value ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
        BEGIN {
            while ((getline line < results) > 0) {
                split(line, part, "\t"); value[part[1], part[2]] = part[3]
            }
            print "| metric | etcd | capstan | capstan / etcd |"
            print "| --- | ---: | ---: | ---: |"
        }
        {
            split($0, spec, ":"); key = spec[1]; label = substr($0, length(key) + 2)
            e = value["etcd", key]; c = value["capstan", key]
            ratio = (numeric(e) && numeric(c) && e + 0 != 0) ? sprintf("%.2f", c / e) : ""
            printf "| %s | %s | %s | %s |\n", label, shown(key, e), shown(key, c), ratio
        }'
    echo
}

size_rows() {
    local phase="$1"
    printf '%s\n' \
        "$phase.member_apparent_bytes:member/ on disk (du, apparent)" \
        "$phase.member_allocated_bytes:member/ on disk (du, allocated)" \
        "$phase.wal_apparent_bytes:of which member/wal (du, apparent)" \
        "$phase.db_file_bytes:DB file (etcd member/snap/db, capstan member/pages.db)" \
        "$phase.status_db_size_bytes:endpoint status dbSize" \
        "$phase.status_db_in_use_bytes:endpoint status dbSizeInUse" \
        "$phase.revision:revision" \
        "$phase.rss_bytes:server VmRSS"
}

latency_rows() {
    local prefix="$1"
    printf '%s\n' \
        "$prefix.count:successful puts" "$prefix.errors:errors" \
        "$prefix.elapsed_s:run time" "$prefix.ops_per_s:throughput (ops/s)" \
        "$prefix.p50_ms:p50" "$prefix.p99_ms:p99" "$prefix.p999_ms:p99.9" "$prefix.max_ms:max"
}

put_mode() {
    if [[ "$PUT_RATE" != 0 ]]; then echo "open loop at $PUT_RATE puts/s"; else echo "closed loop"; fi
}

write_summary() {
    [[ -s "$OUT/results.tsv" ]] || return 0
    {
        echo "# Storage with $KEYS keys: etcd vs Capstan, $(date -u +%F)"
        echo
        echo '```'
        cat "$OUT/meta.txt"
        echo '```'
        echo
        echo "One single-member server at a time on 127.0.0.1:$CLIENT_PORT, fresh data dir," \
            "--quota-backend-bytes $QUOTA_BYTES. Keys: $KEY_SIZE bytes (capstan-bench" \
            "varint keys), values: $VAL_SIZE random bytes. MiB = 2^20 bytes. Sizes are taken" \
            "${SETTLE_S}s after the step. capstan / etcd above 1: Capstan's figure is larger."
        if [[ ${#FAILED[@]} -gt 0 ]]; then
            echo
            echo "**Failed: ${FAILED[*]}** (see run.log and <server>/server.log); the tables" \
                "hold what was measured before the failure."
        fi
        echo
        table "1. Fill: $KEYS distinct keys, $FILL_CLIENTS clients over $FILL_CONNS connections" \
            "start.first_get_ms:first start: exec to first successful get" \
            "fill.ops_per_s:fill throughput (ops/s)" "fill.elapsed_s:fill time" \
            "fill.errors:fill errors" "fill.p50_ms:fill put p50" "fill.p99_ms:fill put p99" \
            "fill.p999_ms:fill put p99.9" "fill.keys:keys after the fill (count-only range)"
        table "2. Size after the fill" "$(size_rows fill)"
        table "3. Overwrite every key once (half the history is garbage)" \
            "overwrite.ops_per_s:overwrite throughput (ops/s)" \
            "overwrite.elapsed_s:overwrite time" "overwrite.errors:overwrite errors" \
            "overwrite.p99_ms:overwrite put p99" "overwrite.keys:keys after the overwrite" \
            "$(size_rows overwrite)"
        table "4. Restart (SIGTERM, then start on the same data dir)" \
            "restart.stop_ms:SIGTERM to exit" "restart.stop_how:how it ended" \
            "restart.first_get_ms:exec to first successful get (20 ms polls)" \
            "restart.rss_bytes:server VmRSS once serving"
        table "5. Put, ${PUT_SECONDS}s, $PUT_CLIENTS clients, $(put_mode), random keys, no defrag" \
            "$(latency_rows put)"
        table "6a. Compaction at the current revision; size before the defrag" \
            "compaction.revision:compacted at revision" \
            "compaction.duration_ms:compaction --physical" "$(size_rows before-defrag)"
        table "6b. The same put run, with a defrag ${DEFRAG_DELAY_S}s into it" \
            "defrag.outcome:defrag" "defrag.duration_ms:defrag duration" \
            "defrag.started_into_run_ms:defrag started, into the put run" \
            "defrag.ended_into_run_ms:defrag ended, into the put run" \
            "defrag.run_ended_ms:put run ended, from its start" \
            "$(latency_rows put-defrag)" "put-defrag.keys:keys after the run"
        table "6c. Size right after the defrag returned (the put run still going)" \
            "$(size_rows after-defrag)"
        table "6d. Size at the end of the put run" "$(size_rows end-of-run)"
        table "7. Stop" "final.stop_ms:SIGTERM to exit" "final.stop_how:how it ended"
        echo "Raw: results.tsv; per server: *.json (capstan-bench reports), *.err," \
            "status-*.json, compaction.out, defrag.out, server.log; run.log."
    } >"$OUT/summary.md"
    log "wrote $OUT/summary.md"
}

# ---------------------------------------------------------------------------------------------
# Main.

FAILED=()
MEASURE_PID=""
SUMMARY_WRITTEN=0

main_cleanup() {
    local rc=$? server
    trap - EXIT INT TERM
    if [[ -n "$MEASURE_PID" ]]; then
        kill -TERM "$MEASURE_PID" 2>/dev/null || true
        wait "$MEASURE_PID" 2>/dev/null || true
    fi
    for server in "${SERVERS[@]}"; do
        cleanup_server "$server"
        if [[ -n "$(leftovers "$server")" ]]; then
            log "warning: processes still on $OUT/$server/data: $(leftovers "$server" | paste -sd' ')"
            rc=1
        fi
        [[ "${STORAGE1M_KEEP_DATA:-0}" == 1 ]] || rm -rf "$OUT/$server/data"
    done
    if [[ "$SUMMARY_WRITTEN" == 0 ]]; then
        log "interrupted (exit $rc): summary of what was measured so far"
        FAILED+=("interrupted")
        write_summary || true
    fi
    exit "$rc"
}
trap main_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

: >"$OUT/run.log"
: >"$OUT/results.tsv"
write_meta
log "$KEYS keys; servers: ${SERVERS[*]}; output in $OUT"
# A rough need: about 4 KiB of disk per key at the peak of one server's run (DB, WAL and
# snapshots after a fill, an overwrite and two put runs); one data dir exists at a time.
free_bytes="$(df -B1 --output=avail "$OUT" | tail -1 | tr -d ' ')"
if [[ "$free_bytes" =~ ^[0-9]+$ ]] && ((free_bytes < KEYS * 4096)); then
    log "warning: only $((free_bytes / 1048576)) MiB free under $OUT;" \
        "about $((KEYS * 4096 / 1048576)) MiB may be needed"
fi
for server in "${SERVERS[@]}"; do
    # In a background subshell, waited for: its errexit stops this server only, and `wait`
    # returns at once when this script is signalled.
    measure_server "$server" &
    MEASURE_PID=$!
    if wait "$MEASURE_PID"; then
        :
    else
        log "$server FAILED (exit $?); going on"
        FAILED+=("$server")
    fi
    MEASURE_PID=""
done
write_summary
SUMMARY_WRITTEN=1
if [[ ${#FAILED[@]} -gt 0 ]]; then
    log "failed: ${FAILED[*]}"
    exit 1
fi
