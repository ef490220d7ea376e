//! The conformance suite on PostgreSQL, against the server named by
//! `GESTA_POSTGRES_URL` (each test prints a line and skips without it).

gesta_tests::conformance_tests!(gesta_tests::postgres_harness_or_skip!());

/// `run_all` runs every case too, one after the other on one harness.
#[test]
fn run_all_cases() {
    let mut harness = gesta_tests::postgres_harness_or_skip!();
    gesta_tests::conformance::run_all(&mut harness);
}

/// Stores in different schemas of one database (one per tenant) are
/// independent, whatever their names; a second handle on a schema sees the
/// first one's events and continues its positions.
#[test]
fn schemas_are_independent_tenants() {
    use gesta::{EventStore, NewEvent, Query, ReadOptions};
    use gesta_postgres::{PostgresOptions, PostgresStore};

    let Some(_harness) = gesta_tests::postgres_harness::PostgresHarness::from_env() else {
        return;
    };
    let url = std::env::var(gesta_tests::postgres_harness::URL_VAR).expect("url");
    let suffix = std::process::id();
    let names = [
        format!("Tenant \"A\" {suffix}"),
        format!("tenant-b-{suffix}"),
    ];
    let connect = |schema: &str| {
        PostgresStore::connect(
            &url,
            PostgresOptions {
                schema: schema.to_owned(),
                pool_size: 2,
                ..PostgresOptions::default()
            },
        )
        .expect("connect")
    };
    let a = connect(&names[0]);
    let b = connect(&names[1]);
    a.append(vec![NewEvent::new("A", "1").tag("t")])
        .expect("append");
    a.append(vec![NewEvent::new("A", "2").tag("t")])
        .expect("append");
    let appended = b.append(vec![NewEvent::new("B", "1")]).expect("append");
    assert_eq!((appended.first, appended.last), (1, 1));
    assert_eq!((a.head().expect("head"), b.head().expect("head")), (2, 1));
    assert!(
        b.read(&Query::tag("t"), ReadOptions::forwards())
            .expect("read")
            .next()
            .is_none()
    );
    let a2 = connect(&names[0]);
    assert_eq!(
        a2.append(vec![NewEvent::new("A", "3")])
            .expect("append")
            .first,
        3
    );
    assert_eq!(a.head().expect("head"), 3);
    a.drop_schema().expect("drop");
    b.drop_schema().expect("drop");
}
