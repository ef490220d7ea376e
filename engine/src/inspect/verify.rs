//! [`verify`]: every record of the log checked (frame and body checksums,
//! consecutive positions, the events decode), every sealed segment's offset
//! table against its segment, then every index run checked against the
//! log: it must hold exactly the postings the log's events give for the
//! positions it covers; then every snapshot and cursor file. Every problem
//! found is reported as a [`Finding`], not only the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use gesta_compaction::flush::INDEX_DIR;
use gesta_compaction::manifest::{FILE_NAME, Manifest, ManifestError, Purged, RunEntry};
use gesta_compaction::snapshot::{SnapshotError, Snapshots};
use gesta_index::{Hidden, Key, Run, RunError, purgeable};
use gesta_wal::TornTail;
use gesta_wal::files::{SegmentTable, table_path};
use gesta_wal::format::Record;
use gesta_wal::io::StdFs;

use super::scan::{Sealed, Visitor, WAL_DIR, corruption, io_error, segment_files, walk_log};
use crate::codec::{decode_record, index_entries, redact_payload};
use crate::cursors;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;

/// The part of a store a [`Finding`] is in: what the damage means and what
/// can repair it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// A segment of the log, the store's one truth: never repaired, since
    /// no guess about lost events is safe.
    Log,
    /// The index: the MANIFEST or an index run. A store whose index is
    /// damaged refuses to open (or, when a run is well formed but wrong,
    /// answers queries wrongly); [`repair`](super::repair()) rebuilds the
    /// index from the log.
    Index,
    /// A sealed segment's offset table (`wal/<first>.off`): a cache of
    /// where the segment's records are, which recovery checks and rebuilds
    /// from the segment when it is damaged or missing, and which
    /// [`repair`](super::repair()) rebuilds at once.
    OffsetTable,
    /// A snapshot file: loading it fails until it is deleted. Not rebuilt
    /// from the log (its state is the caller's).
    Snapshot,
    /// A durable subscription's cursor file: the subscription cannot
    /// resume, and listing the cursors fails, until it is deleted. Not
    /// rebuilt from the log (it records what a consumer acknowledged).
    Cursor,
    /// The lifecycle journal (`LIFECYCLE`: retroactive tags and the audit
    /// trail): the truth for what it records, so never rebuilt; a store
    /// whose journal is damaged refuses to open. A torn last entry is
    /// harmless (the next open cuts it off: that operation never
    /// returned).
    Lifecycle,
    /// The key file of crypto-shredding (`KEYS`): missing while the
    /// store's mark says it is encrypted, or damaged. Every door refuses
    /// the store until a copy is put back; never rebuilt (the keys exist
    /// nowhere else, by design).
    KeyFile,
}

impl Part {
    /// Whether the part is a cache that can be rebuilt from the log
    /// without anything else (the offset tables).
    pub fn is_rebuildable_cache(self) -> bool {
        self == Part::OffsetTable
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Log => "log",
            Part::Index => "index",
            Part::OffsetTable => "offset table",
            Part::Snapshot => "snapshot",
            Part::Cursor => "cursor",
            Part::Lifecycle => "lifecycle journal",
            Part::KeyFile => "key file",
        })
    }
}

/// One problem [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Where it is.
    pub part: Part,
    /// The damaged (or missing) file.
    pub file: PathBuf,
    /// The byte offset of the damage, when it is at one place of the file.
    pub offset: Option<u64>,
    /// What is wrong.
    pub problem: String,
    /// Whether the store works exactly as if the file were intact: the
    /// damage is in a cache that the next open checks, ignores and
    /// rebuilds (an offset table that fails its checksum, is missing, or
    /// that recovery would not trust). An offset table whose checksum is
    /// intact but whose contents are wrong is not harmless: recovery
    /// trusts it.
    pub harmless: bool,
}

impl Finding {
    fn new(part: Part, file: &Path, offset: Option<u64>, problem: impl Into<String>) -> Finding {
        Finding {
            part,
            file: file.to_owned(),
            offset,
            problem: problem.into(),
            harmless: false,
        }
    }

    /// The finding an error of a walk over the store's files stands for.
    fn from_error(part: Part, fallback: &Path, e: Error) -> Finding {
        match e {
            Error::Corruption {
                file,
                offset,
                reason,
            } => Finding::new(part, &file, Some(offset), reason),
            Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                Finding::new(part, &path, None, "the file is missing")
            }
            Error::Io { path, source } => Finding::new(
                part,
                &path,
                None,
                format!("the file cannot be read: {source}"),
            ),
            other => Finding::new(part, fallback, None, other.to_string()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What [`verify`] checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files walked.
    pub segments: usize,
    /// Records (committed batches) whose checksums and events were checked.
    pub records: u64,
    /// Events decoded.
    pub events: u64,
    /// The last position in the log (0 when empty); with damage to the
    /// log, the last one before the damage.
    pub last_position: u64,
    /// Bytes of segment files read.
    pub log_bytes: u64,
    /// Index runs checked.
    pub runs: usize,
    /// Bytes of index runs read.
    pub run_bytes: u64,
    /// Postings of the runs compared with the log.
    pub postings: u64,
    /// A torn write at the end of the newest segment: not damage, but the
    /// remains of an interrupted append that the next open cuts off. (A
    /// record the index covers was committed: damage to it is a finding
    /// even where it looks like a torn write.)
    pub torn_tail: Option<TornTail>,
    /// Every problem found, in the order found: the log's segments in
    /// position order, each followed by its offset table; the index runs
    /// as the walk reaches the end of the positions they cover; then the
    /// snapshots and the cursors.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Whether nothing is damaged or missing.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings in `part`.
    pub fn findings_in(&self, part: Part) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.part == part)
    }
}

/// An index run listed in the MANIFEST.
struct Listed {
    entry: RunEntry,
    path: PathBuf,
    size: u64,
}

/// The index run being compared with the log, and what the log says it
/// must hold.
struct Pending {
    run: Listed,
    expected: BTreeMap<Key, Vec<u64>>,
}

/// Checks the store in `dir` without opening it (no lock, files opened
/// read-only, nothing repaired): every record's checksums, the positions'
/// order, that every event decodes, the offset table of every sealed
/// segment, the MANIFEST, every index run — its own checksums and
/// structure, and that it holds exactly the postings of the log's events
/// in the positions it covers — and every snapshot and cursor file.
///
/// Every problem found is a [`Finding`] in the report, which is intact when
/// there are none. Damage to a segment ends the walk of that segment only;
/// the walk goes on with the next one, and the index runs are then checked
/// on their own, no longer against the log. An error is returned only when
/// there is nothing to check: `dir` holds no store, or its log directory
/// cannot be listed.
///
/// `progress` is called with the bytes checked so far and the total.
pub fn verify(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
    let segments = segment_files(dir)?;
    let log_bytes: u64 = segments.iter().map(|s| s.len).sum();
    let mut findings = Vec::new();
    let manifest_path = dir.join(FILE_NAME);
    let manifest = load_manifest(dir).unwrap_or_else(|e| {
        findings.push(Finding::from_error(Part::Index, &manifest_path, e));
        Manifest::default()
    });
    let index_dir = dir.join(INDEX_DIR);
    let runs: Vec<Listed> = manifest
        .runs
        .iter()
        .map(|entry| {
            let path = index_dir.join(&entry.name);
            // A run that cannot be looked at is reported when it is read.
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            Listed {
                entry: entry.clone(),
                path,
                size,
            }
        })
        .collect();
    let run_bytes = runs.iter().map(|r| r.size).sum();
    let total = log_bytes + run_bytes;
    progress(0, total);

    let mut runs = runs.into_iter();
    let mut v = Verifier {
        wal: dir.join(WAL_DIR),
        manifest: manifest_path,
        replay_from: super::scan::committed_floor(dir, manifest.covered()) + 1,
        findings,
        events: 0,
        compare: true,
        pending: runs.next().map(Pending::new),
        runs,
        runs_checked: 0,
        postings: 0,
        run_bytes_done: 0,
        decoded: Vec::new(),
        keys: Vec::new(),
        total,
        progress,
        redacted: journal_redactions(dir),
        purged: journal_purged(dir, manifest.purged),
    };
    let scanned = walk_log(&segments, v.replay_from, &mut v)?;
    v.finish(scanned.last_position);
    check_snapshots(dir, &mut v.findings);
    check_cursors(dir, &mut v.findings);
    check_journal(dir, scanned.last_position, &mut v.findings);
    check_key_file(dir, &mut v.findings);
    (v.progress)(total, total);
    Ok(VerifyReport {
        segments: scanned.segments,
        records: scanned.records,
        events: v.events,
        last_position: scanned.last_position,
        log_bytes,
        runs: v.runs_checked,
        run_bytes,
        postings: v.postings,
        torn_tail: scanned.torn_tail,
        findings: v.findings,
    })
}

/// The state of [`verify`]'s walk over the log.
struct Verifier<'p> {
    wal: PathBuf,
    manifest: PathBuf,
    /// The first position the index does not cover: recovery trusts the
    /// offset tables of sealed segments entirely before it.
    replay_from: u64,
    findings: Vec<Finding>,
    events: u64,
    /// Whether the runs are still compared with the log: not once the log
    /// is damaged, since the postings of what was lost are unknown.
    compare: bool,
    pending: Option<Pending>,
    runs: std::vec::IntoIter<Listed>,
    runs_checked: usize,
    postings: u64,
    run_bytes_done: u64,
    decoded: Vec<RecordedEvent>,
    keys: Vec<(Key, u64)>,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
    /// The positions the lifecycle journal says were redacted.
    redacted: std::collections::BTreeSet<u64>,
    /// The removed positions whose type and tag postings the MANIFEST says
    /// a merge dropped from the runs.
    purged: Hidden,
}

impl Verifier<'_> {
    /// Reports the events of `record` that the journal says were redacted
    /// but whose bytes the record still holds (a compaction erases them).
    fn check_erased(&mut self, record: &Record, path: &Path, offset: u64) {
        if self.redacted.is_empty() {
            return;
        }
        let (lo, hi) = (record.meta.first_position, record.meta.last_position());
        if self.redacted.range(lo..=hi).next().is_none() {
            return;
        }
        let redacted = &self.redacted;
        if let Ok(Some(_)) = redact_payload(record, &|p| redacted.contains(&p)) {
            let held: Vec<u64> = redacted.range(lo..=hi).copied().collect();
            let mut f = Finding::new(
                Part::Lifecycle,
                path,
                Some(offset),
                format!(
                    "redacted events at positions {held:?} (some of them) still hold their bytes in the log; `gesta compact` erases them"
                ),
            );
            f.harmless = true;
            self.findings.push(f);
        }
    }
}

impl Visitor for Verifier<'_> {
    fn record(&mut self, record: &Record, path: &Path, offset: u64) -> Result<()> {
        self.decoded.clear();
        if let Err(e) = decode_record(record, &mut self.decoded) {
            self.log_damage(corruption(
                path,
                offset,
                format!("the record's events do not decode: {e}"),
            ));
            return Ok(());
        }
        self.check_erased(record, path, offset);
        self.events += self.decoded.len() as u64;
        if !self.compare {
            return Ok(());
        }
        let Some(current) = self.pending.as_ref() else {
            return Ok(());
        };
        if record.meta.first_position > current.run.entry.hi {
            return Ok(());
        }
        self.keys.clear();
        if let Err(e) = index_entries(record, current.run.entry.lo, &mut self.keys) {
            self.log_damage(corruption(
                path,
                offset,
                format!("the record's index entries do not decode: {e}"),
            ));
            return Ok(());
        }
        self.keys.sort_by_key(|(_, position)| *position);
        let mut next = 0;
        while let Some(current) = self.pending.as_mut() {
            while let Some((key, position)) = self.keys.get(next) {
                if *position > current.run.entry.hi {
                    break;
                }
                if purgeable(key) && self.purged.contains(*position) {
                    next += 1;
                    continue;
                }
                let list = current.expected.entry(key.clone()).or_default();
                if list.last() != Some(position) {
                    list.push(*position);
                }
                next += 1;
            }
            if record.meta.last_position() < current.run.entry.hi {
                break;
            }
            if let Some(done) = self.pending.take() {
                self.check_run(done, true);
            }
            self.pending = self.runs.next().map(Pending::new);
        }
        Ok(())
    }

    fn damage(&mut self, e: Error) -> Result<()> {
        self.log_damage(e);
        Ok(())
    }

    fn sealed(&mut self, segment: &Sealed<'_>) -> Result<()> {
        if let Some(finding) = check_table(&self.wal, segment, self.replay_from) {
            self.findings.push(finding);
        }
        Ok(())
    }

    fn progress(&mut self, walked: u64) {
        (self.progress)(walked + self.run_bytes_done, self.total);
    }
}

impl Verifier<'_> {
    fn log_damage(&mut self, e: Error) {
        let fallback = self.wal.clone();
        self.findings
            .push(Finding::from_error(Part::Log, &fallback, e));
        self.compare = false;
    }

    /// Checks a run, against what the log says it must hold if `compare`.
    fn check_run(&mut self, pending: Pending, compare: bool) {
        self.runs_checked += 1;
        self.run_bytes_done += pending.run.size;
        match pending.check(compare) {
            Ok(postings) => self.postings += postings,
            Err(finding) => self.findings.push(finding),
        }
    }

    /// After the walk: the runs not reached. While the log is intact, a run
    /// left pending covers positions past its end.
    fn finish(&mut self, last_position: u64) {
        if let Some(p) = self.pending.take() {
            if self.compare {
                self.findings.push(Finding::new(
                    Part::Index,
                    &self.manifest,
                    Some(0),
                    format!(
                        "index run {} covers positions {}..={}, but the log ends at {last_position}",
                        p.run.entry.name, p.run.entry.lo, p.run.entry.hi
                    ),
                ));
            }
            self.check_run(p, false);
        }
        while let Some(run) = self.runs.next() {
            self.check_run(Pending::new(run), false);
        }
    }
}

/// Reads and checks every snapshot (checksum, key and position against
/// its path, that the state decompresses).
fn check_snapshots(dir: &Path, findings: &mut Vec<Finding>) {
    let snapshots = Snapshots::new(Arc::new(StdFs), dir);
    let mut found = |e: SnapshotError| {
        findings.push(match e {
            SnapshotError::Corrupt {
                path,
                offset,
                reason,
            } => Finding::new(Part::Snapshot, &path, Some(offset), reason),
            SnapshotError::Io { path, source } => Finding::new(
                Part::Snapshot,
                &path,
                None,
                format!("the file cannot be read: {source}"),
            ),
        })
    };
    let mut keys = match snapshots.keys() {
        Ok(keys) => keys,
        Err(e) => return found(e),
    };
    keys.sort();
    for key in keys {
        match snapshots.list(&key) {
            Ok(positions) => {
                for position in positions {
                    if let Err(e) = snapshots.read(&key, position) {
                        found(e);
                    }
                }
            }
            Err(e) => found(e),
        }
    }
}

/// The key file of an encrypted store: there if the store is marked
/// encrypted, and well formed (with the feature that reads it).
fn check_key_file(dir: &Path, findings: &mut Vec<Finding>) {
    let keys = dir.join(crate::names::KEY_FILE_NAME);
    let mark = dir.join(crate::names::ENCRYPTED_MARK_NAME);
    if keys.exists() {
        #[cfg(feature = "encryption")]
        {
            let checked = std::fs::read(&keys)
                .map_err(io_error(&keys))
                .and_then(|bytes| crate::encryption::keys::decode(&bytes, &keys));
            if let Err(e) = checked {
                findings.push(Finding::from_error(Part::KeyFile, &keys, e));
            }
        }
    } else if mark.exists() {
        findings.push(Finding::new(
            Part::KeyFile,
            &keys,
            None,
            format!(
                "missing, while {} says the store is encrypted",
                mark.display()
            ),
        ));
    }
}

/// Reads and checks every durable subscription's cursor file (checksum,
/// and that it holds the cursor its name is for).
fn check_cursors(dir: &Path, findings: &mut Vec<Finding>) {
    let cursors = dir.join(cursors::DIR);
    let listing = match std::fs::read_dir(&cursors) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            let e = io_error(&cursors)(e);
            return findings.push(Finding::from_error(Part::Cursor, &cursors, e));
        }
    };
    let mut names: Vec<String> = listing
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(cursors::SUFFIX))
        .collect();
    names.sort();
    for name in names {
        let path = cursors.join(&name);
        let checked = std::fs::read(&path)
            .map_err(io_error(&path))
            .and_then(|bytes| cursors::decode(&path, &bytes));
        match checked {
            Ok((cursor, _)) if cursors::file_name(&cursor) != name => findings.push(Finding::new(
                Part::Cursor,
                &path,
                Some(16),
                format!(
                    "the file holds the cursor {cursor:?}, which is not the one its name is for"
                ),
            )),
            Ok(_) => {}
            Err(e) => findings.push(Finding::from_error(Part::Cursor, &path, e)),
        }
    }
}

/// The positions the lifecycle journal says were redacted (none if it
/// cannot be read: [`check_journal`] reports why).
fn journal_redactions(dir: &Path) -> std::collections::BTreeSet<u64> {
    let path = dir.join(crate::store::JOURNAL_FILE);
    let Ok((bodies, _)) = gesta_wal::journal::read(&StdFs, &path) else {
        return Default::default();
    };
    let mut out = std::collections::BTreeSet::new();
    for body in &bodies {
        if let Ok((entry, lists)) = crate::lifecycle::decode_journal_entry(body)
            && matches!(entry.operation, crate::lifecycle::Operation::Redact { .. })
        {
            out.extend(lists.into_iter().flatten());
        }
    }
    out
}

/// The positions whose type and tag postings `purged` says the runs no
/// longer hold: those removed by the journal's entries up to its sequence,
/// up to its position (none if the journal cannot be read: then the runs
/// are compared with every posting, and [`check_journal`] reports why).
fn journal_purged(dir: &Path, purged: Purged) -> Hidden {
    if purged == Purged::default() {
        return Hidden::new();
    }
    let path = dir.join(crate::store::JOURNAL_FILE);
    let Ok((bodies, _)) = gesta_wal::journal::read(&StdFs, &path) else {
        return Hidden::new();
    };
    let mut positions = Vec::new();
    for body in &bodies {
        if let Ok((entry, lists)) = crate::lifecycle::decode_journal_entry(body)
            && matches!(entry.operation, crate::lifecycle::Operation::Remove { .. })
        {
            positions.extend(
                lists
                    .into_iter()
                    .flatten()
                    .filter(|&p| purged.covers(entry.sequence, p)),
            );
        }
    }
    positions.sort_unstable();
    Hidden::new().with(&positions, [])
}

/// Reads and checks the lifecycle journal, if the store has one: every
/// entry's checksums and form, their sequence, and that no entry was made
/// at a head beyond the log's last position.
pub(super) fn check_journal(dir: &Path, last_position: u64, findings: &mut Vec<Finding>) {
    let path = dir.join(crate::store::JOURNAL_FILE);
    let read = gesta_wal::journal::read(&StdFs, &path).map_err(Error::from);
    let (bodies, torn) = match read {
        Ok(read) => read,
        Err(e) => return findings.push(Finding::from_error(Part::Lifecycle, &path, e)),
    };
    let entries = crate::lifecycle::check_journal_entries(&path, &bodies, last_position);
    if let Err(e) = entries {
        return findings.push(Finding::from_error(Part::Lifecycle, &path, e));
    }
    if torn > 0 {
        let end = gesta_wal::journal::JOURNAL_HEADER_LEN as u64
            + bodies
                .iter()
                .map(|b| (gesta_wal::journal::ENTRY_FRAME_LEN + b.len()) as u64)
                .sum::<u64>();
        let mut f = Finding::new(
            Part::Lifecycle,
            &path,
            Some(end),
            format!("a torn last entry of {torn} bytes, which the next open cuts off"),
        );
        f.harmless = true;
        findings.push(f);
    }
}

/// The index run files that the MANIFEST of the store directory `dir`
/// lists, as paths relative to `dir` (`index/NAME`): what a copy of the
/// store must hold for its index to open. Empty when there is no
/// MANIFEST. Read-only, like [`verify()`].
pub fn listed_index_runs(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = Path::new(INDEX_DIR);
    Ok(load_manifest(dir)?
        .runs
        .iter()
        .map(|r| index.join(&r.name))
        .collect())
}

fn load_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
        Err(e) => return Err(io_error(&path)(e)),
    };
    Manifest::decode(&bytes).map_err(|e| match e {
        ManifestError::Corrupt { offset, reason } => corruption(&path, offset, reason),
        ManifestError::Io(source) => io_error(&path)(source),
    })
}

/// Checks a sealed segment's offset table against what the walk found in
/// the segment. Every table that is missing, fails its own checks or
/// disagrees with the segment is a finding; it is harmless unless recovery
/// would trust it (its checksum is intact, it covers only positions the
/// index holds and it names the segment's length), since recovery scans
/// the segment instead of any other table and writes the table again.
fn check_table(wal: &Path, s: &Sealed<'_>, replay_from: u64) -> Option<Finding> {
    let path = table_path(wal, s.file.first);
    let finding = |offset, problem: String, harmless| {
        Some(Finding {
            part: Part::OffsetTable,
            file: path.clone(),
            offset,
            problem,
            harmless,
        })
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return finding(
                None,
                format!(
                    "the offset table of the sealed segment {} is missing",
                    s.file.path.display()
                ),
                true,
            );
        }
        // Recovery fails on a table it cannot read.
        Err(e) => return finding(None, format!("the file cannot be read: {e}"), false),
    };
    let table = match SegmentTable::check(&bytes) {
        Ok(t) => t,
        Err((offset, reason)) => return finding(Some(offset), reason.to_owned(), true),
    };
    if table.first_position != s.file.first {
        return finding(
            Some(16),
            format!(
                "the offset table is of a segment starting at position {}, not {}",
                table.first_position, s.file.first
            ),
            true,
        );
    }
    let trusted = table.last_position < replay_from
        && table.end == s.len
        && s.layout
            .is_none_or(|l| l.last_position == table.last_position);
    let (offset, problem) = if table.last_position != s.last_position || table.end != s.end {
        (
            24,
            format!(
                "the offset table says the segment ends at position {} and byte {}, its records at {} and {}",
                table.last_position, table.end, s.last_position, s.end
            ),
        )
    } else if let Some((i, entry)) = table
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| s.starts.binary_search(e).is_err())
    {
        (
            48 + 16 * i as u64,
            format!(
                "offset table entry (position {}, offset {}) is not the start of a record",
                entry.0, entry.1
            ),
        )
    } else if table.last_timestamp_micros != s.last_timestamp_micros {
        (
            40,
            format!(
                "the offset table says the segment's last commit was at {} µs, its last record says {}",
                table.last_timestamp_micros, s.last_timestamp_micros
            ),
        )
    } else {
        return None;
    };
    finding(Some(offset), problem, !trusted)
}

impl Pending {
    fn new(run: Listed) -> Pending {
        Pending {
            run,
            expected: BTreeMap::new(),
        }
    }

    /// Reads and opens the run (checking its checksum and structure) and,
    /// with `compare`, compares its lists with the log's; returns its
    /// posting count.
    fn check(self, compare: bool) -> std::result::Result<u64, Finding> {
        let path = &self.run.path;
        let entry = &self.run.entry;
        let bad =
            |offset: u64, problem: String| Finding::new(Part::Index, path, Some(offset), problem);
        let bytes = match std::fs::read(path) {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Finding::new(
                    Part::Index,
                    path,
                    None,
                    format!(
                        "the index run the MANIFEST lists for positions {}..={} is missing",
                        entry.lo, entry.hi
                    ),
                ));
            }
            Err(e) => {
                return Err(Finding::new(
                    Part::Index,
                    path,
                    None,
                    format!("the file cannot be read: {e}"),
                ));
            }
        };
        let run = Run::open(bytes).map_err(|e| match e {
            RunError::Corrupt { offset, reason } => bad(offset, reason.to_owned()),
            other => bad(0, other.to_string()),
        })?;
        if run.covers() != (entry.lo, entry.hi) {
            return Err(bad(
                0,
                format!(
                    "the run covers positions {:?}, the MANIFEST says {}..={}",
                    run.covers(),
                    entry.lo,
                    entry.hi
                ),
            ));
        }
        if !compare {
            return Ok(run.postings());
        }
        let mut expected = self.expected.into_iter();
        let mut postings = 0u64;
        for (key, list) in run.iter() {
            postings += list.len() as u64;
            match expected.next() {
                Some((k, l)) if k == key && l == list => {}
                Some((k, l)) if k == key => {
                    let at = list.iter().zip(&l).position(|(a, b)| a != b);
                    let detail = match at {
                        Some(i) => {
                            format!("its position #{i} is {}, the log says {}", list[i], l[i])
                        }
                        None => format!("it has {} positions, the log {}", list.len(), l.len()),
                    };
                    return Err(bad(
                        0,
                        format!("the run's list of {key:?} disagrees with the log: {detail}"),
                    ));
                }
                Some((k, _)) if k < key => {
                    return Err(bad(
                        0,
                        format!(
                            "the run lacks {k:?}, which events in the positions it covers carry"
                        ),
                    ));
                }
                _ => {
                    return Err(bad(
                        0,
                        format!(
                            "the run lists {key:?}, which no event in the positions it covers carries"
                        ),
                    ));
                }
            }
        }
        if let Some((k, _)) = expected.next() {
            return Err(bad(
                0,
                format!("the run lacks {k:?}, which events in the positions it covers carry"),
            ));
        }
        if postings != run.postings() {
            return Err(bad(
                0,
                format!(
                    "the run's lists hold {postings} positions, its footer says {}",
                    run.postings()
                ),
            ));
        }
        Ok(postings)
    }
}
