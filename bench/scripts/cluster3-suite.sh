#!/usr/bin/env bash
# Side-by-side 3-member measurements of etcd and Capstan with capstan-bench.
#
#   cluster3-suite.sh OUTDIR
#
# Starts a 3-member etcd cluster and a 3-member Capstan cluster (bench/scripts/cluster3.sh),
# then runs each measurement SUITE_ROUNDS times on each server in alternation before the next
# measurement (etcd, capstan, etcd, capstan, ...: a drift of the machine hits both), and stops
# both clusters at the end (also on failure). The runs (SUITE_RUNS picks them by these names;
# N is SUITE_CLIENTS):
#
#   put-c1-leader, put-c1-follower     put, 1 client, to the leader / to one follower
#   put-cN-leader, put-cN-all          put, N clients, to the leader / over all three members
#   range-l-c1-follower, range-s-c1-follower   range of one key, 1 client, on one follower
#   range-l-cN-all, range-s-cN-all     range of one key, linearizable / serializable, N clients
#   keepalive-cN-leader, keepalive-cN-follower   lease-keepalive, N clients
#   lease-expiry                       lease-expiry over all three members (watch on the first)
#   failover                           failover, SUITE_FAILOVER_ROUNDS leader SIGKILLs + restarts
#
# "all" lists the three members in --endpoints: capstan-bench opens connection j to member
# j mod 3 and gives client i connection i mod conns, as etcd's benchmark does, so with
# SUITE_CONNS a multiple of 3 every member gets the same number of connections and clients.
# "leader" / "follower" are found with `etcdctl endpoint status` just before each run.
#
# OUTDIR gets <server>/<run>.r<round>.json (capstan-bench --output json) and .err (its
# stderr), runs.tsv (per run: start, duration, load average before and after, CPU used by
# the benchmark's own processes and by everything else on the machine, from clock ticks in
# /proc: noise for runs shorter than a few seconds), meta.txt (commit,
# machine, versions, settings), summary.md (tables made from the JSON with jq) and
# clusters/<server>/m<i>.log (member logs; data dirs are removed unless SUITE_KEEP_DATA=1).
#
# Settings (environment; defaults in brackets), sized for a quiet machine, not for a smoke run:
#   SUITE_PUT_TOTAL [20000] (1 client: SUITE_PUT_C1_TOTAL [same])  SUITE_RANGE_TOTAL [50000]
#   (1 client: SUITE_RANGE_C1_TOTAL [10000])  SUITE_KEEPALIVE_TOTAL [20000]
#   SUITE_CLIENTS [64] (N above)  SUITE_CONNS [6]  SUITE_VAL_SIZE [256]  SUITE_WARMUP [100]
#   SUITE_KEY_SPACE [100000] (puts: 8-byte sequential keys over this many)
#   SUITE_LEASES [1000]  SUITE_LEASE_TTL [5]  SUITE_FAILOVER_ROUNDS [5] (kills per failover run)
#   SUITE_FAILOVER_PUT_RATE [200]  SUITE_ROUNDS [2] (alternations)  SUITE_RUNS [all of them]
#   SUITE_RUN_TIMEOUT_S [600] (one capstan-bench run)  SUITE_SERVERS ["etcd capstan"]
#   SUITE_ETCD_BASEPORT [22379]  SUITE_CAPSTAN_BASEPORT [32379]
#   SUITE_BENCH_BIN (default: $CARGO_TARGET_DIR/release/capstan-bench, else target/release/)
#   CAPSTAN_BIN, ETCD_BIN, ETCDCTL_BIN, CLUSTER3_PIN: see cluster3.sh
# A smoke run: SUITE_PUT_TOTAL=200 SUITE_RANGE_TOTAL=200 SUITE_RANGE_C1_TOTAL=200
#   SUITE_KEEPALIVE_TOTAL=200 SUITE_LEASES=50 SUITE_LEASE_TTL=2 SUITE_FAILOVER_ROUNDS=2
#   SUITE_WARMUP=10 SUITE_ROUNDS=1 cluster3-suite.sh /tmp/suite-smoke
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CLUSTER3="$HERE/cluster3.sh"

[[ $# -eq 1 ]] || {
    sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"

PUT_TOTAL="${SUITE_PUT_TOTAL:-20000}"
PUT_C1_TOTAL="${SUITE_PUT_C1_TOTAL:-$PUT_TOTAL}"
RANGE_TOTAL="${SUITE_RANGE_TOTAL:-50000}"
RANGE_C1_TOTAL="${SUITE_RANGE_C1_TOTAL:-10000}"
KEEPALIVE_TOTAL="${SUITE_KEEPALIVE_TOTAL:-20000}"
CLIENTS="${SUITE_CLIENTS:-64}"
CONNS="${SUITE_CONNS:-6}"
VAL_SIZE="${SUITE_VAL_SIZE:-256}"
KEY_SPACE="${SUITE_KEY_SPACE:-100000}"
WARMUP="${SUITE_WARMUP:-100}"
LEASES="${SUITE_LEASES:-1000}"
LEASE_TTL="${SUITE_LEASE_TTL:-5}"
FAILOVER_ROUNDS="${SUITE_FAILOVER_ROUNDS:-5}"
FAILOVER_PUT_RATE="${SUITE_FAILOVER_PUT_RATE:-200}"
ROUNDS="${SUITE_ROUNDS:-2}"
RUN_TIMEOUT_S="${SUITE_RUN_TIMEOUT_S:-600}"
ALL_RUNS="put-c1-leader put-c1-follower put-cN-leader put-cN-all range-l-c1-follower
    range-s-c1-follower range-l-cN-all range-s-cN-all keepalive-cN-leader keepalive-cN-follower
    lease-expiry failover"
# shellcheck disable=SC2086 # word-split on purpose: one name per word
read -r -a RUNS <<<"$(echo ${SUITE_RUNS:-$ALL_RUNS})"
read -r -a SERVERS <<<"${SUITE_SERVERS:-etcd capstan}"
ETCDCTL_BIN="${ETCDCTL_BIN:-/usr/bin/etcdctl}"
if [[ -n "${SUITE_BENCH_BIN:-}" ]]; then
    BENCH="$SUITE_BENCH_BIN"
elif [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    BENCH="$CARGO_TARGET_DIR/release/capstan-bench"
else
    BENCH="$REPO/target/release/capstan-bench"
fi
[[ -x "$BENCH" ]] || { echo "cluster3-suite.sh: no capstan-bench at $BENCH" >&2; exit 1; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "cluster3-suite.sh: bad SUITE_ROUNDS" >&2; exit 1; }
for wanted in "${RUNS[@]}"; do
    [[ " $(echo $ALL_RUNS) " == *" $wanted "* ]] ||
        { echo "cluster3-suite.sh: unknown run $wanted (SUITE_RUNS)" >&2; exit 1; }
done
CLOCK_TICKS_PER_S="$(getconf CLK_TCK)"

log() { echo "cluster3-suite.sh: $(date -u +%TZ) $*" >&2; }
FAILED=()

cluster_dir() { echo "$OUT/clusters/$1"; }
baseport() {
    case "$1" in
    etcd) echo "${SUITE_ETCD_BASEPORT:-22379}" ;;
    capstan) echo "${SUITE_CAPSTAN_BASEPORT:-32379}" ;;
    *) echo "cluster3-suite.sh: unknown server $1" >&2; exit 1 ;;
    esac
}

stop_all() {
    local server
    for server in "${SERVERS[@]}"; do
        if [[ -f "$(cluster_dir "$server")/cluster.env" ]]; then
            "$CLUSTER3" stop "$(cluster_dir "$server")" || true
            [[ "${SUITE_KEEP_DATA:-0}" == 1 ]] || rm -rf "$(cluster_dir "$server")"/m?.data
        fi
    done
}
trap stop_all EXIT

# Client endpoints of a target: leader, follower (the first member that does not lead) or all.
target_endpoints() {
    local server="$1" target="$2" all status
    all="$("$CLUSTER3" endpoints "$(cluster_dir "$server")")"
    if [[ "$target" == all ]]; then
        echo "$all"
        return
    fi
    # Default output: "endpoint, id, version, db size, is leader, is learner, ...".
    status="$(ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$all" --dial-timeout=2s \
        --command-timeout=5s endpoint status)"
    if [[ "$target" == leader ]]; then
        awk -F', ' '$5 == "true" { print $1; exit }' <<<"$status"
    else
        awk -F', ' '$5 == "false" { print $1; exit }' <<<"$status"
    fi
}

# CPU time, in clock ticks, the machine spent busy (user, nice, system, irq, softirq) and
# the hypervisor stole: "BUSY STEAL".
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# CPU time (clock ticks) used so far by the members of every cluster that are running.
member_ticks() {
    local total=0 server dir i pid ticks
    for server in "${SERVERS[@]}"; do
        dir="$(cluster_dir "$server")"
        for i in 1 2 3; do
            pid="$(cat "$dir/m$i.pid" 2>/dev/null)" || continue
            ticks="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }')" ||
                continue
            total=$((total + ${ticks:-0}))
        done
    done
    echo "$total"
}

# run NAME ROUND SERVER TARGET CLIENTS CONNS BENCH-ARGS...
run() {
    local name="$1" round="$2" server="$3" target="$4" clients="$5" conns="$6"
    shift 6
    local endpoints file="$OUT/$server/$name.r$round"
    endpoints="$(target_endpoints "$server" "$target")"
    if [[ -z "$endpoints" ]]; then
        log "$server $name round $round FAILED: no $target endpoint"
        FAILED+=("$server/$name.r$round")
        return 0
    fi
    mkdir -p "$OUT/$server"
    log "$server $name round $round ($target: $endpoints)"
    local load_before load_after started_ns ended_ns machine_before machine_after
    local members_before members_after bench_ticks rc=0
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    read -r -a machine_before <<<"$(machine_ticks)"
    members_before="$(member_ticks)"
    started_ns="$(date +%s%N)"
    # In a subshell, so that its children's CPU time (cutime + cstime in its /proc stat,
    # filled in once `timeout` and the benchmark are reaped) is the benchmark's alone.
    (
        status=0
        timeout -k 10 "$RUN_TIMEOUT_S" "$BENCH" --endpoints "$endpoints" --clients "$clients" \
            --conns "$conns" --warmup "$WARMUP" --label "$server" --output json "$@" \
            >"$file.json" 2>"$file.err" || status=$?
        sed 's/^.*) //' "/proc/$BASHPID/stat" | awk '{ print $14 + $15 }' >"$file.ticks"
        exit "$status"
    ) || rc=$?
    ended_ns="$(date +%s%N)"
    members_after="$(member_ticks)"
    read -r -a machine_after <<<"$(machine_ticks)"
    load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
    bench_ticks="$(cat "$file.ticks" 2>/dev/null || echo 0)"
    rm -f "$file.ticks"
    # A failover run kills members: their CPU time leaves the sum, so "other" is not known.
    local own_vcpu=- other_vcpu=- steal_vcpu
    local secs_x1000=$(((ended_ns - started_ns) / 1000000))
    ((secs_x1000 > 0)) || secs_x1000=1
    local busy=$((machine_after[0] - machine_before[0]))
    local own=$((members_after - members_before + bench_ticks))
    steal_vcpu="$(awk -v t=$((machine_after[1] - machine_before[1])) -v hz="$CLOCK_TICKS_PER_S" \
        -v ms="$secs_x1000" 'BEGIN { printf "%.2f", t / hz / (ms / 1000) }')"
    if [[ "$name" != failover ]]; then
        read -r own_vcpu other_vcpu < <(awk -v own="$own" -v busy="$busy" \
            -v hz="$CLOCK_TICKS_PER_S" -v ms="$secs_x1000" 'BEGIN {
                other = busy - own; if (other < 0) other = 0
                printf "%.2f %.2f\n", own / hz / (ms / 1000), other / hz / (ms / 1000) }')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$server" \
        "$(date -u -d "@$((started_ns / 1000000000))" +%TZ)" \
        "$(awk -v ms="$secs_x1000" 'BEGIN { printf "%.1f", ms / 1000 }')" \
        "$load_before" "$load_after" "$own_vcpu" "$other_vcpu" "$steal_vcpu" >>"$OUT/runs.tsv"
    log "  load $load_before -> $load_after; vCPU: benchmark+servers $own_vcpu, others" \
        "$other_vcpu, steal $steal_vcpu"
    if ((rc != 0)); then
        log "$server $name round $round FAILED (exit $rc): $(tail -n 3 "$file.err")"
        FAILED+=("$server/$name.r$round")
    fi
}

# Whether SUITE_RUNS has this run (by its name with N).
wanted() { [[ " ${RUNS[*]} " == *" $1 "* ]]; }

# each KEY NAME TARGET CLIENTS CONNS BENCH-ARGS...: the same run on every server in turn,
# SUITE_ROUNDS times, if SUITE_RUNS has KEY.
each() {
    local key="$1" name="$2" round server
    shift 2
    wanted "$key" || return 0
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in "${SERVERS[@]}"; do
            run "$name" "$round" "$server" "$@"
        done
    done
}

failover_each() {
    wanted failover || return 0
    local round server dir
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in "${SERVERS[@]}"; do
            dir="$(cluster_dir "$server")"
            # --request-timeout above both servers' own (5 s + 2 x election timeout = 7 s), so
            # that what the servers answer shows, not our timeout.
            run failover "$round" "$server" all 1 1 --request-timeout 15s \
                failover --put-rate "$FAILOVER_PUT_RATE" \
                --member "$("$CLUSTER3" members "$dir")" --rounds "$FAILOVER_ROUNDS" \
                --round-timeout 30s \
                --restart-command "'$CLUSTER3' start $server '$dir' $(baseport "$server")"
        done
    done
}

write_meta() {
    {
        echo "date: $(date -u +%FT%TZ)"
        echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)" \
            "($(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) changed files)"
        echo "kernel: $(uname -r)"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') x $(nproc)"
        echo "memory: $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "disk of the data dirs: $(df -hT "$OUT" | tail -1)"
        local etcd capstan
        etcd="$("$CLUSTER3" binary etcd)"
        capstan="$("$CLUSTER3" binary capstan)"
        echo "etcd: $etcd, $("$etcd" --version 2>&1 | grep -m1 'etcd Version')"
        echo "capstan: $capstan, $("$capstan" --version 2>&1 | head -1)"
        echo "bench: $BENCH"
        echo "pinning (CLUSTER3_PIN): ${CLUSTER3_PIN:-1}"
        echo "runs: ${RUNS[*]}; alternations (SUITE_ROUNDS): $ROUNDS"
        echo "settings: put_total=$PUT_TOTAL put_c1_total=$PUT_C1_TOTAL" \
            "range_total=$RANGE_TOTAL range_c1_total=$RANGE_C1_TOTAL" \
            "keepalive_total=$KEEPALIVE_TOTAL clients=$CLIENTS conns=$CONNS" \
            "val_size=$VAL_SIZE key_space=$KEY_SPACE warmup=$WARMUP leases=$LEASES" \
            "lease_ttl=$LEASE_TTL failover_rounds=$FAILOVER_ROUNDS" \
            "failover_put_rate=$FAILOVER_PUT_RATE"
    } >"$OUT/meta.txt"
}

summary() {
    command -v jq >/dev/null || { log "jq not found: no summary.md"; return 0; }
    local rows="$OUT/summary.tsv" server file base run round
    : >"$rows"
    for server in "${SERVERS[@]}"; do
        for file in "$OUT/$server"/*.json; do
            [[ -s "$file" ]] || continue
            base="$(basename "$file" .json)"
            run="${base%.r*}"
            round="${base##*.r}"
            jq -r --arg run "$run" --arg round "$round" --arg server "$server" '.series[] |
                [$run, .name, $server, $round, .count, .errors, .elapsed_s,
                (.throughput_ops_per_s * 10 | round / 10),
                .latency_ms.p50, .latency_ms.p90, .latency_ms.p99, .latency_ms.max] | @tsv' \
                "$file" >>"$rows"
        done
    done
    {
        echo "# cluster3 suite, $(date -u +%F)"
        echo
        echo '```'
        cat "$OUT/meta.txt"
        echo '```'
        echo
        echo "Latencies in ms. Each row is one run; in each round the servers ran in this"
        echo "order: ${SERVERS[*]}. load: 1-minute load average before → after the run. vCPU: CPU used"
        echo "during the run, in CPUs, by the benchmark and the six members (own) and by"
        echo "everything else on the machine (other; '-' for failover, which kills members)."
        echo
        echo "| run | series | server | round | count | errors | ops/s | p50 | p90 | p99 | max" \
            "| load | vCPU own | vCPU other |"
        echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" \
            "---: | ---: |"
        # Join each row with its line of runs.tsv (run, round, server).
        awk -F'\t' -v OFS='\t' '
            NR == FNR { split($6, before, " "); split($7, after, " ")
                        load[$1, $2, $3] = before[1] " → " after[1]
                        own[$1, $2, $3] = $8; other[$1, $2, $3] = $9; next }
            { k = $1 SUBSEP $4 SUBSEP $3
              print $1, $2, $3, $4, $5, $6, $8, $9, $10, $11, $12, load[k], own[k], other[k] }' \
            "$OUT/runs.tsv" "$rows" | sort -s -t $'\t' -k1,1 -k2,2 -k4,4n -k3,3r |
            awk -F'\t' -v OFS=' | ' '{ $1 = $1; print "| " $0 " |" }'
        echo
        echo "Rounds together: ops/s = all calls / all measured time; p50, p99: mean of the"
        echo "rounds' values (the reports keep percentiles, not histograms). Ratios: capstan /"
        echo "etcd (ops/s above 1: Capstan serves more; latency above 1: Capstan is slower)."
        echo
        echo "| run | series | server | rounds | ops/s | p50 | p99 | ops/s ratio | p50 ratio" \
            "| p99 ratio |"
        echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        awk -F'\t' '
            function ratio(b, a) { return a > 0 ? sprintf("%.3f", b / a) : "-" }
            { key = $1 "\t" $2; if (!(key in order)) { order[key] = ++n; keys[n] = key }
              s = $3; servers[key, s] = 1
              rounds[key, s]++; count[key, s] += $5; secs[key, s] += $7
              p50[key, s] += $9; p99[key, s] += $11 }
            END { for (i = 1; i <= n; i++) { k = keys[i]; split(k, part, "\t")
                for (j = 1; j <= 2; j++) { s = j == 1 ? "etcd" : "capstan"
                    if (!((k, s) in servers)) continue
                    ops[s] = secs[k, s] > 0 ? count[k, s] / secs[k, s] : 0
                    m50[s] = p50[k, s] / rounds[k, s]; m99[s] = p99[k, s] / rounds[k, s]
                    both = ((k, "etcd") in servers) && s == "capstan"
                    printf "| %s | %s | %s | %d | %.1f | %.3f | %.3f | %s | %s | %s |\n",
                        part[1], part[2], s, rounds[k, s], ops[s], m50[s], m99[s],
                        both ? ratio(ops["capstan"], ops["etcd"]) : "",
                        both ? ratio(m50["capstan"], m50["etcd"]) : "",
                        both ? ratio(m99["capstan"], m99["etcd"]) : "" } } }' \
            <(sort -s -t $'\t' -k1,1 -k2,2 "$rows")
        echo
        if wanted failover; then
            echo "Failover, each kill (ms from SIGKILL of the leader to the acknowledgement of"
            echo "the first put sent after it):"
            echo
            for server in "${SERVERS[@]}"; do
                echo "- $server: $(cat "$OUT/$server"/failover.r*.json 2>/dev/null |
                    jq -r '.notes[] | capture("acknowledged after (?<ms>[0-9.]+) ms") | .ms' |
                    paste -sd' ')"
            done
            echo
        fi
        if [[ ${#FAILED[@]} -gt 0 ]]; then
            echo "Runs that failed (see their .err files): ${FAILED[*]}"
            echo
        fi
        echo "## Notes and errors"
        for server in "${SERVERS[@]}"; do
            for file in "$OUT/$server"/*.json; do
                [[ -s "$file" ]] || continue
                echo
                echo "### $server $(basename "$file" .json)"
                echo
                jq -r '"- command: `" + .command + "`",
                    (.series[] | select(.errors > 0) | .name as $n | .error_kinds[] |
                        "- \($n) error x\(.[1]): \(.[0])"),
                    (.notes[] | "- " + .)' "$file"
            done
        done
    } >"$OUT/summary.md"
    log "wrote $OUT/summary.md"
}

main() {
    local server dir
    write_meta
    printf 'run\tround\tserver\tstart\tsecs\tload before\tload after\tvcpu own\tvcpu other\tvcpu steal\n' \
        >"$OUT/runs.tsv"
    for server in "${SERVERS[@]}"; do
        dir="$(cluster_dir "$server")"
        mkdir -p "$dir"
        "$CLUSTER3" start "$server" "$dir" "$(baseport "$server")"
        ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$("$CLUSTER3" endpoints "$dir")" \
            put foo bar >/dev/null
    done
    local n="$CLIENTS" c="$CONNS"
    local put=(put --key-size 8 --val-size "$VAL_SIZE" --sequential-keys
        --key-space-size "$KEY_SPACE")
    each put-c1-leader put-c1-leader leader 1 1 "${put[@]}" --total "$PUT_C1_TOTAL"
    each put-c1-follower put-c1-follower follower 1 1 "${put[@]}" --total "$PUT_C1_TOTAL"
    each put-cN-leader "put-c$n-leader" leader "$n" "$c" "${put[@]}" --total "$PUT_TOTAL"
    each put-cN-all "put-c$n-all" all "$n" "$c" "${put[@]}" --total "$PUT_TOTAL"
    each range-l-c1-follower range-l-c1-follower follower 1 1 \
        range foo --consistency l --total "$RANGE_C1_TOTAL"
    each range-s-c1-follower range-s-c1-follower follower 1 1 \
        range foo --consistency s --total "$RANGE_C1_TOTAL"
    each range-l-cN-all "range-l-c$n-all" all "$n" "$c" \
        range foo --consistency l --total "$RANGE_TOTAL"
    each range-s-cN-all "range-s-c$n-all" all "$n" "$c" \
        range foo --consistency s --total "$RANGE_TOTAL"
    each keepalive-cN-leader "keepalive-c$n-leader" leader "$n" "$c" \
        lease-keepalive --total "$KEEPALIVE_TOTAL"
    each keepalive-cN-follower "keepalive-c$n-follower" follower "$n" "$c" \
        lease-keepalive --total "$KEEPALIVE_TOTAL"
    each lease-expiry lease-expiry all 4 3 lease-expiry --leases "$LEASES" --ttl "$LEASE_TTL"
    failover_each
    summary
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        log "failed runs: ${FAILED[*]}"
        return 1
    fi
}

main
