//! The subscription cases on the SQLite backend.

gesta_tests::subscription_tests!(gesta_tests::sqlite_harness::SqliteHarness::new());
