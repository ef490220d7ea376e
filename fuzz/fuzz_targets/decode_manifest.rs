//! Arbitrary bytes as a MANIFEST; see
//! `gesta::fuzzing::decode_manifest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta::fuzzing::decode_manifest(data);
});
