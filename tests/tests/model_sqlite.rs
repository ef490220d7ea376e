//! The model tests on the SQLite backend: random operation sequences run
//! against it and the in-memory reference side by side; every result must
//! match.

use gesta_tests::sqlite_harness::SqliteHarness;

gesta_tests::model_tests!(SqliteHarness::new(), 64);
