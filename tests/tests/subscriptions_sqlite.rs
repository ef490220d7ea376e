//! The subscription and durable-subscription cases on the SQLite backend.

gesta_tests::subscription_tests!(gesta_tests::sqlite_harness::SqliteHarness::new());
gesta_tests::durable_subscription_tests!(gesta_tests::sqlite_harness::SqliteHarness::new());

/// A durable subscription's name is claimed per handle: two handles on
/// one file may both open it, and the stored cursor keeps the greater of
/// their acknowledgements, never moving backwards.
#[test]
fn a_cursor_acknowledged_through_two_handles_never_moves_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("e.db");
    let open = || {
        gesta_sqlite::SqliteStore::open(&path, gesta_sqlite::SqliteOptions::default())
            .expect("open")
    };
    let (a, b) = (open(), open());
    gesta_tests::durable_subscriptions::cursors_of_two_handles_never_move_back(&a, &b);
}
