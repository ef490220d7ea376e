#!/usr/bin/env bash
# Runs UmaDB's Python client and the eventsourcing library's recorder test
# cases (through eventsourcing-umadb) against a fresh gesta-server each.
#   bash server/tests/python/run.sh     (needs python3; installs into a venv)
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv="${VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    # Pinned: the versions these checks were written against.
    "$venv/bin/pip" install --quiet umadb==0.7.8 eventsourcing-umadb==0.4.4 \
        eventsourcing==10.0.0a7 msgspec==0.22.0 pycryptodome==4.4.0
fi
python="$(cd "$venv" && pwd)/bin/python"
cargo build --quiet -p gesta-server
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
run() {
    local dir
    dir="$(mktemp -d)"
    target/debug/gesta-server "$dir/store" --listen "127.0.0.1:$port" &
    local pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    local status=0
    (cd server/tests/python && GESTA_URL="http://127.0.0.1:$port" "$@") || status=$?
    kill -TERM "$pid"
    wait "$pid" || status=$?
    rm -rf "$dir"
    return "$status"
}
run "$python" umadb_client.py "http://127.0.0.1:$port"
# These cases expect an empty store, so each runs alone on a fresh server.
run "$python" -m unittest eventsourcing_recorders.TestApplicationRecorder.test_insert_select
run "$python" -m unittest eventsourcing_recorders
run "$python" -m unittest eventsourcing_dcb.TestDcbRecorder.test_append_read
run "$python" -m unittest eventsourcing_dcb.TestDcbRecorder.test_append_subscribe
