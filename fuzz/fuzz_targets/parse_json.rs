//! Arbitrary bytes as the `gesta` command's JSON input: a query (`--query`,
//! `--condition`) and an event line (`append`, `import`); see
//! `gesta_json`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        gesta_json::fuzz_line(text);
    }
});
