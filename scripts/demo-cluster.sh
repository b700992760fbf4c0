#!/usr/bin/env bash
# `make demo-cluster`: a PulseDB cluster on NATS JetStream on this machine.
# Three nats-server processes form a JetStream cluster; three `pulsedb
# serve` nodes join it; agents write on every node at once; one node is
# killed (SIGKILL) while the others keep taking writes, then restarted;
# finally every node's replicated state is compared: all three agree.
set -euo pipefail
bin="${CARGO_TARGET_DIR:?}/release"
nats="${PULSEDB_NATS_SERVER:?}"
dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

export PULSEDB_TOKEN="demo-$RANDOM$RANDOM"
client=() route=() http=()
for i in 0 1 2; do client+=("$(free_port)"); route+=("$(free_port)"); http+=("$(free_port)"); done

echo
echo "PulseDB cluster demo: three NATS servers, three PulseDB nodes"
for i in 0 1 2; do
  routes=""
  for j in 0 1 2; do
    [ "$j" = "$i" ] || routes="${routes:+$routes,}nats://127.0.0.1:${route[$j]}"
  done
  mkdir -p "$dir/nats$i"
  "$nats" -a 127.0.0.1 -p "${client[$i]}" -js -sd "$dir/nats$i" --server_name "n$i" \
    --cluster_name demo --cluster "nats://127.0.0.1:${route[$i]}" --routes "$routes" \
    >"$dir/nats$i.log" 2>&1 &
  pids+=($!)
done
echo "  nats-server on ports ${client[*]} (JetStream, clustered)"

start_node() {
  local i=$1
  "$bin/pulsedb" serve --db "$dir/node$i.db" --addr "127.0.0.1:${http[$i]}" --embedder none \
    --nats "nats://127.0.0.1:${client[$i]}" --nats "nats://127.0.0.1:${client[$(((i + 1) % 3))]}" \
    --cluster demo >"$dir/node$i.out" 2>>"$dir/node$i.log" &
  node_pid[$i]=$!
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:${http[$i]}/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "node $i did not start:"; cat "$dir/node$i.log"; exit 1
}
declare -a node_pid
for i in 0 1 2; do start_node "$i"; done
echo "  pulsedb serve --nats … --cluster demo on ports ${http[*]}"

api() { # METHOD PORT PATH [BODY]
  curl -sf -X "$1" -H "Authorization: Bearer $PULSEDB_TOKEN" -H 'content-type: application/json' \
    "http://127.0.0.1:$2$3" ${4:+-d "$4"}
}
vector() { # a 384-d vector along axis $1
  python3 -c "import json,sys; i=int(sys.argv[1]); v=[0.0]*384; v[i%384]=1.0; v[(i+1)%384]=0.1; print(json.dumps(v))" "$1"
}

cid="$(api POST "${http[0]}" /v1/collectives '{"name": "swarm"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "  collective 'swarm' created on node 0; waiting for it to reach the others"
for i in 1 2; do
  until api GET "${http[$i]}" "/v1/collectives/$cid" >/dev/null 2>&1; do sleep 0.1; done
done

write() { # NODE FROM TO
  for k in $(seq "$2" "$3"); do
    api POST "${http[$1]}" "/v1/collectives/$cid/experiences" \
      "{\"content\": \"node $1 learned lesson $k\", \"embedding\": $(vector "$k")}" >/dev/null
  done
}
echo "  three agents write 20 experiences each, one per node, at once"
write 0 0 19 & w0=$!; write 1 100 119 & w1=$!; write 2 200 219 & w2=$!
wait $w0 $w1 $w2

echo "  node 2 is killed (SIGKILL); nodes 0 and 1 take 20 more"
kill -KILL "${node_pid[2]}"
wait "${node_pid[2]}" 2>/dev/null || true
write 0 20 29 & w0=$!; write 1 120 129 & w1=$!
wait $w0 $w1
echo "  node 2 restarts and catches up from the stream"
start_node 2

state() { # the node's replicated state, without the header and end lines
  curl -sf -H "Authorization: Bearer $PULSEDB_TOKEN" "http://127.0.0.1:$1/v1/replication/snapshot" \
    | sed '1d;$d' | sha256sum | cut -d' ' -f1
}
count() {
  api GET "$1" "/v1/collectives/$cid/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["experience_count"])'
}
for _ in $(seq 300); do
  a="$(state "${http[0]}")"; b="$(state "${http[1]}")"; c="$(state "${http[2]}")"
  [ "$a" = "$b" ] && [ "$b" = "$c" ] && [ "$(count "${http[2]}")" = 80 ] && break
  sleep 0.2
done
for i in 0 1 2; do
  echo "  node $i: $(count "${http[$i]}") experiences, state $(state "${http[$i]}" | cut -c1-16)"
done
if [ "$a" = "$b" ] && [ "$b" = "$c" ]; then
  echo "  all three nodes agree."
else
  echo "  the nodes disagree" >&2
  exit 1
fi
