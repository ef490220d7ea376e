//! The module graph of each core crate has no cycles: a module never
//! imports (through `crate::…`) a module that imports it back, directly or
//! through others. A module is a top-level file or directory of `src/`;
//! test code (`#[cfg(test)]` onwards, `tests.rs`) does not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules of the crate in `src` and the modules each one refers to.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.to_owned()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("a readable source directory") {
                files.push(entry.expect("a directory entry").path());
            }
            continue;
        }
        let rel = path.strip_prefix(src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_owned())
            .expect("a file name");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".rs") || name == "tests.rs" || top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let entry = deps.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let mut names = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(
                    group
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or("")),
                );
            } else {
                names.push(
                    rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .next()
                        .unwrap_or(""),
                );
            }
            for n in names {
                if n.starts_with(|c: char| c.is_ascii_lowercase()) && n != top {
                    entry.insert(n.to_owned());
                }
            }
        }
    }
    let modules: BTreeSet<String> = deps.keys().cloned().collect();
    for targets in deps.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    deps
}

/// The modules that lie on a cycle.
fn cyclic(deps: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = deps[from].iter().map(String::as_str).collect();
        while let Some(m) = todo.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m) {
                todo.extend(deps[m].iter().map(String::as_str));
            }
        }
        false
    };
    deps.keys().filter(|m| reaches(m, m)).cloned().collect()
}

#[test]
fn core_crates_have_no_module_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["wal", "index", "compaction", "engine"] {
        let deps = graph(&root.join(krate).join("src"));
        assert!(deps.len() > 3, "{krate}: too few modules found");
        let bad = cyclic(&deps);
        assert!(
            bad.is_empty(),
            "{krate}: modules on a cycle: {bad:?}\n{deps:#?}"
        );
    }
}

#[test]
fn the_check_sees_a_cycle() {
    let mut deps = BTreeMap::new();
    deps.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    deps.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    deps.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    deps.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        cyclic(&deps),
        BTreeSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()])
    );
}
