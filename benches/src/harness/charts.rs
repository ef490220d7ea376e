//! The report as pictures: one horizontal bar chart per workload (its main
//! figure per store, Gesta ÷ the best other store, and the disk's limit as
//! a line where one applies), as SVG files and in one self-contained HTML
//! page with the run's metadata and every figure of the table.
//!
//! Everything is drawn from the JSON a run writes ([`Run`] reads it), so
//! an earlier run's JSON can be drawn again (`gesta-bench --render`). The
//! SVG is written by hand: no script, no fonts or styles to download.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::report::{Machine, fmt_num};
use super::{HarnessError, LimitLine};

/// A run as its JSON tells it. Fields later versions of the harness added
/// are optional, so that older JSON still renders.
#[derive(Debug, Deserialize)]
pub struct Run {
    /// When the run was reported (UTC).
    #[serde(default)]
    pub date: Option<String>,
    /// The machine it ran on.
    #[serde(default)]
    pub machine: Option<Machine>,
    /// Whether the small CI sizes were used.
    #[serde(default)]
    pub quick: bool,
    /// The sizes, by name.
    #[serde(default)]
    pub sizes: BTreeMap<String, serde_json::Value>,
    /// Scratch directory.
    #[serde(default)]
    pub scratch_dir: Option<String>,
    /// Its file-system type.
    #[serde(default)]
    pub fs_type: Option<String>,
    /// Store keys and labels, in column order.
    pub stores: Vec<(String, String)>,
    /// The disk's limit line.
    #[serde(default)]
    pub limit_line: Option<LimitLine>,
    /// The table's rows.
    pub rows: Vec<Row>,
    /// Raw outcomes (only whether each was cut short is used).
    #[serde(default)]
    pub raw: Vec<Raw>,
    /// Failures: store, workload, error.
    #[serde(default)]
    pub errors: Vec<(String, String, String)>,
    /// Remarks.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One row of the table.
#[derive(Debug, Deserialize)]
pub struct Row {
    /// Workload id.
    pub workload: String,
    /// What the figures are.
    pub metric: String,
    /// `higher`, `lower` or `neither`; older JSON marks lower-is-better
    /// metrics with `↓` only.
    #[serde(default)]
    pub better: Option<String>,
    /// Each store's figure.
    pub values: BTreeMap<String, Option<f64>>,
    /// Gesta's figure ÷ the best other store's.
    #[serde(default)]
    pub gesta_vs_best_other: Option<f64>,
    /// The disk's limit for this figure.
    #[serde(default)]
    pub limit: Option<f64>,
    /// Gesta's figure ÷ the limit.
    #[serde(default)]
    pub gesta_vs_limit: Option<f64>,
}

/// One raw outcome.
#[derive(Debug, Deserialize)]
pub struct Raw {
    /// Store key.
    pub store: String,
    /// Workload id.
    pub workload: String,
    /// Whether the time budget stopped it early.
    #[serde(default)]
    pub cut_short: bool,
}

/// Which way a row's figures are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

impl Row {
    fn better(&self) -> Better {
        match self.better.as_deref() {
            Some("higher") => Better::Higher,
            Some("lower") => Better::Lower,
            Some(_) => Better::Neither,
            None if self.metric.contains('↓') => Better::Lower,
            None => Better::Higher,
        }
    }

    /// The metric without its `↓` mark.
    fn metric_name(&self) -> &str {
        self.metric.trim_end_matches('↓').trim_end()
    }

    fn value(&self, store: &str) -> Option<f64> {
        self.values.get(store).copied().flatten()
    }
}

impl Run {
    /// Reads a run's JSON.
    pub fn parse(json: &str) -> Result<Run, HarnessError> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        if value.get("targets").is_some() && value.get("stores").is_none() {
            return Err("this is the JSON of a --server run; only the comparison's \
                        JSON (workloads × stores) is drawn"
                .into());
        }
        Ok(serde_json::from_value(value)?)
    }

    /// Each workload's main figure: its first row that ranks the stores,
    /// in table order.
    pub fn main_rows(&self) -> Vec<&Row> {
        let mut out: Vec<&Row> = Vec::new();
        for row in &self.rows {
            if out.iter().any(|r| r.workload == row.workload) {
                continue;
            }
            let first_ranked = self
                .rows
                .iter()
                .find(|r| r.workload == row.workload && r.better() != Better::Neither)
                .unwrap_or(row);
            out.push(first_ranked);
        }
        out
    }

    fn label<'a>(&'a self, key: &'a str) -> &'a str {
        self.stores
            .iter()
            .find(|(k, _)| k == key)
            .map_or(key, |(_, l)| l.as_str())
    }

    fn cut_short(&self, store: &str, workload: &str) -> bool {
        self.raw
            .iter()
            .any(|r| r.store == store && r.workload == workload && r.cut_short)
    }

    fn failed(&self, store: &str, workload: &str) -> bool {
        self.errors
            .iter()
            .any(|(s, w, _)| s == store && w == workload)
    }

    /// The other store Gesta's ratio is taken against: the one whose
    /// figure gives that ratio (to rounding).
    fn best_other(&self, row: &Row) -> Option<&str> {
        let ratio = row.gesta_vs_best_other?;
        let gesta = row.value("gesta")?;
        let off = |v: f64| ((gesta / v) / ratio - 1.0).abs();
        self.stores
            .iter()
            .filter(|(k, _)| !k.starts_with("gesta"))
            .filter_map(|(k, l)| Some((off(row.value(k).filter(|v| *v > 0.0)?), l)))
            .filter(|(off, _)| *off < 1e-3)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| l.as_str())
    }
}

/// Escapes text for XML (and HTML).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{}×", fmt_num(r))
    } else {
        format!("{r:.2}×")
    }
}

/// A store's bar colour: Gesta blue (its compressed variant lighter), the
/// other stores grey.
fn colour(store: &str) -> &'static str {
    match store {
        "gesta" => "#1f6feb",
        s if s.starts_with("gesta") => "#79b0ff",
        _ => "#8c959f",
    }
}

const WIDTH: f64 = 760.0;
/// Where the bars start (the store labels are to their left).
const BARS_X: f64 = 210.0;
/// The longest bar; the values are printed to the right of each bar.
const BARS_W: f64 = 420.0;
const BAR_H: f64 = 20.0;
const BAR_GAP: f64 = 8.0;

/// One workload's chart as a standalone SVG document.
pub fn chart(run: &Run, row: &Row) -> String {
    let better = row.better();
    // The stores that ran it (or failed it); Gesta's compressed variant
    // runs only the workloads on the standard data, O1 and M1 Gesta only.
    let values: Vec<(&str, &str, Option<f64>)> = run
        .stores
        .iter()
        .map(|(k, l)| (k.as_str(), l.as_str(), row.value(k)))
        .filter(|(k, _, v)| v.is_some() || run.failed(k, &row.workload))
        .collect();
    let limit = row.limit.filter(|l| l.is_finite() && *l > 0.0);
    let max = values
        .iter()
        .filter_map(|v| v.2)
        .chain(limit)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { BARS_W / max } else { 0.0 };

    let top = if limit.is_some() { 78.0 } else { 62.0 };
    let bars_h = values.len() as f64 * (BAR_H + BAR_GAP) - BAR_GAP;
    let any_cut = values
        .iter()
        .any(|(k, _, v)| v.is_some() && run.cut_short(k, &row.workload));
    let height = top + bars_h + if any_cut { 40.0 } else { 22.0 };

    let mut s = String::new();
    let title = format!(
        "{} · {} · {}",
        row.workload,
        row.metric_name(),
        match better {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
            Better::Neither => "not ranked",
        }
    );
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" role="img" aria-labelledby="title-{id}">"#,
        id = esc(&row.workload)
    );
    let _ = writeln!(
        s,
        r#"<title id="title-{}">{}</title>"#,
        esc(&row.workload),
        esc(&title)
    );
    let _ = writeln!(
        s,
        r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="12" y="22" font-size="15" font-weight="bold" fill="#1f2328">{}</text>"##,
        esc(&title)
    );

    let mut sub = Vec::new();
    if let Some(r) = row.gesta_vs_best_other {
        let against = run
            .best_other(row)
            .map_or(String::new(), |l| format!(" ({l})"));
        let hint = if better == Better::Lower {
            ", below 1 favours Gesta"
        } else {
            ""
        };
        // Writes are compared at equal durability (not SQLite NORMAL).
        let durable = if row.workload.starts_with('W') {
            " durable"
        } else {
            ""
        };
        sub.push(format!(
            "Gesta ÷ best{durable} other{against}: {}{hint}",
            fmt_ratio(r)
        ));
    } else if values.iter().all(|(k, _, _)| k.starts_with("gesta")) {
        sub.push("Gesta only: the harness runs it on no other store".to_owned());
    }
    if let Some(l) = limit {
        let at = row
            .gesta_vs_limit
            .map_or(String::new(), |f| format!(", Gesta at {:.0}%", 100.0 * f));
        sub.push(format!("disk limit {}{at}", fmt_num(l)));
    }
    if run.quick {
        sub.push("--quick: CI sizes".to_owned());
    }
    let _ = writeln!(
        s,
        r##"<text x="12" y="42" fill="#57606a">{}</text>"##,
        esc(&sub.join(" · "))
    );

    for (i, (key, label, value)) in values.iter().enumerate() {
        let y = top + i as f64 * (BAR_H + BAR_GAP);
        let mid = y + BAR_H / 2.0 + 4.0;
        let weight = if *key == "gesta" { "bold" } else { "normal" };
        // SQLite NORMAL may lose its last commits on power loss: on the
        // write workloads it is shown, not compared with.
        let label = if *key == "sqlite_normal" && row.workload.starts_with('W') {
            format!("{label} (not durable)")
        } else {
            (*label).to_owned()
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{mid:.1}" text-anchor="end" font-weight="{weight}" fill="#1f2328">{}</text>"##,
            BARS_X - 8.0,
            esc(&label)
        );
        match value {
            Some(v) => {
                let w = (v * scale).clamp(1.0, BARS_W);
                let star = if run.cut_short(key, &row.workload) {
                    "*"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    r#"<rect class="bar" data-store="{}" x="{BARS_X}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{}"/>"#,
                    esc(key),
                    colour(key)
                );
                let _ = writeln!(
                    s,
                    r##"<text class="value" x="{:.1}" y="{mid:.1}" font-weight="{weight}" fill="#1f2328" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}{star}</text>"##,
                    BARS_X + w + 6.0,
                    fmt_num(*v)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{mid:.1}" fill="#8c959f">error</text>"##,
                    BARS_X + 4.0
                );
            }
        }
    }

    if let Some(l) = limit {
        let x = BARS_X + l * scale;
        let y0 = top - 12.0;
        let y1 = top + bars_h + 4.0;
        let _ = writeln!(
            s,
            r##"<line class="limit" x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="#cf222e" stroke-width="2" stroke-dasharray="6 3"/>"##
        );
        // The label sits above the line, to its left when the line is far
        // to the right.
        let anchor = if x > BARS_X + BARS_W * 0.6 {
            "end"
        } else {
            "start"
        };
        let dx = if anchor == "end" { -4.0 } else { 4.0 };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="#cf222e">disk limit {}</text>"##,
            x + dx,
            y0 + 2.0,
            fmt_num(l)
        );
    }
    if any_cut {
        let _ = writeln!(
            s,
            r##"<text x="12" y="{:.1}" fill="#57606a">*: stopped when its time budget ran out; the rate is over what it did.</text>"##,
            top + bars_h + 26.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Where the SVG of `workload` goes, beside the HTML report `html`:
/// `gesta-bench.html` → `gesta-bench-W2.svg`.
pub fn svg_path(html: &Path, workload: &str) -> PathBuf {
    let stem = html.file_stem().map_or_else(
        || "gesta-bench".into(),
        |s| s.to_string_lossy().into_owned(),
    );
    html.with_file_name(format!("{stem}-{workload}.svg"))
}

fn meta_row(s: &mut String, name: &str, value: &str) {
    let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(name), esc(value));
}

/// The HTML report: metadata, one chart per workload (inline SVG), every
/// figure of the table, failures and notes. Self-contained: no script, no
/// link to anything.
pub fn html(run: &Run) -> String {
    let mut s = String::new();
    let date = run.date.as_deref().unwrap_or("date not recorded");
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    let _ = writeln!(s, "<title>gesta-bench report, {}</title>", esc(date));
    s.push_str(
        "<style>\n\
         body { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; \
         color: #1f2328; max-width: 820px; margin: 2em auto; padding: 0 1em; }\n\
         table { border-collapse: collapse; font-size: 13px; }\n\
         th, td { padding: 3px 8px; border-bottom: 1px solid #d0d7de; text-align: left; vertical-align: top; }\n\
         table.figures td.n { text-align: right; font-variant-numeric: tabular-nums; }\n\
         figure { margin: 1.5em 0; }\n\
         svg { max-width: 100%; height: auto; border: 1px solid #d0d7de; }\n\
         .warn { background: #fff8c5; padding: 0.5em 1em; }\n\
         </style>\n</head>\n<body>\n",
    );
    s.push_str("<h1>gesta-bench report</h1>\n");
    if run.quick {
        s.push_str(
            "<p class=\"warn\">A <code>--quick</code> run: CI sizes, not figures to quote.</p>\n",
        );
    }
    s.push_str("<table class=\"meta\">\n");
    meta_row(&mut s, "Date", date);
    if let Some(m) = &run.machine {
        let mut parts = Vec::new();
        if let Some(h) = &m.hostname {
            parts.push(h.clone());
        }
        if let Some(c) = &m.cpu {
            parts.push(c.clone());
        }
        if let Some(n) = m.cpus {
            parts.push(format!("{n} CPUs"));
        }
        if let Some(g) = m.memory_gib {
            parts.push(format!("{g:.1} GiB memory"));
        }
        if let Some(k) = &m.kernel {
            parts.push(format!("Linux {k}"));
        }
        meta_row(&mut s, "Machine", &parts.join(", "));
    }
    if let Some(dir) = &run.scratch_dir {
        let fs = run.fs_type.as_deref().unwrap_or("file system unknown");
        meta_row(&mut s, "Scratch directory", &format!("{dir} ({fs})"));
    }
    let labels: Vec<&str> = run.stores.iter().map(|(_, l)| l.as_str()).collect();
    meta_row(&mut s, "Stores", &labels.join(", "));
    if let Some(l) = &run.limit_line {
        meta_row(
            &mut s,
            "Disk",
            &format!(
                "4 KiB write + fdatasync {:.0} µs pre-zeroed, {:.0} µs growing; \
                 group commit (16 threads) {} commits/s, {:.1} per fdatasync; \
                 bandwidth (fdatasync per MiB) {:.0} MiB/s",
                l.pre_zeroed_sync_us,
                l.growing_sync_us,
                fmt_num(l.group_commit_per_s),
                l.group_commits_per_sync,
                l.bandwidth_bytes_per_s / crate::MIB as f64
            ),
        );
    }
    if !run.sizes.is_empty() {
        let sizes: Vec<String> = run
            .sizes
            .iter()
            .map(|(k, v)| match v.as_u64() {
                Some(n) if n >= 1_000 => format!("{k} {}", fmt_num(n as f64)),
                _ => format!("{k} {v}"),
            })
            .collect();
        meta_row(&mut s, "Sizes", &sizes.join(", "));
    }
    s.push_str("</table>\n");

    s.push_str("<h2>Workloads</h2>\n");
    s.push_str(
        "<p>Each workload's main figure per store. For W1–W5, Gesta ÷ best other counts \
         durable stores only (not SQLite NORMAL). The red line is the disk's limit: \
         W1 vs 1 ÷ (pre-zeroed 4 KiB write + fdatasync); W2/W4 vs the 16-thread \
         group-commit probe; W3 vs sequential bandwidth (fdatasync per MiB) ÷ Gesta's \
         bytes per event.</p>\n",
    );
    for row in run.main_rows() {
        let _ = writeln!(s, "<figure id=\"{}\">", esc(&row.workload));
        s.push_str(&chart(run, row));
        s.push_str("</figure>\n");
    }

    s.push_str(
        "<h2>All figures</h2>\n<table class=\"figures\">\n<tr><th>workload</th><th>metric</th>",
    );
    for (_, label) in &run.stores {
        let _ = write!(s, "<th>{}</th>", esc(label));
    }
    s.push_str("<th>Gesta ÷ best other</th><th>Gesta ÷ limit</th></tr>\n");
    for row in &run.rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td>",
            esc(&row.workload),
            esc(&row.metric)
        );
        for (key, _) in &run.stores {
            let cell = match row.value(key) {
                Some(v) => format!(
                    "{}{}",
                    fmt_num(v),
                    if run.cut_short(key, &row.workload) {
                        "*"
                    } else {
                        ""
                    }
                ),
                None if run.failed(key, &row.workload) => "error".to_owned(),
                None => "–".to_owned(),
            };
            let _ = write!(s, "<td class=\"n\">{}</td>", esc(&cell));
        }
        let ratio = row.gesta_vs_best_other.map_or("–".to_owned(), fmt_ratio);
        let vs_limit = match (row.gesta_vs_limit, row.limit) {
            (Some(f), Some(l)) => format!("{:.0}% of {}", 100.0 * f, fmt_num(l)),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            s,
            "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&ratio),
            esc(&vs_limit)
        );
    }
    s.push_str("</table>\n");
    s.push_str("<p>↓: lower is better. *: stopped when its time budget ran out.</p>\n");

    if !run.errors.is_empty() || !run.notes.is_empty() {
        s.push_str("<h2>Notes</h2>\n<ul>\n");
        for (store, workload, error) in &run.errors {
            let _ = writeln!(
                s,
                "<li>{} {} failed: {}</li>",
                esc(run.label(store)),
                esc(workload),
                esc(error)
            );
        }
        for note in &run.notes {
            let _ = writeln!(s, "<li>{}</li>", esc(note));
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// Writes the HTML report to `html_path` and one SVG per workload beside
/// it; returns the SVGs' paths.
pub fn write(run: &Run, html_path: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    if let Some(parent) = html_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(html_path, html(run))?;
    let mut svgs = Vec::new();
    for row in run.main_rows() {
        let path = svg_path(html_path, &row.workload);
        std::fs::write(&path, chart(run, row))?;
        svgs.push(path);
    }
    Ok(svgs)
}

/// Draws the run in the JSON file `json`: the HTML report beside it (same
/// name, `.html`) and the SVGs beside that. Returns the HTML's path.
pub fn render_file(json: &Path) -> Result<PathBuf, HarnessError> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    let run = Run::parse(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let html_path = json.with_extension("html");
    let svgs = write(&run, &html_path)?;
    eprintln!(
        "report written to {} ({} charts beside it: {})",
        html_path.display(),
        svgs.len(),
        svg_path(&html_path, "<workload>").display()
    );
    Ok(html_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run, as the JSON a run writes would give it: W2 with a limit
    /// and a cut-short store, R2, and D1 (lower is better).
    const RUN: &str = r#"{
        "date": "2026-12-05 14:03 UTC",
        "machine": {"hostname": "vm", "cpu": "Test CPU", "cpus": 2, "memory_gib": 7.8, "kernel": "6.1.0"},
        "quick": false,
        "sizes": {"w2": 100000, "queries": 10000, "r1_runs": 3, "budget_secs": 30.0},
        "scratch_dir": "/tmp/bench",
        "fs_type": "ext4",
        "stores": [["gesta", "Gesta (Sync)"], ["sqlite_full", "SQLite FULL"],
                   ["postgres", "PostgreSQL"], ["umadb", "UmaDB (embedded)"]],
        "limit_line": {"pre_zeroed_sync_us": 80.0, "growing_sync_us": 132.0,
                       "group_commit_per_s": 62352.0, "group_commits_per_sync": 8.0,
                       "bandwidth_bytes_per_s": 273678336.0},
        "rows": [
            {"workload": "W2", "metric": "events/s", "better": "higher",
             "values": {"gesta": 62768.0, "sqlite_full": 5689.0, "postgres": 2604.0, "umadb": 13410.0},
             "gesta_vs_best_other": 4.6807, "gesta_vs": {}, "limit": 62352.0, "gesta_vs_limit": 1.0067},
            {"workload": "W2", "metric": "p99 µs ↓", "better": "lower",
             "values": {"gesta": 355.0, "sqlite_full": 10793.0, "postgres": 9999.0, "umadb": 1819.0},
             "gesta_vs_best_other": 0.195, "gesta_vs": {}, "limit": null, "gesta_vs_limit": null},
            {"workload": "R2", "metric": "queries/s",
             "values": {"gesta": 5074.0, "sqlite_full": 1957.0, "postgres": 566.0, "umadb": null},
             "gesta_vs_best_other": 2.5927, "limit": null, "gesta_vs_limit": null},
            {"workload": "D1", "metric": "bytes/event ↓",
             "values": {"gesta": 288.0, "sqlite_full": 424.0, "postgres": null, "umadb": 359.0},
             "gesta_vs_best_other": 0.8022, "limit": null, "gesta_vs_limit": null}
        ],
        "raw": [{"store": "postgres", "workload": "W2", "ops": 78120, "elapsed_s": 30.0,
                 "extra": 0, "cut_short": true, "p50_us": 1.0, "p99_us": 2.0, "mean_us": 1.0}],
        "errors": [["umadb", "R2", "it broke & said <no>"]],
        "skipped": [],
        "notes": ["a note"]
    }"#;

    /// Checks that every tag is closed in order (self-closing tags,
    /// comments, `<!DOCTYPE>` and `<?xml?>` aside), and that every `&`
    /// starts an entity.
    fn balanced(doc: &str) -> Result<(), String> {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = doc;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            check_entities(text)?;
            let end = rest[start..]
                .find('>')
                .ok_or_else(|| format!("unclosed '<' at {:?}", &rest[start..]))?
                + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') || tag.starts_with('?') {
                continue;
            }
            check_entities(tag)?;
            if tag.contains('<') {
                return Err(format!("'<' inside a tag: {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let name = name.trim();
                match open.pop() {
                    Some(top) if top == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("");
                open.push(name);
            }
        }
        check_entities(rest)?;
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("left open: {open:?}"))
        }
    }

    fn check_entities(text: &str) -> Result<(), String> {
        for (i, _) in text.match_indices('&') {
            let after = &text[i + 1..];
            let ok = after.find(';').is_some_and(|semi| {
                let name = &after[..semi];
                !name.is_empty()
                    && name.len() <= 8
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '#')
            });
            if !ok {
                return Err(format!(
                    "bare '&' before {:?}",
                    &after[..after.len().min(10)]
                ));
            }
        }
        Ok(())
    }

    fn run() -> Run {
        Run::parse(RUN).unwrap()
    }

    #[test]
    fn each_workload_gets_its_main_figure() {
        let run = run();
        let main: Vec<(&str, &str)> = run
            .main_rows()
            .iter()
            .map(|r| (r.workload.as_str(), r.metric.as_str()))
            .collect();
        assert_eq!(
            main,
            [
                ("W2", "events/s"),
                ("R2", "queries/s"),
                ("D1", "bytes/event ↓")
            ]
        );
    }

    #[test]
    fn a_chart_shows_every_store_with_its_value_and_the_limit() {
        let run = run();
        let w2 = &run.main_rows()[0];
        let svg = chart(&run, w2);
        balanced(&svg).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for (key, label, value) in [
            ("gesta", "Gesta (Sync)", "62,768"),
            ("sqlite_full", "SQLite FULL", "5,689"),
            ("postgres", "PostgreSQL", "2,604*"),
            ("umadb", "UmaDB (embedded)", "13,410"),
        ] {
            assert!(
                svg.contains(&format!("class=\"bar\" data-store=\"{key}\"")),
                "{key}"
            );
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
            assert!(svg.contains(&format!(">{value}</text>")), "{value}");
        }
        assert_eq!(svg.matches("class=\"bar\"").count(), 4);
        assert!(svg.contains("higher is better"));
        assert!(svg.contains("Gesta ÷ best durable other (UmaDB (embedded)): 4.68×"));
        assert!(svg.contains("class=\"limit\""));
        assert!(svg.contains("disk limit 62,352"));
        assert!(svg.contains("Gesta at 101%"));
        assert!(svg.contains("*: stopped when its time budget ran out"));
        // Gesta's figure is the largest: its bar is the longest, and the
        // limit line is drawn to the same scale.
        assert!(svg.contains(&format!("width=\"{BARS_W:.1}\"")));
        let x = BARS_X + BARS_W * 62352.0 / 62768.0;
        assert!(
            svg.contains(&format!("<line class=\"limit\" x1=\"{x:.1}\"")),
            "{svg}"
        );
    }

    #[test]
    fn charts_without_a_limit_say_which_way_is_better() {
        let run = run();
        let rows = run.main_rows();
        let r2 = chart(&run, rows[1]);
        balanced(&r2).unwrap();
        assert!(!r2.contains("class=\"limit\""));
        assert!(r2.contains("higher is better"));
        assert!(r2.contains(">5,074</text>"));
        assert!(r2.contains(">error</text>"), "UmaDB's R2 failed");
        assert_eq!(r2.matches("class=\"bar\"").count(), 3);
        let d1 = chart(&run, rows[2]);
        balanced(&d1).unwrap();
        assert!(d1.contains("D1 · bytes/event · lower is better"));
        assert!(d1.contains("0.80×, below 1 favours Gesta"));
        assert!(!d1.contains("PostgreSQL"), "PostgreSQL has no D1");
    }

    #[test]
    fn the_page_has_the_metadata_and_every_chart_and_no_script() {
        let run = run();
        let page = html(&run);
        balanced(&page).unwrap();
        for text in [
            "2026-12-05 14:03 UTC",
            "vm, Test CPU, 2 CPUs, 7.8 GiB memory, Linux 6.1.0",
            "/tmp/bench (ext4)",
            "budget_secs 30.0, queries 10,000, r1_runs 3, w2 100,000",
            "group commit (16 threads) 62,352 commits/s",
            "<figure id=\"W2\">",
            "<figure id=\"R2\">",
            "<figure id=\"D1\">",
            "UmaDB (embedded) R2 failed: it broke &amp; said &lt;no&gt;",
            "<td>p99 µs ↓</td>",
            "101% of 62,352",
        ] {
            assert!(page.contains(text), "{text}");
        }
        assert_eq!(page.matches("<svg ").count(), 3);
        assert_eq!(page.matches("class=\"limit\"").count(), 1);
        assert!(!page.contains("<script"));
        // Nothing to fetch: the only URLs are the SVG namespace.
        assert!(!page.contains("href") && !page.contains("src="));
        assert!(!page.contains("https://"));
    }

    #[test]
    fn a_json_file_is_rendered_beside_itself() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("run.json");
        std::fs::write(&json, RUN).unwrap();
        let html_path = render_file(&json).unwrap();
        assert_eq!(html_path, dir.path().join("run.html"));
        for w in ["W2", "R2", "D1"] {
            let svg = std::fs::read_to_string(dir.path().join(format!("run-{w}.svg"))).unwrap();
            balanced(&svg).unwrap();
        }
        let server = dir.path().join("server.json");
        std::fs::write(&server, r#"{"targets": [], "rows": []}"#).unwrap();
        let e = render_file(&server).unwrap_err().to_string();
        assert!(e.contains("--server run"), "{e}");
    }

    #[test]
    fn the_checker_catches_what_it_should() {
        assert!(balanced("<a><b/></a>").is_ok());
        assert!(balanced("<a><b></a>").is_err());
        assert!(balanced("<a>x & y</a>").is_err());
        assert!(balanced("<a>x &amp; y</a>").is_ok());
    }
}
