#!/bin/sh
# Regenerates src/proto/gesta.v1.rs from proto/gesta.proto, with the same
# settings umadb.v1.rs was generated with (tonic-prost-build 0.14, `bytes`
# fields as bytes::Bytes, clippy silenced on the generated types), and
# heads it with the .proto's FNV-1a 64 hash, which the
# `gesta_proto_is_generated` test compares. Needs `protoc` (Debian/Ubuntu:
# apt-get install protobuf-compiler); building the server never does.
# (umadb.proto is UmaDB's file and umadb.v1.rs stays as generated once.)
set -eu
server=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/out"
cat >"$work/Cargo.toml" <<'TOML'
[package]
name = "gesta-proto-gen"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
tonic-prost-build = "0.14"
TOML
cat >"$work/src/main.rs" <<'RS'
fn main() {
    let mut args = std::env::args().skip(1);
    let (proto, include, out) = (args.next().unwrap(), args.next().unwrap(), args.next().unwrap());
    tonic_prost_build::configure()
        .bytes(".")
        .type_attribute(".", "#[allow(clippy::all)]")
        .out_dir(out)
        .compile_protos(&[proto], &[include])
        .unwrap();
}
RS
cargo run --quiet --manifest-path "$work/Cargo.toml" --target-dir "${CARGO_TARGET_DIR:-$work/target}/proto-gen" -- \
    "$server/proto/gesta.proto" "$server/proto" "$work/out"
hash=$(python3 -c 'import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("%016x" % h)' "$server/proto/gesta.proto")
{
    echo "// Generated from proto/gesta.proto (fnv1a64 $hash) by proto/generate.sh."
    cat "$work/out/gesta.v1.rs"
} >"$server/src/proto/gesta.v1.rs"
echo "wrote $server/src/proto/gesta.v1.rs"
