//! Crypto-shredding on every store: the conformance suite through the
//! `Encrypted` wrapper (it must change nothing for events that name no
//! subject), and the crypto-shredding cases (`gesta_tests::encryption`) on
//! the engine, the in-memory reference, SQLite and — with
//! `GESTA_POSTGRES_URL` set — PostgreSQL.

use gesta_tests::encrypted_harness::EncryptedHarness;

mod memory {
    use super::*;
    use gesta_tests::conformance::MemoryHarness;

    gesta_tests::conformance_tests!(EncryptedHarness::new(MemoryHarness));
    mod shredding {
        use super::*;
        gesta_tests::encryption_tests!(EncryptedHarness::new(MemoryHarness));
    }
}

mod engine {
    use super::*;
    use gesta_tests::store_harness::StoreHarness;

    gesta_tests::conformance_tests!(EncryptedHarness::new(StoreHarness::on_disk()));
    mod shredding {
        use super::*;
        gesta_tests::encryption_tests!(EncryptedHarness::new(StoreHarness::on_disk()));
    }
}

mod sqlite {
    use super::*;
    use gesta_tests::sqlite_harness::SqliteHarness;

    gesta_tests::conformance_tests!(EncryptedHarness::new(SqliteHarness::new()));
    mod shredding {
        use super::*;
        gesta_tests::encryption_tests!(EncryptedHarness::new(SqliteHarness::new()));
    }
}

mod postgres {
    use super::*;

    gesta_tests::conformance_tests!(EncryptedHarness::new(
        gesta_tests::postgres_harness_or_skip!()
    ));
    mod shredding {
        use super::*;
        gesta_tests::encryption_tests!(EncryptedHarness::new(
            gesta_tests::postgres_harness_or_skip!()
        ));
    }
}
