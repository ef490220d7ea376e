#!/usr/bin/env bash
# UmaDB's own gRPC server, for `gesta-bench --server --umadb-server`.
#
# The `umadb` package on PyPI ships UmaDB's real server (the umadb-server
# crate, built into the package's extension module) as the `umadb` command:
#   umadb --listen 127.0.0.1:50051 --db-path ./uma.db
# This script installs it into a virtual environment (pinned to the
# version the Python client checks use) and points the harness at it.
#
# Sourced:                    source .ci/umadb-server.sh
#   installs if needed and exports GESTA_UMADB_SERVER (the command's path).
# Executed with a command:    .ci/umadb-server.sh cargo run --release -p gesta-benches \
#                                 --features server --bin gesta-bench -- --server --umadb-server
#   the same, then runs the command with GESTA_UMADB_SERVER set.
# Executed alone:             prints the command's path.
#
# The virtual environment is $UMADB_VENV, by default target/umadb-venv;
# it needs python3 with the venv module (Debian: python3-venv).

set -euo pipefail

gesta_umadb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gesta_umadb_venv="${UMADB_VENV:-$gesta_umadb_root/target/umadb-venv}"
gesta_umadb_version="0.7.8"

if [[ ! -x "$gesta_umadb_venv/bin/umadb" ]]; then
    echo "umadb-server.sh: installing umadb==$gesta_umadb_version into $gesta_umadb_venv" >&2
    python3 -m venv "$gesta_umadb_venv"
    "$gesta_umadb_venv/bin/pip" install --quiet "umadb==$gesta_umadb_version"
fi
# It is the server, not only the client: it answers --help as one.
"$gesta_umadb_venv/bin/umadb" --help | grep -q -- "--db-path" || {
    echo "umadb-server.sh: $gesta_umadb_venv/bin/umadb is not UmaDB's server" >&2
    exit 1
}
export GESTA_UMADB_SERVER="$gesta_umadb_venv/bin/umadb"

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    if [[ $# -gt 0 ]]; then
        exec "$@"
    fi
    echo "$GESTA_UMADB_SERVER"
fi
