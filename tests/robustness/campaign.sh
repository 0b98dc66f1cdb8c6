#!/usr/bin/env bash
# The long robustness campaign, capstan and etcd side by side.
#
#   tests/robustness/campaign.sh [SEEDS] [SECONDS]     (defaults: 200 seeds x 30 s per server)
#
# 1. Finds the reference servers: Debian's etcd 3.4 (`etcd` on PATH; `apt-get install
#    etcd-server` when missing and root) and etcd 3.6 (`etcd36`, unpacked from
#    ../shared/ref/install.sh into target/tools, which needs xz; skipped with a note when
#    that is not there). CAPSTAN_CAMPAIGN_ETCD, when set, is used as it is instead.
# 2. Runs `long_campaign` in release: every seed against capstan (every fault kind, crash
#    failpoints included) and each etcd binary (process faults only).
# 3. Copies the Markdown report into tuning/results/DATE-robustness.md.
# Exits non-zero when a run found a violation (the report is still copied).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seeds=${1:-200}
seconds=${2:-30}
tools="$root/target/tools"
report="$root/target/robustness-report.md"

if [ -z "${CAPSTAN_CAMPAIGN_ETCD+set}" ]; then
  etcd_list=()
  if ! command -v etcd >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y etcd-server >/dev/null || echo "note: could not install etcd-server"
  fi
  if command -v etcd >/dev/null; then
    etcd_list+=("$(command -v etcd)")
  else
    echo "note: no etcd 3.4 on PATH; running without it"
  fi
  if [ -x "$root/../shared/ref/install.sh" ] || [ -f "$root/../shared/ref/install.sh" ]; then
    if ! command -v xz >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get install -y xz-utils >/dev/null || true
    fi
    bash "$root/../shared/ref/install.sh" "$tools" >/dev/null && etcd_list+=("$tools/etcd36") \
      || echo "note: could not unpack etcd36; running without it"
  else
    echo "note: ../shared/ref/install.sh not found; running without etcd 3.6"
  fi
  CAPSTAN_CAMPAIGN_ETCD=$(IFS=,; echo "${etcd_list[*]:-}")
fi
export CAPSTAN_CAMPAIGN_ETCD
export CAPSTAN_CAMPAIGN_SEEDS="$seeds" CAPSTAN_CAMPAIGN_SECONDS="$seconds"
export CAPSTAN_CAMPAIGN_REPORT="$report"
echo "campaign: $seeds seeds x $seconds s; etcd: ${CAPSTAN_CAMPAIGN_ETCD:-none}"

cargo test --release -p capstan --test robustness -- --ignored long_campaign --nocapture
status=$?
if [ -f "$report" ]; then
  mkdir -p tuning/results
  out="tuning/results/$(date +%Y-%m-%d)-robustness.md"
  cp "$report" "$out"
  echo "report: $out"
fi
exit $status
