//! Lifecycle operations on the engine — retroactive tags, redaction,
//! removal and retention rules (the last two in `store::removal`) — and
//! the audit trail. The contract is the `lifecycle` module's; this is how the engine
//! keeps it.
//!
//! An operation is resolved against the index (its positions, the tags each
//! event gains), written to the lifecycle journal (`<dir>/LIFECYCLE`, a
//! `gesta_wal::journal`: one entry per operation, synced before it
//! counts; created by the store's first operation), and only then applied: to the index's overlay, which queries,
//! counts and listings read, and to the added-tags map, which reads append
//! to an event's own tags. Opening a store replays the journal into both,
//! so the journal is the single truth for what the log's records do not
//! say; the index runs never hold added tags, and compaction and
//! `verify --repair` leave the journal alone. Operations take one lock,
//! so they are applied in journal order; appends do not wait for them.
//!
//! The log is made durable up to the head the operation saw before the
//! entry is written (in the `Periodic` and `Buffered` modes an
//! acknowledged event may not be yet), so a crash can never leave the
//! journal naming a position the log lost — which a later event would
//! take; on open, an entry made at a head beyond the log is corruption.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta_index::{Key, Positions};
use gesta_wal::WalReader;
use gesta_wal::io::FileSystem;
use gesta_wal::journal::{self, Journal};

use crate::error::{Error, Result};
use crate::indexes::Indexes;
use crate::lifecycle::{
    self as lc, AuditEntry, Operation, Redacted, TagsAdded, Target, decode_journal_entry,
    encode_journal_entry,
};
use crate::query::query_spec;
use crate::read::Lookup;
use crate::removal::{self, RetentionRule};
use crate::replication::JournalApplied;

use super::Store;

/// The lifecycle journal's file name in a store directory.
pub(crate) const JOURNAL_FILE: &str = "LIFECYCLE";

/// The lifecycle state of an open store: the journal and what the next
/// entry continues from.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    /// The open journal; `None` until the store's first operation creates
    /// it (a store that never uses one has no journal file).
    journal: Option<Journal>,
    /// The sequence of the last entry (0: none).
    sequence: u64,
    /// The timestamp of the last entry; the next is never earlier.
    pub(super) timestamp_micros: u64,
    /// The retention rules in force, in the order they were first set.
    pub(super) rules: Vec<RetentionRule>,
}

/// Opens the journal of the store in `dir`, if it has one, and applies its
/// entries to `indexes`. Every position an entry names must be
/// in the recovered log (up to `head`), and the entries' sequences must
/// follow each other: anything else is corruption.
pub(crate) fn open(
    fs: Arc<dyn FileSystem>,
    dir: &Path,
    indexes: &Indexes,
    reader: &WalReader,
    head: u64,
) -> Result<Lifecycle> {
    let path = dir.join(JOURNAL_FILE);
    let exists = fs.exists(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    if !exists {
        check_purge(dir, indexes, 0)?;
        return Ok(Lifecycle {
            fs,
            path,
            journal: None,
            sequence: 0,
            timestamp_micros: 0,
            rules: Vec::new(),
        });
    }
    let opened = Journal::open(fs.clone(), &path)?;
    let entries = lc::check_journal_entries(&path, &opened.entries, head)?;
    let mut lifecycle = Lifecycle {
        fs,
        path,
        journal: Some(opened.journal),
        sequence: 0,
        timestamp_micros: 0,
        rules: Vec::new(),
    };
    for (entry, lists) in &entries {
        lifecycle.apply(indexes, reader, &entry.operation, lists, entry.sequence)?;
        lifecycle.sequence = entry.sequence;
        lifecycle.timestamp_micros = entry.timestamp_micros;
    }
    check_purge(dir, indexes, lifecycle.sequence)?;
    indexes.count_purged_removals();
    Ok(lifecycle)
}

/// Refuses an index purged of removals that the journal, which ends at
/// `sequence`, does not hold: it would lose events no removal hid.
fn check_purge(dir: &Path, indexes: &Indexes, sequence: u64) -> Result<()> {
    let purged = indexes.purged_sequence();
    if purged > sequence {
        return Err(Error::Corruption {
            file: dir.join(gesta_compaction::manifest::FILE_NAME),
            offset: 0,
            reason: format!(
                "the index runs were purged of the removals up to lifecycle entry {purged}, but the journal ends at entry {sequence}; `gesta verify --repair` rebuilds the index from the log"
            ),
        });
    }
    Ok(())
}

/// The index keys the events at `positions` carry (their type, tags —
/// added ones too — and stream; each key once per event), for the
/// listings to stop counting them once removed.
fn keys_of(indexes: &Indexes, reader: &WalReader, positions: &[u64]) -> Result<Vec<Key>> {
    let mut lookup = Lookup::new(reader.clone(), indexes.amendments().clone());
    let mut keys = Vec::new();
    for &p in positions {
        let e = lookup.event_ref(p)?;
        keys.push(Key::event_type(e.event_type));
        let tags: Vec<Key> = e.tags.map(Key::tag).collect();
        for (i, tag) in tags.iter().enumerate() {
            if !tags[..i].contains(tag) {
                keys.push(tag.clone());
            }
        }
        keys.extend(e.stream.map(Key::stream));
    }
    Ok(keys)
}

/// What applying an operation needs that can fail to work out (reading
/// the removed events' keys, checking a retention rule): worked out before
/// its entry is written, so that once the entry is durable nothing is left
/// that could fail and leave it committed but not applied.
enum Prepared {
    /// Nothing beyond the operation and its lists.
    Nothing,
    /// A removal: the index keys each list's events carry.
    Keys(Vec<Vec<Key>>),
    /// A retention rule: the rules in force once it is set.
    Rules(Vec<RetentionRule>),
}

impl Lifecycle {
    /// Applies an operation to what queries and reads see: `lists` are
    /// what its journal entry says it did.
    fn apply(
        &mut self,
        indexes: &Indexes,
        reader: &WalReader,
        operation: &Operation,
        lists: &[Vec<u64>],
        sequence: u64,
    ) -> Result<()> {
        let prepared = self.prepare(indexes, reader, operation, lists, sequence)?;
        self.apply_prepared(indexes, operation, lists, sequence, prepared);
        Ok(())
    }

    /// What applying `operation` as entry `sequence` needs; changes
    /// nothing.
    fn prepare(
        &self,
        indexes: &Indexes,
        reader: &WalReader,
        operation: &Operation,
        lists: &[Vec<u64>],
        sequence: u64,
    ) -> Result<Prepared> {
        Ok(match operation {
            Operation::AddTags { .. } | Operation::Redact { .. } => Prepared::Nothing,
            Operation::Remove { .. } => {
                // A removal the runs were purged of: what its events still
                // count is in the MANIFEST (counted once the replay is
                // done), so they are not read again.
                let purged = sequence <= indexes.purged_sequence();
                Prepared::Keys(
                    lists
                        .iter()
                        .map(|removed| match purged {
                            true => Ok(Vec::new()),
                            false => keys_of(indexes, reader, removed),
                        })
                        .collect::<Result<_>>()?,
                )
            }
            Operation::SetRetention { rule } => {
                Prepared::Rules(removal::with_rule(&self.rules, rule)?)
            }
        })
    }

    /// Applies `operation`, with what [`prepare`](Self::prepare) worked
    /// out for it; cannot fail.
    fn apply_prepared(
        &mut self,
        indexes: &Indexes,
        operation: &Operation,
        lists: &[Vec<u64>],
        sequence: u64,
        prepared: Prepared,
    ) {
        match prepared {
            Prepared::Keys(keys) => {
                for (removed, keys) in lists.iter().zip(keys) {
                    indexes.remove(removed, keys, sequence);
                }
            }
            Prepared::Rules(rules) => self.rules = rules,
            Prepared::Nothing => match operation {
                Operation::AddTags { tags, .. } => indexes.add_tags(tags, lists),
                Operation::Redact { .. } => {
                    for erased in lists {
                        indexes.amendments().redact(erased);
                    }
                }
                // Prepared with what they need (above).
                Operation::Remove { .. } | Operation::SetRetention { .. } => {}
            },
        }
    }

    /// Appends an entry, creating the journal first if the store has none.
    fn append(&mut self, body: &[u8]) -> Result<()> {
        let journal = match &mut self.journal {
            Some(journal) => journal,
            None => {
                let created = Journal::open(self.fs.clone(), &self.path)?;
                self.journal.insert(created.journal)
            }
        };
        Ok(journal.append(body)?)
    }
}

impl Store {
    /// Adds `tags` to committed events; see
    /// [`EventStore::add_tags`](crate::EventStore::add_tags) and the
    /// [`lifecycle`](crate::lifecycle) contract.
    pub fn add_tags(&self, target: &Target, tags: &[String]) -> Result<TagsAdded> {
        self.writable()?;
        let tags = lc::check_add_tags(target, tags)?;
        let mut lifecycle = self.lifecycle()?;
        let head = self.head();
        let positions = self.resolve(target, head)?;
        let inner = &self.inner;
        let mut lookup = Lookup::new(inner.reader.clone(), inner.indexes.amendments().clone());
        let (gained, result) = lc::plan_tags(&positions, &tags, |p| {
            Ok(lookup.event_ref(p)?.tags.map(str::to_owned).collect())
        })?;
        let operation = Operation::AddTags {
            tags,
            target: target.clone(),
            result,
        };
        self.commit(&mut lifecycle, head, operation, &gained)?;
        Ok(result)
    }

    /// Erases the data and metadata of committed events; see
    /// [`EventStore::redact`](crate::EventStore::redact) and the
    /// [`lifecycle`](crate::lifecycle) contract. The bytes leave the
    /// store's files at the next [`compact`](Store::compact).
    pub fn redact(&self, target: &Target) -> Result<Redacted> {
        self.writable()?;
        lc::check_target(target)?;
        let mut lifecycle = self.lifecycle()?;
        let head = self.head();
        let positions = self.resolve(target, head)?;
        let amendments = self.inner.indexes.amendments();
        let (erased, result) = lc::plan_redact(&positions, |p| Ok(amendments.is_redacted(p)))?;
        let operation = Operation::Redact {
            target: target.clone(),
            result,
        };
        self.commit(&mut lifecycle, head, operation, &[erased])?;
        Ok(result)
    }

    /// The lifecycle state, locked: one operation at a time.
    pub(super) fn lifecycle(&self) -> Result<parking_lot::MutexGuard<'_, Lifecycle>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(self.inner.lifecycle.lock())
    }

    /// The positions a target names at `head`, ascending, each once,
    /// without the removed ones.
    pub(super) fn resolve(&self, target: &Target, head: u64) -> Result<Vec<u64>> {
        let amendments = self.inner.indexes.amendments();
        match target {
            Target::Positions(p) => {
                let mut positions = lc::check_positions(p, head)?;
                positions.retain(|&p| !amendments.is_removed(p));
                Ok(positions)
            }
            Target::Query(q) => {
                let view = self.inner.indexes.view();
                let cursor = view.evaluate(&query_spec(q));
                let found: Vec<u64> =
                    Positions::new(cursor, 1, head, gesta_index::Direction::Forwards)
                        .take(lc::MAX_TARGETED_EVENTS + 1)
                        .collect();
                lc::check_targeted(found.len())?;
                Ok(found)
            }
        }
    }

    /// Commits an operation made at `head`: the log made durable up to
    /// it, the entry written to the journal, then the operation applied.
    pub(super) fn commit(
        &self,
        lifecycle: &mut Lifecycle,
        head: u64,
        operation: Operation,
        lists: &[Vec<u64>],
    ) -> Result<()> {
        let inner = &self.inner;
        inner.make_durable(head)?;
        let timestamp_micros = inner.clock.now_micros().max(lifecycle.timestamp_micros);
        let entry = AuditEntry {
            sequence: lifecycle.sequence + 1,
            timestamp_micros,
            head,
            operation,
        };
        let prepared = lifecycle.prepare(
            &inner.indexes,
            &inner.reader,
            &entry.operation,
            lists,
            entry.sequence,
        )?;
        lifecycle.append(&encode_journal_entry(&entry, lists))?;
        lifecycle.sequence = entry.sequence;
        lifecycle.timestamp_micros = timestamp_micros;
        lifecycle.apply_prepared(
            &inner.indexes,
            &entry.operation,
            lists,
            entry.sequence,
            prepared,
        );
        Ok(())
    }

    /// Applies the entries of a writer's lifecycle journal (`bytes`: the
    /// whole file) that this replica lacks, in order, each once the
    /// replica's head has reached the head it was made at: written to
    /// the replica's journal with the same bytes, then applied as the
    /// writer applied it. The entries the replica holds must be the first
    /// of the writer's, byte for byte.
    pub(super) fn replicate_journal(&self, bytes: &[u8]) -> Result<JournalApplied> {
        let from = Path::new("(the writer's lifecycle journal)");
        let (bodies, _) = journal::parse(from, bytes)?;
        let head = self.head();
        let mut lifecycle = self.lifecycle()?;
        let held = usize::try_from(lifecycle.sequence).unwrap_or(usize::MAX);
        let diverged = || {
            Error::invalid(format!(
                "the writer's lifecycle journal is not the one the replica holds (its first {held} \
                 entries differ, or it has fewer)"
            ))
        };
        if bodies.len() < held {
            return Err(diverged());
        }
        if held > 0 {
            let (ours, _) = journal::read(lifecycle.fs.as_ref(), &lifecycle.path)?;
            if ours.get(..held) != Some(&bodies[..held]) {
                return Err(diverged());
            }
        }
        let inner = &self.inner;
        let mut applied = 0;
        let mut offset = journal::JOURNAL_HEADER_LEN as u64;
        for body in &bodies[..held] {
            offset += (journal::ENTRY_FRAME_LEN + body.len()) as u64;
        }
        for body in &bodies[held..] {
            let (entry, lists) =
                decode_journal_entry(body).map_err(|e| lc::journal_corruption(from, offset, e))?;
            if entry.sequence != lifecycle.sequence + 1 {
                return Err(lc::journal_corruption(
                    from,
                    offset,
                    Error::invalid(format!(
                        "entry {} follows entry {}",
                        entry.sequence, lifecycle.sequence
                    )),
                ));
            }
            if entry.head > head {
                break;
            }
            // As on the writer: the journal never names a position the log
            // could lose.
            inner.make_durable(entry.head)?;
            let prepared = lifecycle.prepare(
                &inner.indexes,
                &inner.reader,
                &entry.operation,
                &lists,
                entry.sequence,
            )?;
            lifecycle.append(body)?;
            lifecycle.sequence = entry.sequence;
            lifecycle.timestamp_micros = entry.timestamp_micros;
            lifecycle.apply_prepared(
                &inner.indexes,
                &entry.operation,
                &lists,
                entry.sequence,
                prepared,
            );
            applied += 1;
            offset += (journal::ENTRY_FRAME_LEN + body.len()) as u64;
        }
        Ok(JournalApplied {
            applied,
            waiting: (bodies.len() - held) as u64 - applied,
            sequence: lifecycle.sequence,
        })
    }

    /// The audit trail from sequence `after + 1`, at most `limit` entries;
    /// see [`EventStore::audit_log`](crate::EventStore::audit_log).
    pub fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        lc::check_audit_page(limit)?;
        let lifecycle = self.inner.lifecycle.lock();
        if after >= lifecycle.sequence {
            return Ok(Vec::new());
        }
        let path = lifecycle.path.clone();
        let (bodies, _) = journal::read(lifecycle.fs.as_ref(), &path)?;
        let mut out = Vec::new();
        let mut offset = journal::JOURNAL_HEADER_LEN as u64;
        // Entries are numbered from 1 in order (checked on open): the
        // first `after` are skipped undecoded.
        for (i, body) in bodies.iter().enumerate() {
            let at = offset;
            offset += (journal::ENTRY_FRAME_LEN + body.len()) as u64;
            if (i as u64) < after {
                continue;
            }
            if out.len() == limit {
                break;
            }
            let (entry, _) =
                decode_journal_entry(body).map_err(|e| lc::journal_corruption(&path, at, e))?;
            out.push(entry);
        }
        Ok(out)
    }
}
