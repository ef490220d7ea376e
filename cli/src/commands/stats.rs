//! `gesta stats DIR`: what a store holds and what it costs on disk.

use crate::StoreDir;
use crate::failure::{Failure, existing_store};
use crate::progress;
use gesta_json::rfc3339;

pub const AFTER_HELP: &str = "\
Reads the files directly (read-only, no lock), so it also works while another process has the store open.

Examples:
  gesta stats ./events
  gesta stats ./events --top 25
  gesta stats ./events --json | jq .events";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// How many of the most frequent types and tags to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The figures as `--json` prints them.
#[derive(serde::Serialize)]
struct Json<'a> {
    head: u64,
    events: u64,
    removed_events: u64,
    records: u64,
    events_with_id: u64,
    streams: u64,
    distinct_types: usize,
    distinct_tags: usize,
    first_commit: Option<String>,
    last_commit: Option<String>,
    segments: usize,
    compressed_segments: usize,
    segment_bytes: u64,
    record_bytes: u64,
    index_runs: usize,
    index_bytes: u64,
    bytes_on_disk: u64,
    bytes_on_disk_per_event: Option<f64>,
    top_types: &'a [(String, u64)],
    top_tags: &'a [(String, u64)],
    torn_tail_offset: Option<u64>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let dir = &args.store.dir;
    existing_store(dir)?;
    let bar = progress::bytes(0, "scanning");
    let st = gesta::inspect::stats(dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    if args.json {
        let top = |v: &'_ [(String, u64)]| args.top.min(v.len());
        let json = Json {
            head: st.head,
            events: st.events,
            removed_events: st.removed,
            records: st.records,
            events_with_id: st.with_id,
            streams: st.streams,
            distinct_types: st.types.len(),
            distinct_tags: st.tags.len(),
            first_commit: st.first_timestamp_micros.map(rfc3339),
            last_commit: st
                .first_timestamp_micros
                .map(|_| rfc3339(st.last_timestamp_micros)),
            segments: st.segments,
            compressed_segments: st.compressed_segments,
            segment_bytes: st.segment_bytes,
            record_bytes: st.record_bytes,
            index_runs: st.index_runs,
            index_bytes: st.index_bytes,
            bytes_on_disk: st.bytes_on_disk,
            bytes_on_disk_per_event: (st.events > 0)
                .then(|| st.bytes_on_disk as f64 / st.events as f64),
            top_types: &st.types[..top(&st.types)],
            top_tags: &st.tags[..top(&st.tags)],
            torn_tail_offset: st.torn_tail.as_ref().map(|t| t.offset),
        };
        let line = serde_json::to_string(&json).map_err(Failure::new)?;
        return super::print_out(&format!("{line}\n"));
    }
    let per_event = |bytes: u64| {
        if st.events == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", bytes as f64 / st.events as f64)
        }
    };
    // Gathered first and written at once: a reader that went away (`| head`)
    // ends the command quietly instead of a panic of println!.
    let mut text = String::new();
    macro_rules! w {
        ($($t:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(text, $($t)*);
        }};
    }
    w!("store            {}", dir.display());
    w!("head             {}", st.head);
    w!("events           {}", st.events);
    if st.removed > 0 {
        w!(
            "removed events   {} (their positions stay taken)",
            st.removed
        );
    }
    w!("records          {} (committed batches)", st.records);
    w!("events with id   {}", st.with_id);
    w!("streams          {}", st.streams);
    w!("distinct types   {}", st.types.len());
    w!("distinct tags    {}", st.tags.len());
    if let Some(first) = st.first_timestamp_micros {
        w!("first commit     {}", rfc3339(first));
        w!("last commit      {}", rfc3339(st.last_timestamp_micros));
    }
    w!(
        "segments         {} ({} compressed; {} bytes; {} bytes of records, {} per event)",
        st.segments,
        st.compressed_segments,
        st.segment_bytes,
        st.record_bytes,
        per_event(st.record_bytes)
    );
    w!(
        "index runs       {} ({} bytes)",
        st.index_runs,
        st.index_bytes
    );
    w!(
        "bytes on disk    {} ({} per event)",
        st.bytes_on_disk,
        per_event(st.bytes_on_disk)
    );
    if let Some(t) = &st.torn_tail {
        w!(
            "torn tail        {} bytes at offset {} of {} ({}); the next open cuts them off",
            t.bytes,
            t.offset,
            t.file.display(),
            t.reason
        );
    }
    for (title, list) in [("types", &st.types), ("tags", &st.tags)] {
        if list.is_empty() {
            continue;
        }
        w!("top {} {title} by events:", args.top.min(list.len()));
        for (name, count) in list.iter().take(args.top) {
            w!("  {count:>12}  {name}");
        }
    }
    super::print_out(&text)
}
