//! The conformance suite on the SQLite backend.

use gesta_tests::sqlite_harness::SqliteHarness;

gesta_tests::conformance_tests!(SqliteHarness::new());
