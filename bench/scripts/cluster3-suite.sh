#!/usr/bin/env bash
# Side-by-side 3-member measurements of etcd and Capstan with capstan-bench.
#
#   cluster3-suite.sh OUTDIR
#
# Starts a 3-member etcd cluster and a 3-member Capstan cluster (bench/scripts/cluster3.sh),
# then runs each measurement on etcd and then on Capstan before the next one (alternating, so a
# drift of the machine hits both), and stops both clusters at the end (also on failure):
#
#   put-c1-leader, put-c1-follower     put, 1 client, to the leader / to one follower
#   put-cN-leader, put-cN-all          put, N clients, to the leader / over all three members
#   range-l-cN-all, range-s-cN-all     range of one key, linearizable / serializable, N clients
#   keepalive-cN-leader, keepalive-cN-follower   lease-keepalive, N clients
#   lease-expiry                       lease-expiry over all three members (watch on the first)
#   failover                           failover, rounds of leader SIGKILL + restart
#
# OUTDIR gets <server>/<run>.json (capstan-bench --output json), <server>/<run>.err (its
# stderr), meta.txt (commit, machine, versions, settings), summary.md (tables made from the
# JSON with jq) and clusters/<server>/m<i>.log (member logs; data dirs are removed unless
# SUITE_KEEP_DATA=1).
#
# Settings (environment; defaults in brackets), sized for a quiet machine, not for a smoke run:
#   SUITE_PUT_TOTAL [20000]  SUITE_RANGE_TOTAL [50000]  SUITE_KEEPALIVE_TOTAL [20000]
#   SUITE_CLIENTS [64] (N above)  SUITE_CONNS [6]  SUITE_VAL_SIZE [256]  SUITE_WARMUP [100]
#   SUITE_LEASES [1000]  SUITE_LEASE_TTL [5]  SUITE_FAILOVER_ROUNDS [5]
#   SUITE_FAILOVER_PUT_RATE [200]  SUITE_SERVERS ["etcd capstan"]
#   SUITE_ETCD_BASEPORT [22379]  SUITE_CAPSTAN_BASEPORT [32379]
#   SUITE_BENCH_BIN (default: $CARGO_TARGET_DIR/release/capstan-bench, else target/release/)
#   CAPSTAN_BIN, ETCD_BIN, ETCDCTL_BIN, CLUSTER3_PIN: see cluster3.sh
# A smoke run: SUITE_PUT_TOTAL=200 SUITE_RANGE_TOTAL=200 SUITE_KEEPALIVE_TOTAL=200
#   SUITE_LEASES=50 SUITE_LEASE_TTL=2 SUITE_FAILOVER_ROUNDS=2 SUITE_WARMUP=10 \
#   cluster3-suite.sh /tmp/suite-smoke
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CLUSTER3="$HERE/cluster3.sh"

[[ $# -eq 1 ]] || {
    sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"

PUT_TOTAL="${SUITE_PUT_TOTAL:-20000}"
RANGE_TOTAL="${SUITE_RANGE_TOTAL:-50000}"
KEEPALIVE_TOTAL="${SUITE_KEEPALIVE_TOTAL:-20000}"
CLIENTS="${SUITE_CLIENTS:-64}"
CONNS="${SUITE_CONNS:-6}"
VAL_SIZE="${SUITE_VAL_SIZE:-256}"
WARMUP="${SUITE_WARMUP:-100}"
LEASES="${SUITE_LEASES:-1000}"
LEASE_TTL="${SUITE_LEASE_TTL:-5}"
FAILOVER_ROUNDS="${SUITE_FAILOVER_ROUNDS:-5}"
FAILOVER_PUT_RATE="${SUITE_FAILOVER_PUT_RATE:-200}"
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

log() { echo "cluster3-suite.sh: $*" >&2; }
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

# run NAME SERVER TARGET CLIENTS CONNS BENCH-ARGS...
run() {
    local name="$1" server="$2" target="$3" clients="$4" conns="$5"
    shift 5
    local endpoints
    endpoints="$(target_endpoints "$server" "$target")"
    if [[ -z "$endpoints" ]]; then
        log "$server $name FAILED: no $target endpoint"
        FAILED+=("$server/$name")
        return 0
    fi
    mkdir -p "$OUT/$server"
    log "$server $name ($target: $endpoints)"
    if ! "$BENCH" --endpoints "$endpoints" --clients "$clients" --conns "$conns" \
        --warmup "$WARMUP" --label "$server" --output json "$@" \
        >"$OUT/$server/$name.json" 2>"$OUT/$server/$name.err"; then
        log "$server $name FAILED: $(tail -n 3 "$OUT/$server/$name.err")"
        FAILED+=("$server/$name")
    fi
}

# each NAME TARGET CLIENTS CONNS BENCH-ARGS...: the same run on every server, in turn.
each() {
    local name="$1" server
    shift
    for server in "${SERVERS[@]}"; do
        run "$name" "$server" "$@"
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
        echo "etcd: $etcd, $("$etcd" --version 2>&1 | head -1)"
        echo "capstan: $capstan, $("$capstan" --version 2>&1 | head -1)"
        echo "bench: $BENCH"
        echo "pinning (CLUSTER3_PIN): ${CLUSTER3_PIN:-1}"
        echo "settings: put_total=$PUT_TOTAL range_total=$RANGE_TOTAL" \
            "keepalive_total=$KEEPALIVE_TOTAL clients=$CLIENTS conns=$CONNS val_size=$VAL_SIZE" \
            "warmup=$WARMUP leases=$LEASES lease_ttl=$LEASE_TTL" \
            "failover_rounds=$FAILOVER_ROUNDS failover_put_rate=$FAILOVER_PUT_RATE"
    } >"$OUT/meta.txt"
}

summary() {
    command -v jq >/dev/null || { log "jq not found: no summary.md"; return 0; }
    local rows="$OUT/summary.tsv" server file run
    : >"$rows"
    for server in "${SERVERS[@]}"; do
        for file in "$OUT/$server"/*.json; do
            [[ -s "$file" ]] || continue
            run="$(basename "$file" .json)"
            jq -r --arg run "$run" --arg server "$server" '.series[] | [$run, .name, $server,
                .count, .errors, (.throughput_ops_per_s * 10 | round / 10),
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
        echo "Latencies in ms. Ratios: capstan / etcd (ops/s above 1: Capstan serves more;"
        echo "latency above 1: Capstan is slower)."
        echo
        echo "| run | series | server | count | errors | ops/s | p50 | p90 | p99 | max |"
        echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        sort -s -t $'\t' -k1,1 -k2,2 "$rows" | awk -F'\t' -v OFS=' | ' '{ $1 = $1; print "| " $0 " |" }'
        echo
        echo "| run | series | ops/s capstan/etcd | p50 capstan/etcd | p99 capstan/etcd |"
        echo "| --- | --- | ---: | ---: | ---: |"
        awk -F'\t' '
            function ratio(b, a) { return a > 0 ? sprintf("%.3f", b / a) : "-" }
            { key = $1 "\t" $2; if (!(key in order)) { order[key] = ++n; keys[n] = key }
              ops[key, $3] = $6; p50[key, $3] = $7; p99[key, $3] = $9; seen[key, $3] = 1 }
            END { for (i = 1; i <= n; i++) { k = keys[i]
                if (!((k, "etcd") in seen) || !((k, "capstan") in seen)) continue
                split(k, part, "\t")
                printf "| %s | %s | %s | %s | %s |\n", part[1], part[2],
                    ratio(ops[k, "capstan"], ops[k, "etcd"]),
                    ratio(p50[k, "capstan"], p50[k, "etcd"]),
                    ratio(p99[k, "capstan"], p99[k, "etcd"]) } }' "$rows"
        echo
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
    for server in "${SERVERS[@]}"; do
        dir="$(cluster_dir "$server")"
        mkdir -p "$dir"
        "$CLUSTER3" start "$server" "$dir" "$(baseport "$server")"
        ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$("$CLUSTER3" endpoints "$dir")" \
            put foo bar >/dev/null
    done
    local n="$CLIENTS" c="$CONNS"
    each put-c1-leader leader 1 1 put --total "$PUT_TOTAL" --val-size "$VAL_SIZE"
    each put-c1-follower follower 1 1 put --total "$PUT_TOTAL" --val-size "$VAL_SIZE"
    each "put-c$n-leader" leader "$n" "$c" put --total "$PUT_TOTAL" --val-size "$VAL_SIZE"
    each "put-c$n-all" all "$n" "$c" put --total "$PUT_TOTAL" --val-size "$VAL_SIZE"
    each "range-l-c$n-all" all "$n" "$c" range foo --consistency l --total "$RANGE_TOTAL"
    each "range-s-c$n-all" all "$n" "$c" range foo --consistency s --total "$RANGE_TOTAL"
    each "keepalive-c$n-leader" leader "$n" "$c" lease-keepalive --total "$KEEPALIVE_TOTAL"
    each "keepalive-c$n-follower" follower "$n" "$c" lease-keepalive --total "$KEEPALIVE_TOTAL"
    each lease-expiry all 4 3 lease-expiry --leases "$LEASES" --ttl "$LEASE_TTL"
    for server in "${SERVERS[@]}"; do
        dir="$(cluster_dir "$server")"
        run failover "$server" all 1 1 failover --put-rate "$FAILOVER_PUT_RATE" \
            --member "$("$CLUSTER3" members "$dir")" --rounds "$FAILOVER_ROUNDS" \
            --restart-command "'$CLUSTER3' start $server '$dir' $(baseport "$server")"
    done
    summary
    if [[ ${#FAILED[@]} -gt 0 ]]; then
        log "failed runs: ${FAILED[*]}"
        return 1
    fi
}

main
