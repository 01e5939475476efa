#!/usr/bin/env bash
# The demo: a multi-threaded TCP bookstore server (c-examples/tcp_server.c) survives a client
# whose request corrupts the shared stock and then crashes its server thread. Prints a
# readable transcript. Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null

echo "== building libvmsrs.so and the example server/client"
cargo build --release --quiet
OUT=target/demo
mkdir -p "$OUT"
CFLAGS=(-O2 -g -Wall -Wextra -pthread -Iinclude)
LIBS=(-Ltarget/release -lvmsrs "-Wl,-rpath,$PWD/target/release")
gcc "${CFLAGS[@]}" c-examples/tcp_server.c -o "$OUT/tcp_server" "${LIBS[@]}"
gcc "${CFLAGS[@]}" c-examples/tcp_client.c -o "$OUT/tcp_client" "${LIBS[@]}"
gcc "${CFLAGS[@]}" -DVMSRS_DISABLE c-examples/tcp_server.c -o "$OUT/tcp_server_plain"

policy="${VMSRS_POLICY:-oblivious}"
log="$OUT/server.log"
VMSRS_POLICY="$policy" "$OUT/tcp_server" 0 --idle-exit 20 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$log" 2>/dev/null && break
    sleep 0.05
done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
[ -n "$port" ] || { echo "server did not start"; cat "$log"; exit 1; }

client() { "$OUT/tcp_client" "$port" --name "$@"; }
step() { printf '\n-- %s\n' "$*"; }

echo "== server up on 127.0.0.1:$port (VMSRS_POLICY=$policy)"
step "alice browses, then buys 2 copies of KR"
client alice LIST "BUY KR 2" LIST
step "mallory's request is buggy: it writes the shared stock, then dereferences NULL"
client mallory "BADBUY KR 500" || true
step "bob, connecting after the crash, sees the stock as alice left it (mallory's write withdrawn)"
client bob LIST "BUY SICP 1" LIST
step "carol checks the server is still healthy"
client carol STATS QUIT

sleep 0.2
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
trap - EXIT
printf '\n== server transcript (stdout and libvmsrs fault report on stderr)\n'
cat "$log"

printf '\n== for contrast: the same server built with -DVMSRS_DISABLE (no libvmsrs)\n'
plog="$OUT/server_plain.log"
"$OUT/tcp_server_plain" 0 --idle-exit 10 >"$plog" 2>&1 &
plain=$!
for _ in $(seq 100); do
    grep -q "listening on" "$plog" 2>/dev/null && break
    sleep 0.05
done
pport=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$plog" | head -1)
"$OUT/tcp_client" "$pport" --name mallory "BADBUY KR 500" || true
set +e
wait "$plain"
status=$?
set -e
if [ "$status" -gt 128 ]; then
    echo "plain server: killed by signal $((status - 128)) ($(kill -l $((status - 128)))); every other user lost"
else
    echo "plain server: exited with status $status"
fi
"$OUT/tcp_client" "$pport" --name bob LIST 2>&1 || true

printf '\n== drop-in: an unmodified server (c-examples/dropin_server.c, no vmsrs.h), under LD_PRELOAD\n'
gcc -O2 -g -Wall -Wextra -pthread -rdynamic c-examples/dropin_server.c -o "$OUT/dropin_server"
# Talk to the server: one connection, one line per request, print each reply.
talk() {
    python3 - "$@" <<'PY'
import socket, sys
port = int(sys.argv[1])
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rw")
    for line in sys.argv[2:]:
        f.write(line + "\n"); f.flush()
        reply = f.readline().strip()
        print(f"  {line:<14} -> {reply if reply else '(connection closed)'}")
        if not reply:
            break
except OSError as e:
    print(f"  (no connection: {e})")
PY
}
start_dropin() {
    local log=$1; shift
    env "$@" "$OUT/dropin_server" 0 >"$log" 2>&1 &
    dserver=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.05; done
    dport=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
}
step "without libvmsrs: one faulting request kills it"
start_dropin "$OUT/dropin_plain.log"
talk "$dport" "SET a 1" "CRASH a 2"
set +e; wait "$dserver"; status=$?; set -e
[ "$status" -gt 128 ] && echo "  server killed by signal $((status - 128)) ($(kill -l $((status - 128))))"
step "with LD_PRELOAD=libvmsrs.so and c-examples/dropin_server.env (VMSRS_USER_CALL=handle_request:-1)"
start_dropin "$OUT/dropin.log" LD_PRELOAD="$PWD/target/release/libvmsrs.so" \
    VMSRS_ENV_FILE="$PWD/c-examples/dropin_server.env"
talk "$dport" "SET a 1" "CRASH a 2" "TRAP" "SET b 5" "GET b"
talk "$dport" "GET b" "QUIT"
set +e; wait "$dserver"; status=$?; set -e
echo "  server exited with status $status after QUIT; its libvmsrs report:"
grep "==vmsrs:" "$OUT/dropin.log" | sed 's/^/    /'
