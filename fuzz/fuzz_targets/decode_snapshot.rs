//! Arbitrary bytes as a snapshot file; see `gesta::fuzzing::decode_snapshot`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta::fuzzing::decode_snapshot(data);
});
