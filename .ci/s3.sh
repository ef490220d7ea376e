#!/usr/bin/env bash
# A throw-away S3-compatible server on loopback for the gesta-tier suites:
# moto's server (PyPI `moto[server]`), which implements conditional PUT
# (`If-None-Match: *` and `If-Match: ETAG`, answered 412 when the condition
# fails) — what the tier's writer epoch and checkpoint rely on. The script
# checks that with real requests before it says the server is ready.
#
# Sourced (as .ci/run may do):   source .ci/s3.sh
#   starts a server, exports GESTA_S3_ENDPOINT and the standard AWS
#   variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_DEFAULT_REGION, AWS_ALLOW_HTTP), and stops the server when the
#   sourcing shell exits (an EXIT trap).
# Executed with a command:       .ci/s3.sh cargo test -p gesta-tier
#   the same around the command; exits with the command's status.
# Executed with --for-pid PID:   .ci/s3.sh --for-pid PID
#   starts a server, prints `endpoint http://127.0.0.1:PORT` on stdout, and
#   stops it when process PID exits (the tests start their own this way
#   when GESTA_S3_ENDPOINT is not set, so `cargo test --workspace` needs
#   no set-up).
# Executed with --install:       .ci/s3.sh --install
#   only installs moto[server] when `moto_server` is missing.
#
# If GESTA_S3_ENDPOINT is already set, that server is used and nothing is
# started. The server keeps its buckets in memory; it listens on 127.0.0.1
# on a free port only. Credentials are moto's: any key is accepted.

set -euo pipefail

# The version checked to answer conditional PUTs as S3 does.
GESTA_MOTO_VERSION="${GESTA_MOTO_VERSION:-5.2.1}"

gesta_s3_log() { echo "s3.sh: $*" >&2; }

gesta_s3_python() {
    if command -v python3 >/dev/null; then
        echo python3
    elif command -v python >/dev/null; then
        echo python
    fi
}

gesta_s3_install() {
    local python
    python=$(gesta_s3_python)
    if [[ -z "$python" ]]; then
        gesta_s3_log "installing Python from Debian packages"
        env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip python3-venv >/dev/null
        python=python3
    fi
    if "$python" -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
        return 0
    fi
    gesta_s3_log "installing moto[server]==$GESTA_MOTO_VERSION from PyPI"
    # Debian's own Python refuses system-wide pip installs (PEP 668); a
    # virtual environment under the user's cache is used then.
    if ! "$python" -m pip install -q "moto[server]==$GESTA_MOTO_VERSION" 2>/dev/null; then
        local venv="${XDG_CACHE_HOME:-$HOME/.cache}/gesta-s3-venv"
        if [[ ! -x "$venv/bin/python" ]]; then
            "$python" -m venv "$venv" || {
                env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
                "$python" -m venv "$venv"
            }
        fi
        "$venv/bin/python" -m pip install -q "moto[server]==$GESTA_MOTO_VERSION"
    fi
}

# The Python that has moto's server.
gesta_s3_moto_python() {
    local python venv="${XDG_CACHE_HOME:-$HOME/.cache}/gesta-s3-venv"
    python=$(gesta_s3_python)
    if [[ -n "$python" ]] && "$python" -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
        echo "$python"
    elif [[ -x "$venv/bin/python" ]]; then
        echo "$venv/bin/python"
    fi
}

gesta_s3_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Conditional PUT, checked with real requests: a create that exists and an
# update with a stale ETag must both be refused with 412.
gesta_s3_check() {
    local python=$1 endpoint=$2
    "$python" - "$endpoint" <<'EOF'
import sys
import boto3, botocore  # moto depends on boto3: it is always there
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="gesta",
                  aws_secret_access_key="gesta", region_name="us-east-1")
def code(e):
    return e.response["ResponseMetadata"]["HTTPStatusCode"]
s3.create_bucket(Bucket="gesta-s3-check")
etag = s3.put_object(Bucket="gesta-s3-check", Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
try:
    s3.put_object(Bucket="gesta-s3-check", Key="k", Body=b"2", IfNoneMatch="*")
    sys.exit("a second If-None-Match: * PUT was accepted")
except botocore.exceptions.ClientError as e:
    assert code(e) == 412, f"a second If-None-Match: * PUT was answered {code(e)}, not 412"
s3.put_object(Bucket="gesta-s3-check", Key="k", Body=b"3", IfMatch=etag)
try:
    s3.put_object(Bucket="gesta-s3-check", Key="k", Body=b"4", IfMatch=etag)
    sys.exit("a PUT with a stale If-Match ETag was accepted")
except botocore.exceptions.ClientError as e:
    assert code(e) == 412, f"a stale If-Match PUT was answered {code(e)}, not 412"
s3.delete_object(Bucket="gesta-s3-check", Key="k")
s3.delete_bucket(Bucket="gesta-s3-check")
EOF
}

# Starts a server; sets GESTA_S3_PID and GESTA_S3_ENDPOINT.
gesta_s3_start() {
    local started=$SECONDS python port attempt i
    gesta_s3_install
    python=$(gesta_s3_moto_python)
    if [[ -z "$python" ]]; then
        gesta_s3_log "moto[server] was installed but cannot be imported"
        return 1
    fi
    GESTA_S3_LOG=$(mktemp "${TMPDIR:-/tmp}/gesta-s3.XXXXXX")
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if gesta_s3_port_busy "$port"; then
            continue
        fi
        "$python" -m moto.server -H 127.0.0.1 -p "$port" >"$GESTA_S3_LOG" 2>&1 &
        GESTA_S3_PID=$!
        for i in $(seq 1 100); do
            if gesta_s3_port_busy "$port"; then
                break
            fi
            if ! kill -0 "$GESTA_S3_PID" 2>/dev/null; then
                break
            fi
            sleep 0.1
        done
        if gesta_s3_port_busy "$port"; then
            GESTA_S3_ENDPOINT="http://127.0.0.1:$port"
            break
        fi
        kill "$GESTA_S3_PID" 2>/dev/null || true
        GESTA_S3_PID=
        gesta_s3_log "could not start on port $port (attempt $attempt)"
    done
    if [[ -z "${GESTA_S3_ENDPOINT:-}" ]]; then
        cat "$GESTA_S3_LOG" >&2 || true
        gesta_s3_log "the server did not start"
        return 1
    fi
    if ! gesta_s3_check "$python" "$GESTA_S3_ENDPOINT"; then
        gesta_s3_log "the server at $GESTA_S3_ENDPOINT does not answer conditional PUTs as S3 does"
        gesta_s3_stop
        return 1
    fi
    gesta_s3_log "moto $("$python" -c 'import moto; print(moto.__version__)') ready at" \
        "$GESTA_S3_ENDPOINT in $((SECONDS - started)) s (conditional PUT checked)"
}

gesta_s3_stop() {
    if [[ -n "${GESTA_S3_PID:-}" ]]; then
        kill "$GESTA_S3_PID" 2>/dev/null || true
        wait "$GESTA_S3_PID" 2>/dev/null || true
    fi
    GESTA_S3_PID=
    if [[ -n "${GESTA_S3_LOG:-}" ]]; then
        rm -f "$GESTA_S3_LOG"
    fi
}

# Stops the server when the sourcing shell exits, after whatever its EXIT
# trap already did (.ci/run sources postgres.sh first, which sets one).
gesta_s3_trap_exit() {
    local previous
    previous=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
    if [[ -n "$previous" ]]; then
        # shellcheck disable=SC2064
        trap "gesta_s3_stop; $previous" EXIT
    else
        trap gesta_s3_stop EXIT
    fi
}

gesta_s3_export() {
    export GESTA_S3_ENDPOINT
    export AWS_ENDPOINT_URL="$GESTA_S3_ENDPOINT"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-gesta}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-gesta}"
    export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
    export AWS_ALLOW_HTTP=true
}

if [[ "${BASH_SOURCE[0]}" == "$0" && "${1:-}" == "--install" ]]; then
    gesta_s3_install
    exit 0
elif [[ "${BASH_SOURCE[0]}" == "$0" && "${1:-}" == "--for-pid" ]]; then
    watched=${2:?usage: $0 --for-pid PID}
    GESTA_S3_ENDPOINT=
    trap gesta_s3_stop EXIT
    gesta_s3_start
    echo "endpoint $GESTA_S3_ENDPOINT"
    # Lives as long as the process that asked for it (or the server).
    while kill -0 "$watched" 2>/dev/null && kill -0 "$GESTA_S3_PID" 2>/dev/null; do
        sleep 1
    done
    exit 0
elif [[ -n "${GESTA_S3_ENDPOINT:-}" ]]; then
    gesta_s3_log "using the server at GESTA_S3_ENDPOINT"
    gesta_s3_export
    if [[ "${BASH_SOURCE[0]}" == "$0" && $# -gt 0 ]]; then
        exec "$@"
    fi
elif [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: the server lives as long as the sourcing shell.
    GESTA_S3_PID=
    gesta_s3_trap_exit
    gesta_s3_start
    gesta_s3_export
else
    if [[ $# -eq 0 ]]; then
        echo "usage: source $0   or   $0 COMMAND [ARGS...]   or   $0 --for-pid PID   or   $0 --install" >&2
        exit 2
    fi
    GESTA_S3_PID=
    trap gesta_s3_stop EXIT
    gesta_s3_start
    gesta_s3_export
    status=0
    "$@" || status=$?
    exit "$status"
fi
