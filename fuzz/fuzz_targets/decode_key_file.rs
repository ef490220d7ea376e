//! Arbitrary bytes as a crypto-shredding key file; see
//! `gesta::fuzzing::decode_key_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta::fuzzing::decode_key_file(data);
});
