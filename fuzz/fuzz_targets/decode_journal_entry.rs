//! Arbitrary bytes as a lifecycle journal entry, an audit entry and a
//! retention rule; see `gesta::fuzzing::decode_journal_entry`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gesta::fuzzing::decode_journal_entry(data);
});
