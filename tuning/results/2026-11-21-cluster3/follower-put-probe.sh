# One put sent to a follower right after SIGKILL of the leader: how long until it is answered, and what.
set -u
S=/work/wt-bench3/bench/scripts/cluster3.sh
server=$1 dir=$2 base=$3
export CAPSTAN_BIN=/tmp/bench3-bin/capstan
$S start $server $dir $base >/dev/null 2>&1
for trial in 1 2; do
  eps=$($S endpoints $dir)
  st=$(ETCDCTL_API=3 etcdctl --endpoints=$eps endpoint status)
  leader=$(awk -F', ' '$5=="true"{print $1}' <<<"$st"); follower=$(awk -F', ' '$5=="false"{print $1; exit}' <<<"$st")
  port=${leader##*:}; i=$(( (port - base) / 2 + 1 ))
  ETCDCTL_API=3 etcdctl --endpoints=$follower put warm x >/dev/null
  kill -9 $(cat $dir/m$i.pid)
  t0=$(date +%s%N)
  out=$(ETCDCTL_API=3 etcdctl --endpoints=$follower --command-timeout=20s put probe$trial v 2>&1)
  t1=$(date +%s%N)
  echo "$server trial $trial: leader $leader killed; put to follower $follower answered after $(( (t1-t0)/1000000 )) ms: $out"
  sleep 3
  $S start $server $dir $base >/dev/null 2>&1
done
$S stop $dir >/dev/null 2>&1
rm -rf $dir
