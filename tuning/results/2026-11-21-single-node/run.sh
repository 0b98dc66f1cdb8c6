#!/usr/bin/env bash
# The side-by-side runs recorded in tuning/results/2026-11-21-single-node.md.
# Run from tuning/results/2026-11-21-single-node/ (the charts are written to the current
# directory), with Capstan on 127.0.0.1:22379 and etcd 3.4 on 127.0.0.1:32379, "foo" put on both.
set -u
B=${B:-/work/target-bench/release/capstan-bench}
A=127.0.0.1:22379   # Capstan
E=127.0.0.1:32379   # etcd 3.4
CMP="$B compare --a-endpoints $A --b-endpoints $E --a-name capstan --b-name etcd --rounds 2"
run() { local name=$1; shift; echo "== $name: load $(cut -d' ' -f1-3 /proc/loadavg)"; echo "\$ $*"; "$@"; echo; }
run put-1c        $CMP put --total 5000 --key-size 8 --val-size 256 --sequential-keys --key-space-size 100000 --plot put-1c.svg
run put-64c       $CMP --conns 8 --clients 64 put --total 50000 --key-size 8 --val-size 256 --sequential-keys --key-space-size 100000 --plot put-64c.svg
run range-l-1c    $CMP range foo --consistency l --total 10000 --plot range-l-1c.svg
run range-s-1c    $CMP range foo --consistency s --total 10000 --plot range-s-1c.svg
run range-l-64c   $CMP --conns 8 --clients 64 range foo --consistency l --total 50000 --plot range-l-64c.svg
run range-s-64c   $CMP --conns 8 --clients 64 range foo --consistency s --total 50000 --plot range-s-64c.svg
run txn-put-1c    $CMP txn-put --total 5000 --key-size 8 --val-size 256 --txn-ops 4 --key-space-size 100000
run txn-put-64c   $CMP --conns 8 --clients 64 txn-put --total 50000 --key-size 8 --val-size 256 --txn-ops 4 --key-space-size 100000
run put-open-1000 $CMP --clients 16 put --rate 1000 --total 5000 --key-size 8 --val-size 256 --sequential-keys --key-space-size 100000 --plot put-open-1000.svg
run watch-latency $CMP watch-latency --put-total 300 --put-rate 100 --plot watch-latency.svg
run watch         $CMP watch --streams 10 --watch-per-stream 100 --put-total 200
run lease-keepalive-etcd-1c  $B --endpoints $E lease-keepalive --total 5000
run lease-keepalive-etcd-64c $B --endpoints $E --conns 8 --clients 64 lease-keepalive --total 20000
run lease-keepalive-capstan  $B --endpoints $A lease-keepalive --total 5000
