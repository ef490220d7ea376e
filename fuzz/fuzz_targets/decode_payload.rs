//! Arbitrary bytes as a record's sequencing bytes and event payload; see
//! `gesta::fuzzing::decode_payload`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta::fuzzing::decode_payload(data);
});
