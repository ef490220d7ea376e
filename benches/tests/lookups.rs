//! The lookup workloads (R5–R7) end to end at tiny sizes, through the
//! harness as `gesta-bench --only R5,R6,R7` runs them: every store that
//! has the lookups measures them, finds the same events as the others, and
//! the table and JSON carry the ratios to SQLite FULL. PostgreSQL joins
//! when GESTA_POSTGRES_URL is set (run under `.ci/postgres.sh`).

use std::collections::BTreeSet;

use gesta_benches::harness::stores::StoreKind;
use gesta_benches::harness::{self, Config, Sizes, lookups, report};

#[test]
fn lookups_run_on_every_store_and_agree() {
    let scratch = gesta_benches::scratch_dir("gesta-lookups-test").unwrap();
    let postgres_url = std::env::var("GESTA_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let queries = 60;
    let config = Config {
        quick: true,
        sizes: Sizes {
            w3: 5_000,
            queries,
            ..Sizes::quick()
        },
        workloads: BTreeSet::from(lookups::LOOKUPS),
        stores: StoreKind::available(postgres_url.as_deref()),
        dir: scratch.path().to_owned(),
        postgres_url,
    };
    let results = harness::run(&config).unwrap();
    assert!(results.errors.is_empty(), "{:?}", results.errors);

    let measured: Vec<StoreKind> = config
        .stores
        .iter()
        .copied()
        // UmaDB has no lookups; the compressed Gesta runs W3, D1, R1-R4 only.
        .filter(|&k| k != StoreKind::UmaDb && !k.data_only())
        .collect();
    assert!(measured.contains(&StoreKind::Gesta) && measured.contains(&StoreKind::SqliteFull));
    let gesta = |id| results.get(StoreKind::Gesta, id).unwrap().extra;
    // R5 read whole streams of the 5,000 events (about one each of the
    // 10,000 streams: some streams are empty); R6 found every id.
    assert!(gesta("R5") > 0 && gesta("R5") < 5 * queries as u64);
    assert_eq!(gesta("R6"), queries as u64);
    for &kind in &measured {
        for id in lookups::LOOKUPS {
            let o = results
                .get(kind, id)
                .unwrap_or_else(|| panic!("{id} did not run on {kind:?}"));
            assert_eq!(o.ops, queries as u64, "{id} on {kind:?}");
            assert!(o.rate() > 0.0 && !o.cut_short, "{id} on {kind:?}: {o:?}");
            assert!(o.quantile_us(0.99).is_some_and(|p| p > 0.0));
        }
        // The same streams were read and the same events found on every
        // store (R7's positions depend on each store's commit times).
        assert_eq!(results.get(kind, "R5").unwrap().extra, gesta("R5"));
        assert_eq!(results.get(kind, "R6").unwrap().extra, gesta("R6"));
        let r7 = results.get(kind, "R7").unwrap().extra;
        assert!(r7 >= queries as u64 && r7 <= 5_000 * queries as u64);
    }
    if config.stores.contains(&StoreKind::UmaDb) {
        assert!(results.get(StoreKind::UmaDb, "R5").is_none());
        assert!(
            results.notes.iter().any(|n| n.contains("no equivalent")),
            "{:?}",
            results.notes
        );
    }

    let table = report::markdown(&config, &results);
    assert!(table.contains("Gesta ÷ SQLite FULL"), "{table}");
    for metric in [
        "| R5 | stream reads/s |",
        "| R6 | lookups/s |",
        "| R7 | lookups/s |",
    ] {
        assert!(table.contains(metric), "{table}");
    }
    let json = report::json(&config, &results);
    assert_eq!(json.rows.len(), 10);
    for row in &json.rows {
        let vs_sqlite = row.gesta_vs["sqlite_full"].unwrap();
        let gesta = row.values["gesta"].unwrap();
        let sqlite = row.values["sqlite_full"].unwrap();
        assert!((vs_sqlite - gesta / sqlite).abs() < 1e-9 * vs_sqlite);
    }
    // The scratch directory is left empty.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
