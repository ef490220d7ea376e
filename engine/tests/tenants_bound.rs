//! Many tenants in one process: the store threads stay bounded by
//! `max_open`, not by the number of tenants. The only test of its binary,
//! so that the process's thread count is this test's alone.

use gesta::tenants::{TenantOptions, Tenants};
use gesta::{AppendOptions, NewEvent, Options};

/// Threads of this process (Linux), or `None` elsewhere.
fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

#[test]
fn many_tenants_keep_the_threads_bounded() {
    const TENANTS: u64 = 200;
    const MAX_OPEN: usize = 8;
    let root = tempfile::tempdir().unwrap();
    let tenants = Tenants::open(
        root.path(),
        TenantOptions {
            store: Options::default()
                .segment_size(1 << 20)
                .preallocate(64 << 10),
            max_open: MAX_OPEN,
            ..TenantOptions::default()
        },
    )
    .unwrap();
    let before = threads();
    let mut most = 0;
    for i in 0..TENANTS {
        let name = format!("t{i}");
        tenants.create(&name).unwrap();
        let event = NewEvent::new("E", format!("{{\"i\":{i}}}"));
        tenants
            .append(&name, vec![event], AppendOptions::new())
            .unwrap();
        assert!(tenants.open_count() <= MAX_OPEN);
        most = most.max(threads().unwrap_or(0));
    }
    if let Some(before) = before {
        // A committer and a flusher per open store.
        assert!(
            most <= before + 2 * MAX_OPEN,
            "{before} threads before, at most {most} during"
        );
    }
    for i in 0..TENANTS {
        assert_eq!(tenants.get(&format!("t{i}")).unwrap().head(), 1);
    }
    assert_eq!(tenants.list().unwrap().len(), TENANTS as usize);
    tenants.close().unwrap();
    assert_eq!(tenants.open_count(), 0);
}
