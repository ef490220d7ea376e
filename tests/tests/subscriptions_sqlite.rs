//! The subscription and durable-subscription cases on the SQLite backend.

gesta_tests::subscription_tests!(gesta_tests::sqlite_harness::SqliteHarness::new());
gesta_tests::durable_subscription_tests!(gesta_tests::sqlite_harness::SqliteHarness::new());
