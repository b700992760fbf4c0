#!/usr/bin/env bash
# The server part of `make demo`: starts `pulsedb serve` on a temporary
# database, runs agents as separate processes that learn and ask through
# HTTP/JSON only, prints the MCP config for this server, then stops the
# server with SIGTERM (it closes the database cleanly).
set -euo pipefail
bin="${CARGO_TARGET_DIR:?}/release"
dir="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

export PULSEDB_TOKEN="demo-$RANDOM$RANDOM"
"$bin/pulsedb" serve --db "$dir/demo.db" --addr 127.0.0.1:0 >"$dir/out" 2>"$dir/log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$dir/out" 2>/dev/null && break
  sleep 0.1
done
url="$(sed -n 's/^pulsedb listening on //p' "$dir/out")"
[ -n "$url" ] || { echo "pulsedb serve did not start:"; cat "$dir/log"; exit 1; }

echo
echo "PulseDB server demo: pulsedb serve at $url (token in PULSEDB_TOKEN)"
fields=(testing build database)
for wave in 0 1; do
  if [ "$wave" = 0 ]; then
    echo "  three agent processes, one per field, learn through HTTP at once:"
  else
    echo "  three more learn the same fields, and find most of it already known:"
  fi
  pids=()
  for f in 0 1 2; do
    "$bin/examples/http_agent" "$url" learn "agent-$((wave * 3 + f))" "${fields[$f]}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
done
echo "  a seventh process asks:"
"$bin/examples/http_agent" "$url" ask

echo
echo "  To give an MCP host (Claude Desktop, Cursor) this memory, add to its config:"
cat <<JSON
  {
    "mcpServers": {
      "pulsedb": {
        "command": "$bin/pulsedb",
        "args": ["mcp", "--db", "$HOME/.local/share/pulsedb/memory.db"]
      }
    }
  }
JSON
echo "  (or, over HTTP: \"url\": \"$url/mcp\" with the header Authorization: Bearer <token>)"

kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
echo "  server stopped with SIGTERM: database closed cleanly"
