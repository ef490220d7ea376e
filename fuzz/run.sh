#!/usr/bin/env bash
# Runs fuzz targets for a bounded time on the stable toolchain and prints,
# for each, how many inputs it executed and the coverage it reached.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60 (CI uses a few seconds); without target
# names every target runs. Installs cargo-fuzz if it is missing. New
# interesting inputs go to fuzz/target/corpus/<target> (ignored by git),
# seeded from the committed corpus; a crash fails the script and leaves its
# input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
if [ "$#" -gt 0 ]; then
    targets=$(printf "%s\n" "$@")
else
    targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^gesta-fuzz$')
fi
cargo fuzz build $(echo "$targets" | head -1) >/dev/null
for t in $targets; do
    mkdir -p "fuzz/target/corpus/$t"
    log="fuzz/target/$t.log"
    if ! cargo fuzz run "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz/run.sh: $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: K/..."
    cov=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 edges, \2 features, corpus \3/p')
    echo "$t: ${runs:-?} inputs in ${secs} s; ${cov:-coverage ?}"
done
