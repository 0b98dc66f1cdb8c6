cd /work/wt-bench3
CAPSTAN_BIN=/tmp/bench3-bin/capstan SUITE_BENCH_BIN=/tmp/bench3-bin/capstan-bench \
SUITE_ETCD_BASEPORT=24379 SUITE_CAPSTAN_BASEPORT=34379 \
SUITE_RUNS="put-c1-leader put-c1-follower put-cN-leader put-cN-all range-l-c1-follower range-s-c1-follower range-l-cN-all range-s-cN-all failover" \
SUITE_ROUNDS=2 SUITE_PUT_C1_TOTAL=8000 SUITE_PUT_TOTAL=50000 SUITE_RANGE_C1_TOTAL=10000 SUITE_RANGE_TOTAL=150000 \
SUITE_FAILOVER_ROUNDS=4 SUITE_RUN_TIMEOUT_S=300 \
  bench/scripts/cluster3-suite.sh /tmp/b3suite
