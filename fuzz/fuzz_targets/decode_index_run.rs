//! Arbitrary bytes as an index run file; see
//! `gesta::fuzzing::decode_index_run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta::fuzzing::decode_index_run(data);
});
