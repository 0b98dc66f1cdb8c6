#!/usr/bin/env bash
# Whole-cluster restart: how long after all three members of a 3-member cluster are SIGKILLed
# and started again does the first put get acknowledged?
#
#   restart-all.sh [OUTDIR]
#
# Starts a 3-member cluster of every server in RESTART_SERVERS on 127.0.0.1 with
# bench/scripts/cluster3.sh (and waits until it is healthy), then RESTART_ROUNDS times, for each
# server in turn (rounds alternate between servers, so a drift of the machine hits them alike):
#   1. writes RESTART_KEYS keys in one txn (so the restart has a log tail to replay);
#   2. SIGKILLs all three members with one kill(1) and waits until they are gone;
#   3. starts all three again with the argv and CPU affinity each had (read from /proc before
#      the kill), all at once, and notes the time T0 just before the first start;
#   4. runs a put (`ETCDCTL put`, all three endpoints, --dial-timeout RESTART_DIAL_TIMEOUT,
#      --command-timeout RESTART_COMMAND_TIMEOUT), again every RESTART_RETRY_MS after each failure,
#      until one is acknowledged: the sample is the time from T0 to the end of that etcdctl run
#      (etcdctl's own start-up, ~10-30 ms, is in every sample of every server alike);
#   5. checks that the keys of step 1 are there (a linearizable get), waits until all three
#      members are healthy again (cluster3.sh start), then the next round.
# Prints one line per round and, per server, the median and max; OUTDIR (default: a new
# directory under /tmp) gets samples.tsv, summary.txt, meta.txt and each cluster's member logs.
# Every cluster is stopped at the end, also on failure; data dirs are removed.
#
# Servers (RESTART_SERVERS, default "capstan etcd36 etcd34"; one missing binary is skipped with
# a note, unless it is capstan):
#   capstan   CAPSTAN_BIN (default as cluster3.sh: target/release/capstan of this repository)
#   capstan-baseline  CAPSTAN_BASELINE_BIN (no default): another capstan build, e.g. the one
#             before a change, measured in the same run
#   etcd36    ETCD36_BIN (default: etcd36 on PATH, else RESTART_REF_DIR/etcd36, installed there
#             from ../shared/ref/install.sh when that exists; RESTART_REF_DIR defaults to
#             /tmp/capstan-ref)
#   etcd34    ETCD34_BIN (default /usr/bin/etcd, Debian's etcd 3.4)
# The client (RESTART_CTL_BIN) is etcdctl36 when found that way, else /usr/bin/etcdctl: the same
# client for every server.
#
# Settings (environment; defaults in brackets): RESTART_ROUNDS [10]  RESTART_KEYS [100]
#   RESTART_RETRY_MS [30]  RESTART_DIAL_TIMEOUT [1s]  RESTART_COMMAND_TIMEOUT [2s]
#   RESTART_TIMEOUT_S [60] (a round that has no acknowledged put by then fails the script)
#   RESTART_BASEPORT [42379] (server k of the list uses RESTART_BASEPORT + 10k)
#   CLUSTER3_PIN, CLUSTER3_EXTRA_FLAGS: see cluster3.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CLUSTER3="$HERE/cluster3.sh"

ROUNDS="${RESTART_ROUNDS:-10}"
KEYS="${RESTART_KEYS:-100}"
RETRY_MS="${RESTART_RETRY_MS:-30}"
DIAL_TIMEOUT="${RESTART_DIAL_TIMEOUT:-1s}"
COMMAND_TIMEOUT="${RESTART_COMMAND_TIMEOUT:-2s}"
ROUND_TIMEOUT_S="${RESTART_TIMEOUT_S:-60}"
BASEPORT="${RESTART_BASEPORT:-42379}"
REF_DIR="${RESTART_REF_DIR:-/tmp/capstan-ref}"
read -r -a SERVERS <<<"${RESTART_SERVERS:-capstan etcd36 etcd34}"

die() {
    echo "restart-all.sh: $*" >&2
    exit 1
}

[[ $# -le 1 ]] || {
    sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
OUT="${1:-$(mktemp -d /tmp/restart-all.XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

now_ns() { date +%s%N; }

# etcd 3.6 and its etcdctl: on PATH, in REF_DIR, or unpacked into REF_DIR.
ref_bin() {
    local name="$1" installer="$REPO/../shared/ref/install.sh"
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    if [[ ! -x "$REF_DIR/$name" && -x "$installer" ]] && command -v xz >/dev/null 2>&1; then
        "$installer" "$REF_DIR" >&2 || true
    fi
    [[ -x "$REF_DIR/$name" ]] && echo "$REF_DIR/$name"
}

CTL="${RESTART_CTL_BIN:-$(ref_bin etcdctl36 || echo /usr/bin/etcdctl)}"
[[ -x "$CTL" ]] || die "no etcdctl ($CTL); set RESTART_CTL_BIN"

server_binary() {
    case "$1" in
    capstan) CAPSTAN_BIN="${CAPSTAN_BIN:-}" "$CLUSTER3" binary capstan ;;
    capstan-baseline) echo "${CAPSTAN_BASELINE_BIN:-}" ;;
    etcd36) echo "${ETCD36_BIN:-$(ref_bin etcd36 || true)}" ;;
    etcd34) echo "${ETCD34_BIN:-/usr/bin/etcd}" ;;
    *) die "unknown server $1 (capstan, etcd36 or etcd34)" ;;
    esac
}

# The pid in DIR/NAME.pid if that process runs and is that member (cluster3.sh's rule: its
# command line names the member's data dir).
member_pid() {
    local dir="$1" name="$2" pid state
    [[ -f "$dir/$name.pid" ]] || return 1
    pid="$(tr -d '[:space:]' <"$dir/$name.pid")"
    [[ "$pid" =~ ^[0-9]+$ && "$pid" -gt 1 && -r "/proc/$pid/stat" ]] || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qxF "$dir/$name.data" || return 1
    echo "$pid"
}

# etcdctl 3.4 needs ETCDCTL_API=3; 3.5 and later warn about it.
CTL_ENV=()
if "$CTL" version 2>/dev/null | grep -q 'etcdctl version: 3\.[0-4]\.'; then CTL_ENV=(ETCDCTL_API=3); fi

ctl() {
    local endpoints="$1"
    shift
    env "${CTL_ENV[@]}" "$CTL" --endpoints="$endpoints" --dial-timeout="$DIAL_TIMEOUT" \
        --command-timeout="$COMMAND_TIMEOUT" "$@"
}

write_keys() {
    local endpoints="$1" round="$2" i
    {
        echo
        for ((i = 0; i < KEYS; i++)); do printf 'put restart/k%04d r%s\n' "$i" "$round"; done
        echo
        echo
    } | ctl "$endpoints" txn >/dev/null || die "txn of $KEYS keys failed before round $round"
}

# SIGKILLs the three members of DIR at once, waits until they are gone, starts them again with
# the argv and affinity they had, and prints T0 (ns) taken just before the first start.
kill_and_restart() {
    local dir="$1" i pid pids=() argv_files=() cpus=()
    for i in 1 2 3; do
        pid="$(member_pid "$dir" "m$i")" || die "m$i of $dir is not running before the kill"
        pids+=("$pid")
        tr '\0' '\n' <"/proc/$pid/cmdline" >"$dir/m$i.argv"
        argv_files+=("$dir/m$i.argv")
        cpus+=("$(taskset -pc "$pid" | sed 's/.*: //')")
    done
    kill -KILL "${pids[@]}"
    local deadline=$((SECONDS + 15))
    for i in 1 2 3; do
        while member_pid "$dir" "m$i" >/dev/null; do
            ((SECONDS < deadline)) || die "m$i (pid ${pids[$((i - 1))]}) survived SIGKILL"
            sleep 0.01
        done
    done
    local t0 argv
    t0="$(now_ns)"
    for i in 1 2 3; do
        mapfile -t argv <"${argv_files[$((i - 1))]}"
        echo "--- $(date -u +%FT%TZ) restart-all: taskset -c ${cpus[$((i - 1))]} ${argv[*]}" \
            >>"$dir/m$i.log"
        env -u CAPSTAN_LOG taskset -c "${cpus[$((i - 1))]}" "${argv[@]}" \
            </dev/null >>"$dir/m$i.log" 2>&1 &
        echo "$!" >"$dir/m$i.pid"
    done
    echo "$t0"
}

# Puts until one is acknowledged; prints "elapsed_ms attempts" from T0.
first_put() {
    local endpoints="$1" round="$2" t0="$3" attempts=0 error_log="$4"
    local deadline_ns=$((t0 + ROUND_TIMEOUT_S * 1000000000))
    while true; do
        attempts=$((attempts + 1))
        if ctl "$endpoints" put restart/probe "r$round" >/dev/null 2>>"$error_log"; then
            echo "$((($(now_ns) - t0) / 1000000)) $attempts"
            return
        fi
        (($(now_ns) < deadline_ns)) || die "round $round: no put acknowledged in ${ROUND_TIMEOUT_S}s"
        sleep "$(awk -v ms="$RETRY_MS" 'BEGIN { printf "%.3f", ms / 1000 }')"
    done
}

CLUSTER_DIRS=()
cleanup() {
    local dir
    for dir in "${CLUSTER_DIRS[@]}"; do
        [[ -d "$dir" ]] || continue
        "$CLUSTER3" stop "$dir" 2>/dev/null || true
        mkdir -p "$OUT/logs/$(basename "$dir")"
        cp "$dir"/m?.log "$OUT/logs/$(basename "$dir")/" 2>/dev/null || true
        rm -rf "$dir"
    done
}
trap cleanup EXIT

{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)$(
        git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)'
    )"
    echo "machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "client: $CTL ($("$CTL" version 2>/dev/null | head -1))"
    echo "settings: rounds=$ROUNDS keys=$KEYS retry_ms=$RETRY_MS dial_timeout=$DIAL_TIMEOUT" \
        "command_timeout=$COMMAND_TIMEOUT pin=${CLUSTER3_PIN:-1} extra_flags='${CLUSTER3_EXTRA_FLAGS:-}'"
} >"$OUT/meta.txt"
printf 'server\tround\tfirst_put_ms\tattempts\n' >"$OUT/samples.tsv"

# Start every cluster first; the rounds then alternate between the servers (a drift of the
# shared machine's load hits them all alike).
declare -A BINARY KIND DIR ENDPOINTS BASE
RUN=()
k=0
for server in "${SERVERS[@]}"; do
    binary="$(server_binary "$server")"
    if [[ -z "$binary" || ! -x "$binary" ]]; then
        [[ "$server" != capstan* ]] || die "no $server binary at '$binary' (cargo build --release)"
        echo "restart-all.sh: $server not found ('$binary'): skipped" | tee -a "$OUT/meta.txt" >&2
        continue
    fi
    echo "$server: $binary ($("$binary" --version 2>/dev/null | head -1))" >>"$OUT/meta.txt"
    RUN+=("$server")
    BINARY[$server]="$binary"
    KIND[$server]=etcd
    [[ "$server" == capstan* ]] && KIND[$server]=capstan
    BASE[$server]=$((BASEPORT + 10 * k))
    k=$((k + 1))
    DIR[$server]="$(mktemp -d "/tmp/restart-all-$server.XXXXXX")"
    CLUSTER_DIRS+=("${DIR[$server]}")
    ETCD_BIN="$binary" CAPSTAN_BIN="$binary" \
        "$CLUSTER3" start "${KIND[$server]}" "${DIR[$server]}" "${BASE[$server]}"
    ENDPOINTS[$server]="$("$CLUSTER3" endpoints "${DIR[$server]}")"
done

for ((round = 1; round <= ROUNDS; round++)); do
    for server in "${RUN[@]}"; do
        dir="${DIR[$server]}"
        endpoints="${ENDPOINTS[$server]}"
        write_keys "$endpoints" "$round"
        t0="$(kill_and_restart "$dir")"
        result="$(first_put "$endpoints" "$round" "$t0" "$OUT/errors-$server.log")"
        read -r elapsed_ms attempts <<<"$result"
        value="$(ctl "$endpoints" get --print-value-only "restart/k$(printf '%04d' $((KEYS - 1)))")" ||
            die "$server round $round: get after the restart failed"
        [[ "$value" == "r$round" ]] ||
            die "$server round $round: restart/k$((KEYS - 1)) is '$value', not 'r$round' (lost write)"
        printf '%s\t%s\t%s\t%s\n' "$server" "$round" "$elapsed_ms" "$attempts" >>"$OUT/samples.tsv"
        echo "$server round $round: first put acknowledged ${elapsed_ms} ms after the restart" \
            "(attempts: $attempts)"
        ETCD_BIN="${BINARY[$server]}" CAPSTAN_BIN="${BINARY[$server]}" \
            "$CLUSTER3" start "${KIND[$server]}" "$dir" "${BASE[$server]}" 2>/dev/null
    done
done
for server in "${RUN[@]}"; do "$CLUSTER3" stop "${DIR[$server]}" 2>/dev/null; done

# Median (mean of the two middle samples for an even count) and max, per server.
awk -F'\t' 'NR > 1 { samples[$1] = samples[$1] " " $3; order[$1] = order[$1] ? order[$1] : ++n; name[n] = $1 }
    END {
        printf "%-16s %6s %10s %8s  %s\n", "server", "rounds", "median_ms", "max_ms", "samples_ms"
        for (i = 1; i <= n; i++) {
            count = split(samples[name[i]], values, " ")
            for (a = 1; a <= count; a++) for (b = a + 1; b <= count; b++)
                if (values[b] + 0 < values[a] + 0) { t = values[a]; values[a] = values[b]; values[b] = t }
            median = count % 2 ? values[(count + 1) / 2] : (values[count / 2] + values[count / 2 + 1]) / 2
            printf "%-16s %6d %10.0f %8d %s\n", name[i], count, median, values[count], samples[name[i]]
        }
    }' "$OUT/samples.tsv" | tee "$OUT/summary.txt"
echo "restart-all.sh: results in $OUT" >&2
