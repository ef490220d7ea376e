//! The model tests on PostgreSQL: random operation sequences run against
//! a `PostgresStore` and the in-memory reference side by side, against the
//! server named by `GESTA_POSTGRES_URL` (skipped, with a line printed,
//! without it).

gesta_tests::model_tests!(gesta_tests::postgres_harness_or_skip!(Ok(())), 32);
