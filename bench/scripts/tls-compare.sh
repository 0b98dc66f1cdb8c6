#!/bin/bash
# TLS measurement: capstan vs etcd 3.6 with the same certificates (mutual TLS), etcd's
# benchmark as the client, openssl s_time for new handshakes. CAPSTAN=path (default
# /tmp/tlsbench/capstan: copy a release build there). Writes into /tmp/tlsbench.
set -u
D=/tmp/tlsbench; rm -rf $D/c $D/e; mkdir -p $D; cd $D
CAPSTAN=${CAPSTAN:-$D/capstan}; ETCD=/work/tools/ref/etcd36; BENCH=/work/tools/ref/etcd-benchmark
if [ ! -f ca.crt ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key
  openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 30 -out ca.crt 2>/dev/null
  for n in server client; do
    openssl ecparam -name prime256v1 -genkey -noout -out $n.key
    openssl req -new -key $n.key -subj /CN=$n -out $n.csr 2>/dev/null
    if [ $n = server ]; then printf "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n" > $n.ext
    else printf "extendedKeyUsage=clientAuth\n" > $n.ext; fi
    openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile $n.ext -out $n.crt 2>/dev/null
  done
fi
TLS="--cert-file=$D/server.crt --key-file=$D/server.key --trusted-ca-file=$D/ca.crt --client-cert-auth"
CLI="--cacert=$D/ca.crt --cert=$D/client.crt --key=$D/client.key"
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
measure() { # name pid port
  local name=$1 pid=$2 port=$3 ep=https://127.0.0.1:$3
  for spec in "1 1 2000" "16 256 20000"; do
    set -- $spec
    local before=$(cpu $pid)
    $BENCH put --endpoints=$ep $CLI --conns=$1 --clients=$2 --total=$3 --key-size=8 --val-size=256 > $D/$name-put-$2.txt 2>&1
    local after=$(cpu $pid)
    local rps=$(grep -m1 "Requests/sec" $D/$name-put-$2.txt | awk '{print $2}')
    local p50=$(grep "50% in" $D/$name-put-$2.txt | awk '{print $3}')
    local p99=$(grep "99% in" $D/$name-put-$2.txt | awk '{print $3}')
    local cpu_us=$(awk -v t=$((after-before)) -v n=$3 'BEGIN{printf "%.0f", t*10000/n}')
    echo "$name put clients=$2 conns=$1 total=$3: $rps req/s, p50 ${p50}s, p99 ${p99}s, server CPU ${cpu_us} us/request"
  done
  local before=$(cpu $pid)
  openssl s_time -connect 127.0.0.1:$port -new -time 10 -CAfile $D/ca.crt -cert $D/client.crt -key $D/client.key > $D/$name-stime.txt 2>&1
  local after=$(cpu $pid)
  local conns=$(grep -m1 "connections in" $D/$name-stime.txt)
  local count=$(echo "$conns" | awk '{print $1}')
  echo "$name new TLS connections (openssl s_time -new, 10 s): $conns; server CPU $(awk -v t=$((after-before)) -v n=$count 'BEGIN{printf "%.0f", t*10000/n}') us/handshake"
}
$CAPSTAN --data-dir=$D/c --listen-client-urls=https://127.0.0.1:24379 --advertise-client-urls=https://127.0.0.1:24379 $TLS > $D/capstan.log 2>&1 &
CP=$!
ETCD_UNSUPPORTED_ARCH= $ETCD --name e --data-dir $D/e --listen-client-urls https://127.0.0.1:25379 --advertise-client-urls https://127.0.0.1:25379 \
  --listen-peer-urls http://127.0.0.1:25380 --initial-advertise-peer-urls http://127.0.0.1:25380 --initial-cluster e=http://127.0.0.1:25380 $TLS > $D/etcd.log 2>&1 &
EP=$!
sleep 4
measure capstan $CP 24379
measure etcd36 $EP 25379
kill $CP $EP; wait $CP $EP 2>/dev/null
