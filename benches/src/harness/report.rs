//! The report: one markdown table (workloads × stores, Gesta ÷ best other
//! store, Gesta ÷ the disk's limit line) and the same figures as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::stores::StoreKind;
use super::{Config, LimitLine, Results, SKIPPED, Sizes};

/// Which way a row's figures are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    /// Not a figure to rank stores by.
    Neither,
}

/// One row of the table.
struct RowDef {
    workload: &'static str,
    metric: &'static str,
    better: Better,
    value: fn(&Results, StoreKind) -> Option<f64>,
    /// The disk's limit for Gesta's figure, if one applies.
    limit: Option<fn(&Results) -> Option<f64>>,
}

fn rate(r: &Results, s: StoreKind, w: &str) -> Option<f64> {
    r.get(s, w).map(|o| o.rate())
}

fn p50(r: &Results, s: StoreKind, w: &str) -> Option<f64> {
    r.get(s, w).and_then(|o| o.quantile_us(0.5))
}

fn p99(r: &Results, s: StoreKind, w: &str) -> Option<f64> {
    r.get(s, w).and_then(|o| o.quantile_us(0.99))
}

/// Extra per second (W5's conflicts, R5's events).
fn extra_rate(r: &Results, s: StoreKind, w: &str) -> Option<f64> {
    r.get(s, w)
        .map(|o| o.extra as f64 / o.elapsed.as_secs_f64().max(1e-9))
}

fn limit(r: &Results) -> Option<&LimitLine> {
    r.limit.as_ref()
}

const ROWS: &[RowDef] = &[
    RowDef {
        workload: "W1",
        metric: "events/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "W1"),
        limit: Some(|r| limit(r).map(|l| 1e6 / l.pre_zeroed_sync_us)),
    },
    RowDef {
        workload: "W1",
        metric: "p50 µs ↓",
        better: Better::Lower,
        value: |r, s| p50(r, s, "W1"),
        limit: None,
    },
    RowDef {
        workload: "W1",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "W1"),
        limit: None,
    },
    RowDef {
        workload: "W2",
        metric: "events/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "W2"),
        limit: Some(|r| limit(r).map(|l| l.group_commit_per_s)),
    },
    RowDef {
        workload: "W2",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "W2"),
        limit: None,
    },
    RowDef {
        workload: "W3",
        metric: "events/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "W3"),
        limit: Some(|r| {
            let bpe = r.bytes_per_event.get(&StoreKind::Gesta)?;
            limit(r).map(|l| l.bandwidth_bytes_per_s / bpe)
        }),
    },
    RowDef {
        workload: "W3",
        metric: "MB/s on disk",
        better: Better::Neither,
        value: |r, s| Some(rate(r, s, "W3")? * r.bytes_per_event.get(&s)? / 1e6),
        limit: Some(|r| limit(r).map(|l| l.bandwidth_bytes_per_s / 1e6)),
    },
    RowDef {
        workload: "W4",
        metric: "events/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "W4"),
        limit: Some(|r| limit(r).map(|l| l.group_commit_per_s)),
    },
    RowDef {
        workload: "W4",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "W4"),
        limit: None,
    },
    RowDef {
        workload: "W5",
        metric: "committed/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "W5"),
        limit: None,
    },
    RowDef {
        workload: "W5",
        metric: "conflicts/s",
        better: Better::Neither,
        value: |r, s| extra_rate(r, s, "W5"),
        limit: None,
    },
    RowDef {
        workload: "R1",
        metric: "events/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R1"),
        limit: None,
    },
    RowDef {
        workload: "R2",
        metric: "queries/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R2"),
        limit: None,
    },
    RowDef {
        workload: "R2",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "R2"),
        limit: None,
    },
    RowDef {
        workload: "R3",
        metric: "queries/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R3"),
        limit: None,
    },
    RowDef {
        workload: "R3",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "R3"),
        limit: None,
    },
    RowDef {
        workload: "R4",
        metric: "queries/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R4"),
        limit: None,
    },
    RowDef {
        workload: "R4",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "R4"),
        limit: None,
    },
    RowDef {
        workload: "R5",
        metric: "stream reads/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R5"),
        limit: None,
    },
    RowDef {
        workload: "R5",
        metric: "events/s",
        better: Better::Higher,
        value: |r, s| extra_rate(r, s, "R5"),
        limit: None,
    },
    RowDef {
        workload: "R5",
        metric: "p50 µs ↓",
        better: Better::Lower,
        value: |r, s| p50(r, s, "R5"),
        limit: None,
    },
    RowDef {
        workload: "R5",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "R5"),
        limit: None,
    },
    RowDef {
        workload: "R6",
        metric: "lookups/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R6"),
        limit: None,
    },
    RowDef {
        workload: "R6",
        metric: "p50 µs ↓",
        better: Better::Lower,
        value: |r, s| p50(r, s, "R6"),
        limit: None,
    },
    RowDef {
        workload: "R6",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "R6"),
        limit: None,
    },
    RowDef {
        workload: "R7",
        metric: "lookups/s",
        better: Better::Higher,
        value: |r, s| rate(r, s, "R7"),
        limit: None,
    },
    RowDef {
        workload: "R7",
        metric: "p50 µs ↓",
        better: Better::Lower,
        value: |r, s| p50(r, s, "R7"),
        limit: None,
    },
    RowDef {
        workload: "R7",
        metric: "p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "R7"),
        limit: None,
    },
    RowDef {
        workload: "S1",
        metric: "commit-to-delivery p50 µs ↓",
        better: Better::Lower,
        value: |r, s| p50(r, s, "S1"),
        limit: None,
    },
    RowDef {
        workload: "S1",
        metric: "commit-to-delivery p99 µs ↓",
        better: Better::Lower,
        value: |r, s| p99(r, s, "S1"),
        limit: None,
    },
    RowDef {
        workload: "O1",
        metric: "ms, clean close ↓",
        better: Better::Lower,
        value: |r, s| r.open_ms.get(&s).copied(),
        limit: None,
    },
    RowDef {
        workload: "O1",
        metric: "ms, after a crash ↓",
        better: Better::Lower,
        value: |r, s| r.open_crash_ms.get(&s).copied(),
        limit: None,
    },
    RowDef {
        workload: "M1",
        metric: "peak RSS MiB ↓",
        better: Better::Lower,
        value: |r, s| r.peak_rss_mib.get(&s).map(|m| m.0),
        limit: None,
    },
    RowDef {
        workload: "D1",
        metric: "bytes/event ↓",
        better: Better::Lower,
        value: |r, s| r.bytes_per_event.get(&s).copied(),
        limit: None,
    },
];

/// A figure, rounded for reading: thousands separated, fewer decimals the
/// larger it is.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One computed row.
#[derive(Debug, Serialize)]
pub struct JsonRow {
    /// Workload id.
    pub workload: &'static str,
    /// What the figures are (`↓`: lower is better).
    pub metric: &'static str,
    /// Which way the figures are better: `higher`, `lower` or `neither`
    /// (not a figure to rank the stores by).
    pub better: &'static str,
    /// Each store's figure (null: not run, not applicable or failed).
    pub values: BTreeMap<&'static str, Option<f64>>,
    /// Gesta's figure divided by the best other store's.
    pub gesta_vs_best_other: Option<f64>,
    /// Gesta's figure divided by each other store's (the targets of
    /// `BENCH.md` name the store: R1 ≥ 10× SQLite FULL, …).
    pub gesta_vs: BTreeMap<&'static str, Option<f64>>,
    /// The disk's limit for this figure, if one applies.
    pub limit: Option<f64>,
    /// Gesta's figure divided by the limit.
    pub gesta_vs_limit: Option<f64>,
}

/// One workload's raw outcome on one store.
#[derive(Debug, Serialize)]
pub struct JsonRaw {
    /// Store key.
    pub store: &'static str,
    /// Workload id.
    pub workload: &'static str,
    /// Operations done.
    pub ops: u64,
    /// Time they took, seconds.
    pub elapsed_s: f64,
    /// Conflicts (W5) or events returned (R2–R4).
    pub extra: u64,
    /// Whether the time budget stopped it early.
    pub cut_short: bool,
    /// Latency percentiles, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// Mean latency, µs.
    pub mean_us: Option<f64>,
}

/// The machine a run was on, as Linux describes it (`None`: not told).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Machine {
    /// Host name.
    pub hostname: Option<String>,
    /// CPU model.
    pub cpu: Option<String>,
    /// Logical CPUs this process may use.
    pub cpus: Option<usize>,
    /// Total memory, GiB.
    pub memory_gib: Option<f64>,
    /// Kernel release.
    pub kernel: Option<String>,
}

impl Machine {
    /// This machine, from `/proc`.
    pub fn this() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let meminfo = read("/proc/meminfo").unwrap_or_default();
        Machine {
            hostname: read("/proc/sys/kernel/hostname"),
            cpu: field(&cpuinfo, "model name"),
            cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
            memory_gib: field(&meminfo, "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map(|kib| kib / (1024.0 * 1024.0)),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// Now, in UTC, as `2026-12-05 14:03 UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_string(secs)
}

/// A Unix time in seconds as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian).
fn utc_string(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

/// The JSON document.
#[derive(Debug, Serialize)]
pub struct JsonReport {
    /// When the report was written (UTC).
    pub date: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// Whether the small CI sizes were used.
    pub quick: bool,
    /// The sizes.
    pub sizes: Sizes,
    /// Scratch directory.
    pub scratch_dir: String,
    /// Its file-system type.
    pub fs_type: Option<String>,
    /// Store keys and column labels, in column order.
    pub stores: Vec<(&'static str, &'static str)>,
    /// The limit line.
    pub limit_line: Option<LimitLine>,
    /// The table's rows.
    pub rows: Vec<JsonRow>,
    /// Raw outcomes.
    pub raw: Vec<JsonRaw>,
    /// Failures: store, workload, error.
    pub errors: Vec<(&'static str, &'static str, String)>,
    /// Workloads not run, and why.
    pub skipped: Vec<(&'static str, &'static str)>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// Computes the rows for the selected workloads.
fn rows(config: &Config, results: &Results) -> Vec<JsonRow> {
    let mut out = Vec::new();
    for def in ROWS {
        if !config.workloads.contains(def.workload) {
            continue;
        }
        let values: BTreeMap<&'static str, Option<f64>> = config
            .stores
            .iter()
            .map(|&s| (s.key(), (def.value)(results, s)))
            .collect();
        let gesta = (def.value)(results, StoreKind::Gesta);
        let others = config
            .stores
            .iter()
            .filter(|s| s.is_peer())
            // Writes are compared at equal durability only.
            .filter(|s| s.durable() || !def.workload.starts_with('W'))
            .filter_map(|&s| (def.value)(results, s));
        let best = match def.better {
            Better::Higher => others.max_by(f64::total_cmp),
            Better::Lower => others.min_by(f64::total_cmp),
            Better::Neither => None,
        };
        let ratio = |other: Option<f64>| match (gesta, other) {
            (Some(g), Some(o)) if o > 0.0 && def.better != Better::Neither => Some(g / o),
            _ => None,
        };
        let gesta_vs_best_other = ratio(best);
        let gesta_vs = config
            .stores
            .iter()
            .filter(|s| s.is_peer())
            .map(|&s| (s.key(), ratio((def.value)(results, s))))
            .collect();
        let limit = def.limit.and_then(|f| f(results));
        let gesta_vs_limit = match (gesta, limit) {
            (Some(g), Some(l)) if l > 0.0 => Some(g / l),
            _ => None,
        };
        out.push(JsonRow {
            workload: def.workload,
            metric: def.metric,
            better: match def.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
                Better::Neither => "neither",
            },
            values,
            gesta_vs_best_other,
            gesta_vs,
            limit,
            gesta_vs_limit,
        });
    }
    out
}

/// Builds the JSON document.
pub fn json(config: &Config, results: &Results) -> JsonReport {
    let raw = results
        .measured
        .iter()
        .map(|m| JsonRaw {
            store: m.store.key(),
            workload: m.workload,
            ops: m.outcome.ops,
            elapsed_s: m.outcome.elapsed.as_secs_f64(),
            extra: m.outcome.extra,
            cut_short: m.outcome.cut_short,
            p50_us: m.outcome.quantile_us(0.5),
            p99_us: m.outcome.quantile_us(0.99),
            mean_us: m
                .outcome
                .latencies
                .as_ref()
                .filter(|l| !l.is_empty())
                .map(|l| l.mean().as_secs_f64() * 1e6),
        })
        .collect();
    JsonReport {
        date: utc_now(),
        machine: Machine::this(),
        quick: config.quick,
        sizes: config.sizes.clone(),
        scratch_dir: config.dir.display().to_string(),
        fs_type: crate::fs_type(&config.dir),
        stores: config.stores.iter().map(|s| (s.key(), s.label())).collect(),
        limit_line: results.limit.clone(),
        rows: rows(config, results),
        raw,
        errors: results
            .errors
            .iter()
            .map(|(s, w, e)| (s.key(), *w, e.clone()))
            .collect(),
        skipped: SKIPPED.to_vec(),
        notes: results.notes.clone(),
    }
}

/// The stores whose ratio to Gesta gets a column of its own, beside
/// Gesta ÷ best other: those the targets of `BENCH.md` name, when they ran.
fn ratio_columns(config: &Config) -> Vec<StoreKind> {
    [StoreKind::SqliteFull, StoreKind::Postgres]
        .into_iter()
        .filter(|k| config.stores.contains(k))
        .collect()
}

/// The markdown report: a heading line, the table, and notes.
pub fn markdown(config: &Config, results: &Results) -> String {
    let mut s = String::new();
    let fs = crate::fs_type(&config.dir).unwrap_or_else(|| "file system unknown".into());
    let _ = writeln!(
        s,
        "## gesta-bench{} (scratch dir {}, {fs})\n",
        if config.quick {
            " --quick: CI sizes, not figures to quote"
        } else {
            ""
        },
        config.dir.display()
    );
    let _ = write!(s, "| workload | metric |");
    for kind in &config.stores {
        let _ = write!(s, " {} |", kind.label());
    }
    let ratio_columns = ratio_columns(config);
    let _ = write!(s, " Gesta ÷ best other |");
    for kind in &ratio_columns {
        let _ = write!(s, " Gesta ÷ {} |", kind.label());
    }
    let _ = writeln!(s, " Gesta ÷ limit |");
    let _ = write!(s, "|---|---|");
    for _ in 0..config.stores.len() + ratio_columns.len() {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s, "---:|---:|");
    let mut cut = false;
    for row in rows(config, results) {
        let _ = write!(s, "| {} | {} |", row.workload, row.metric);
        for &kind in &config.stores {
            let cell = match row.values.get(kind.key()).copied().flatten() {
                Some(v) => {
                    let short = results.get(kind, row.workload).is_some_and(|o| o.cut_short);
                    cut |= short;
                    format!("{}{}", fmt_num(v), if short { "*" } else { "" })
                }
                None if results.failed(kind, row.workload) => "error".to_owned(),
                None => "–".to_owned(),
            };
            let _ = write!(s, " {cell} |");
        }
        let fmt_ratio = |r: Option<f64>| r.map_or("–".to_owned(), |r| format!("{r:.2}×"));
        let mut ratio = fmt_ratio(row.gesta_vs_best_other);
        for kind in &ratio_columns {
            ratio.push_str(" | ");
            ratio.push_str(&fmt_ratio(row.gesta_vs.get(kind.key()).copied().flatten()));
        }
        let vs_limit = match (row.gesta_vs_limit, row.limit) {
            (Some(f), Some(l)) => format!("{:.0}% of {}", 100.0 * f, fmt_num(l)),
            _ => "–".to_owned(),
        };
        let _ = writeln!(s, " {ratio} | {vs_limit} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "↓: lower is better (a ratio below 1 favours Gesta). For W1–W5, Gesta ÷ best other counts durable stores only \
         (not SQLite NORMAL, which may lose its last commits on power loss). Limits: W1 vs 1 ÷ (pre-zeroed 4 KiB write + fdatasync); \
         W2/W4 vs the 16-thread group-commit probe; W3 vs sequential bandwidth (fdatasync per MiB) ÷ Gesta's bytes per event."
    );
    if lookups_ran(config) {
        let _ = writeln!(
            s,
            "R5–R7 run on a store of their own: the standard data ({} events, streams of ~{} events) \
             with an id on every event. R5 reads a whole stream, of one drawn at random; R6 looks up \
             an event by an id drawn at random among the stored ones; R7 finds the position at a time \
             drawn at random within the store's commit times.",
            fmt_num(config.sizes.w3 as f64),
            fmt_num(config.sizes.w3 as f64 / crate::STREAMS as f64)
        );
    }
    if let Some(l) = &results.limit {
        let _ = writeln!(
            s,
            "Disk: 4 KiB write + fdatasync {:.0} µs pre-zeroed, {:.0} µs growing; group commit (16 threads) {} commits/s, \
             {:.1} per fdatasync; bandwidth {:.0} MiB/s.",
            l.pre_zeroed_sync_us,
            l.growing_sync_us,
            fmt_num(l.group_commit_per_s),
            l.group_commits_per_sync,
            l.bandwidth_bytes_per_s / crate::MIB as f64
        );
    }
    if cut {
        let _ = writeln!(
            s,
            "*: stopped when its time budget ({} s) ran out; the rate is over what it did.",
            fmt_num(config.sizes.budget_secs)
        );
    }
    let skipped: Vec<String> = SKIPPED
        .iter()
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(s, "Not run: {}.", skipped.join("; "));
    }
    let _ = writeln!(
        s,
        "S1: a writer notes when its append returned, the subscriber when the event reached it; \
         0 when the subscriber was first (it is woken before the writers are answered). \
         O1 after a crash opens a copy of the files taken while the store was open."
    );
    for (store, workload, error) in &results.errors {
        let _ = writeln!(s, "- {} {workload} failed: {error}", store.label());
    }
    for note in &results.notes {
        let _ = writeln!(s, "- {note}");
    }
    s
}

fn lookups_ran(config: &Config) -> bool {
    super::lookups::LOOKUPS
        .iter()
        .any(|id| config.workloads.contains(id))
}

#[cfg(test)]
mod tests {
    use super::{fmt_num, utc_string};

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_string(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_string(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_string(1_796_479_380), "2026-12-05 14:03 UTC");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(999.6), "1,000");
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(fmt_num(-12_345.0), "-12,345");
        assert_eq!(fmt_num(33.44), "33.4");
        assert_eq!(fmt_num(4.056), "4.06");
    }
}
