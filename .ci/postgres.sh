#!/usr/bin/env bash
# A throw-away PostgreSQL server for the gesta-postgres test suites.
#
# Sourced (as .ci/run does):   source .ci/postgres.sh
#   starts a server, exports GESTA_POSTGRES_URL, and stops and removes the
#   server when the sourcing shell exits (an EXIT trap).
# Executed with a command:     .ci/postgres.sh cargo test -p gesta-tests
#   starts a server, runs the command with GESTA_POSTGRES_URL set, stops
#   and removes the server, and exits with the command's status.
#
# If GESTA_POSTGRES_URL is already set, that server is used and nothing is
# started. PostgreSQL is installed from Debian's packages when its server
# binaries are missing. The cluster lives in a temporary directory, owned
# by the `postgres` system user when run as root (initdb refuses root),
# listens on 127.0.0.1 on a free port only, and trusts local connections.

set -euo pipefail

gesta_pg_log() { echo "postgres.sh: $*" >&2; }

# The directory of the newest installed server's binaries, or nothing.
gesta_pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        echo "$dir"
    fi
}

gesta_pg_install() {
    if [[ -n "$(gesta_pg_bindir)" ]]; then
        return 0
    fi
    gesta_pg_log "installing PostgreSQL from Debian packages"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            gesta_pg_log "PostgreSQL is not installed and this user cannot install it"
            return 1
        fi
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    if [[ -z "$(gesta_pg_bindir)" ]]; then
        gesta_pg_log "PostgreSQL was installed but no /usr/lib/postgresql/*/bin was found"
        return 1
    fi
}

# Runs a command as the cluster's owner.
gesta_pg_as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$GESTA_PG_OWNER" -- "$@"
    else
        "$@"
    fi
}

# Whether something already listens on 127.0.0.1:$1.
gesta_pg_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

gesta_pg_stop() {
    if [[ -n "${GESTA_PG_DIR:-}" && -d "$GESTA_PG_DIR" ]]; then
        if [[ -f "$GESTA_PG_DIR/data/postmaster.pid" ]]; then
            gesta_pg_as_owner "$GESTA_PG_BIN/pg_ctl" -D "$GESTA_PG_DIR/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
        fi
        rm -rf "$GESTA_PG_DIR"
    fi
    GESTA_PG_DIR=
}

gesta_pg_start() {
    local started=$SECONDS
    gesta_pg_install
    GESTA_PG_BIN=$(gesta_pg_bindir)
    GESTA_PG_OWNER=$(id -un)
    if [[ $(id -u) -eq 0 ]]; then
        GESTA_PG_OWNER=postgres
        if ! id -u "$GESTA_PG_OWNER" >/dev/null 2>&1; then
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$GESTA_PG_OWNER"
        fi
    fi
    GESTA_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gesta-pg.XXXXXX")
    chmod 700 "$GESTA_PG_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$GESTA_PG_OWNER:" "$GESTA_PG_DIR"
    fi
    gesta_pg_as_owner "$GESTA_PG_BIN/initdb" -D "$GESTA_PG_DIR/data" -U postgres -A trust \
        -E UTF8 --locale=C --no-sync >"$GESTA_PG_DIR/initdb.log" 2>&1 || {
        cat "$GESTA_PG_DIR/initdb.log" >&2
        gesta_pg_log "initdb failed"
        return 1
    }
    local port attempt
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if gesta_pg_port_busy "$port"; then
            continue
        fi
        if gesta_pg_as_owner "$GESTA_PG_BIN/pg_ctl" -D "$GESTA_PG_DIR/data" -l "$GESTA_PG_DIR/server.log" \
            -w -t 60 start -o "-k $GESTA_PG_DIR -h 127.0.0.1 -p $port" >/dev/null; then
            GESTA_PG_PORT=$port
            break
        fi
        gesta_pg_log "could not start on port $port (attempt $attempt)"
    done
    if [[ -z "${GESTA_PG_PORT:-}" ]]; then
        cat "$GESTA_PG_DIR/server.log" >&2 || true
        gesta_pg_log "the server did not start"
        return 1
    fi
    "$GESTA_PG_BIN/createdb" -h 127.0.0.1 -p "$GESTA_PG_PORT" -U postgres gesta
    export GESTA_POSTGRES_URL="postgres://postgres@127.0.0.1:$GESTA_PG_PORT/gesta"
    gesta_pg_log "PostgreSQL $("$GESTA_PG_BIN/postgres" --version | awk '{print $3}') ready at" \
        "$GESTA_POSTGRES_URL in $((SECONDS - started)) s"
}

if [[ -n "${GESTA_POSTGRES_URL:-}" ]]; then
    gesta_pg_log "using the server at GESTA_POSTGRES_URL"
    if [[ "${BASH_SOURCE[0]}" == "$0" && $# -gt 0 ]]; then
        exec "$@"
    fi
elif [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: the server lives as long as the sourcing shell.
    GESTA_PG_PORT=
    trap gesta_pg_stop EXIT
    gesta_pg_start
else
    if [[ $# -eq 0 ]]; then
        echo "usage: source $0   or   $0 COMMAND [ARGS...]" >&2
        exit 2
    fi
    GESTA_PG_PORT=
    trap gesta_pg_stop EXIT
    gesta_pg_start
    status=0
    "$@" || status=$?
    exit "$status"
fi
