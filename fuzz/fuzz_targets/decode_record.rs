//! Arbitrary bytes as a record frame, a segment header and a segment file
//! name; see `gesta_wal::fuzzing::decode_record`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta_wal::fuzzing::decode_record(data);
});
