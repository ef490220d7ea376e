//! `--server` end to end at tiny sizes: every workload runs on every target,
//! gives positive figures, and the reads through gRPC find the events the
//! embedded store finds; so do the same workloads through the `gesta.v1`
//! service. With GESTA_UMADB_SERVER set (run it under
//! `.ci/umadb-server.sh`), UmaDB's own server is a target too.
#![cfg(feature = "server")]

use gesta_benches::harness::Sizes;
use gesta_benches::harness::server_mode::{
    SERVER_WORKLOADS, ServerConfig, Target, run_server, server_json, server_markdown,
};

#[test]
fn server_mode_runs_end_to_end() {
    let scratch = gesta_benches::scratch_dir("gesta-server-mode-test").unwrap();
    let sizes = Sizes {
        w1: 20,
        w2: 64,
        w3: 2_000,
        w4: 64,
        queries: 50,
        budget_secs: 10.0,
        ..Sizes::quick()
    };
    let config = ServerConfig {
        quick: true,
        sizes,
        workloads: SERVER_WORKLOADS.to_vec(),
        connections: vec![1, 4],
        dir: scratch.path().to_owned(),
        umadb_server: std::env::var_os("GESTA_UMADB_SERVER")
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from),
        gesta_v1: true,
        // One worker, as `gesta serve --worker-threads 1` runs it.
        server_threads: 1,
    };
    let uma = config.umadb_server.is_some();
    let results = run_server(&config).unwrap();
    assert!(results.errors.is_empty(), "{:?}", results.errors);
    let mut targets = vec![Target::Embedded, Target::Grpc(1), Target::Grpc(4)];
    if uma {
        targets.extend([Target::Uma(1), Target::Uma(4)]);
    }
    targets.extend([Target::GestaV1(1), Target::GestaV1(4)]);
    assert_eq!(config.targets().len(), targets.len());
    for &target in &targets {
        for id in SERVER_WORKLOADS {
            let o = results
                .get(target, id)
                .unwrap_or_else(|| panic!("{id} did not run on {target:?}"));
            assert!(o.ops > 0 && o.rate() > 0.0, "{id} on {target:?}: {o:?}");
            assert!(!o.cut_short, "{id} on {target:?} ran out of time");
            assert!(o.quantile_us(0.99).is_some_and(|p| p > 0.0) || id == "W3");
        }
        assert_eq!(results.get(target, "W1").unwrap().ops, 20);
        assert_eq!(results.get(target, "W3").unwrap().ops, 2_000);
    }
    // R2 found events, and the same number through gRPC as embedded.
    let hits = results.get(Target::Embedded, "R2").unwrap().extra;
    assert!(hits > 0);
    for &target in &targets {
        assert_eq!(results.get(target, "R2").unwrap().extra, hits);
    }

    let table = server_markdown(&config, &results);
    for heading in [
        "embedded",
        "gRPC ×1",
        "gRPC ×4",
        "gesta.v1 ×4",
        "client µs/op",
    ] {
        assert!(table.contains(heading), "{table}");
    }
    if uma {
        for heading in ["UmaDB server ×4", "Gesta ÷ UmaDB ×4"] {
            assert!(table.contains(heading), "{table}");
        }
    }
    let json = server_json(&config, &results);
    assert_eq!(json.rows.len(), 10);
    assert!(
        json.rows
            .iter()
            .all(|r| r.values.values().all(|v| v.is_some_and(|v| v > 0.0)))
    );
    // The scratch directory is left empty.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
