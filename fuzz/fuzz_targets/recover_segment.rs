//! Arbitrary bytes as the only segment of a log, recovered on an in-memory
//! file system; see `gesta_wal::fuzzing::recover_segment`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta_wal::fuzzing::recover_segment(data);
});
