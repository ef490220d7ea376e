//! Changes to committed events after the fact — retroactive tags and
//! redaction — and the audit trail that records each one: the types every store
//! shares, the input checks, the rule that decides which events an
//! operation changes, and the one binary form of an audit entry (what the
//! engine's lifecycle journal holds, and the SQL stores keep in a column).
//!
//! # Retroactive tags: the contract
//!
//! [`EventStore::add_tags`](crate::EventStore::add_tags)`(target, tags)`
//! adds tags to events already committed:
//!
//! - The target is a list of positions or a query, resolved once, when the
//!   operation commits, against the events committed then (their tags
//!   including any added earlier). Positions may repeat and come in any
//!   order; each must be a committed position (1 to the head).
//! - Each tag is added to each targeted event that does not carry it yet,
//!   after the event's own tags, in the order of `tags` (a tag repeated in
//!   `tags` counts once). An event that carries a tag already keeps it
//!   where it is, once.
//! - From the moment `add_tags` returns, reads, queries, listings and
//!   conditions see the added tags: a read returns them in the event's
//!   `tags`, a query for one of them finds the event, a listing counts it.
//! - **Positions never move.** An operation consumes no position and the
//!   head stays where it was. So a DCB condition (`fail_if_events_match`
//!   with `after`) sees the tags an event carries when the condition is
//!   checked, but only on events after `after`: tagging an event at or
//!   before `after` does not make the condition fail. A decision that
//!   must take retroactive tags into account reads again before it
//!   appends.
//! - **Subscriptions are not replayed.** A subscription delivers each event
//!   once, with the tags it had when it was read; an operation does not
//!   deliver an event again, nor deliver an old event to a subscription
//!   whose query it now matches.
//! - Removing tags is not offered: a decision that checked "no event
//!   carries tag T after position P" must not be undone by changing the
//!   past under it.
//! - Checked first, each a typed [`Error::InvalidInput`] that changes
//!   nothing: the tags (1 to [`MAX_TAGS`] of them, each 1 to
//!   [`MAX_NAME_LEN`] bytes), the target (a valid query, or 1 to
//!   [`MAX_TARGETED_EVENTS`] positions, each within 1 to the head), the
//!   number of events it targets (at most [`MAX_TARGETED_EVENTS`]), that
//!   the events times the tags are at most [`MAX_TAGGINGS`], and that no
//!   event would carry more than [`MAX_TAGS`] tags.
//!
//! # Redaction: the contract
//!
//! [`EventStore::redact`](crate::EventStore::redact)`(target)` erases the
//! data and metadata of committed events (the right to erasure):
//!
//! - The target is resolved as for `add_tags` (positions, each 1 to the
//!   head, or a query resolved when the operation commits; at most
//!   [`MAX_TARGETED_EVENTS`]).
//! - **What goes:** each targeted event's data and metadata. From the
//!   moment `redact` returns, every read — by query, scan, stream, id,
//!   subscription — returns the event with empty data and empty metadata.
//! - **What stays:** the event's position, type, tags (its own and added
//!   ones), stream and revision, id and commit time. So the history keeps
//!   its shape: positions, stream revisions, listings and every DCB
//!   condition and expected revision answer exactly as before, and no
//!   other event's meaning changes. Put nothing personal in types, tags,
//!   stream names or ids.
//! - **Bytes:** on the engine the erased bytes stay in the log's files
//!   until [`Store::compact`](crate::Store::compact) returns: it rewrites
//!   every segment that holds one (sealing the active segment first if it
//!   does), so that no file of the store holds them — plain or compressed —
//!   and deletes every snapshot, of any key, taken at or after the first
//!   event it erased, or at or after the lowest stream revision of one
//!   (a snapshot may hold state folded from the data, and its number may
//!   be a position or a stream revision: [`snapshots_erased_from`]; a
//!   load then falls back to an older one, or none). Cursors, the MANIFEST,
//!   offset tables and index runs never hold data. The SQL stores and the
//!   in-memory reference erase the column values in place, and delete the
//!   same snapshots, in the redaction itself; the SQL stores' files are
//!   theirs to compact.
//! - Redacting an event already redacted changes nothing (the result
//!   counts it as targeted, not redacted); redaction cannot be undone.
//! - Checked first, each [`Error::InvalidInput`] changing nothing: the
//!   target, as for `add_tags`.
//!
//! # Both: idempotent retries
//!
//! A batch with ids re-sent after its events were tagged or redacted is
//! still recognised as the retry it is (answered with its original
//! positions, nothing appended): it is compared with the events as they
//! were appended — their own tags, not those added since — and a redacted
//! event's data and metadata, which are gone, are not compared.
//!
//! Every operation that passes the checks is recorded in the audit trail
//! ([`EventStore::audit_log`](crate::EventStore::audit_log)), durably and
//! atomically with its effect, even when it changed no event. The trail
//! records what was asked (the tags, the positions or query given) and
//! what it did — never an event's data.
//!
//! [`Error::InvalidInput`]: crate::Error::InvalidInput

use std::path::Path;

use crate::error::{Error, Result};
use crate::event::{MAX_NAME_LEN, MAX_TAGS};
use crate::query::{Query, QueryItem};
use crate::removal::{Removal, Removed, RetentionRule, RetentionScope};

pub use crate::target::{
    MAX_TARGETED_EVENTS, Target, check_positions, check_target, check_targeted,
};

/// What [`add_tags`](crate::EventStore::add_tags) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagsAdded {
    /// How many events the target named.
    pub targeted: u64,
    /// How many of them gained at least one tag.
    pub tagged: u64,
}

/// What [`redact`](crate::EventStore::redact) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Redacted {
    /// How many events the target named.
    pub targeted: u64,
    /// How many of them were not redacted before.
    pub redacted: u64,
}

/// One lifecycle operation as the audit trail records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// [`redact`](crate::EventStore::redact).
    Redact {
        /// The target as given.
        target: Target,
        /// What it did.
        result: Redacted,
    },
    /// A removal: [`remove`](crate::EventStore::remove),
    /// [`delete_stream`](crate::EventStore::delete_stream),
    /// [`truncate_stream`](crate::EventStore::truncate_stream), or a
    /// retention rule enforced.
    Remove {
        /// What was asked.
        removal: Removal,
        /// What it did.
        result: Removed,
    },
    /// [`set_retention`](crate::EventStore::set_retention).
    SetRetention {
        /// The rule set (without limits: the scope's rule cleared).
        rule: RetentionRule,
    },
    /// [`add_tags`](crate::EventStore::add_tags).
    AddTags {
        /// The tags asked for, each once, in the order given.
        tags: Vec<String>,
        /// The target as given.
        target: Target,
        /// What it did.
        result: TagsAdded,
    },
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its number: 1 for a store's first operation, then one more each.
    pub sequence: u64,
    /// When it committed, microseconds since the Unix epoch.
    pub timestamp_micros: u64,
    /// The store's head when it committed: the operation saw the events up
    /// to this position.
    pub head: u64,
    /// What was done.
    pub operation: Operation,
}

/// Checks the page size of an [`audit_log`](crate::EventStore::audit_log)
/// call: 1 to [`MAX_LIST_LIMIT`](crate::listing::MAX_LIST_LIMIT).
pub fn check_audit_page(limit: usize) -> Result<()> {
    let max = crate::listing::MAX_LIST_LIMIT;
    if limit == 0 || limit > max {
        return Err(Error::invalid(format!(
            "an audit page holds 1 to {max} entries, not {limit}"
        )));
    }
    Ok(())
}

/// Which of the targeted `positions` a redaction erases (those not
/// redacted yet, as `is_redacted` answers), and its result.
pub fn plan_redact(
    positions: &[u64],
    mut is_redacted: impl FnMut(u64) -> Result<bool>,
) -> Result<(Vec<u64>, Redacted)> {
    let mut erased = Vec::new();
    for &p in positions {
        if !is_redacted(p)? {
            erased.push(p);
        }
    }
    let result = Redacted {
        targeted: positions.len() as u64,
        redacted: erased.len() as u64,
    };
    Ok((erased, result))
}

/// The least snapshot number an erasure of `erased` (each event's
/// position, and its stream revision if it has one) deletes from, on every
/// key: a snapshot at or after an erased event's position may hold state
/// folded from its data, and so may one at or after its revision, since a
/// snapshot's number may be a stream revision. `None` when nothing is
/// erased.
pub fn snapshots_erased_from(erased: impl IntoIterator<Item = (u64, Option<u64>)>) -> Option<u64> {
    erased
        .into_iter()
        .map(|(position, revision)| revision.map_or(position, |r| r.min(position)))
        .min()
}

/// Checks the input of an `add_tags` before anything is read: the tags
/// and the target's shape. Returns the tags, each once, in order.
pub fn check_add_tags(target: &Target, tags: &[String]) -> Result<Vec<String>> {
    if tags.is_empty() {
        return Err(Error::invalid("add_tags needs at least one tag"));
    }
    let mut unique: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if tag.is_empty() || tag.len() > MAX_NAME_LEN {
            return Err(Error::invalid(format!(
                "tag {tag:?}: a tag must be 1 to {MAX_NAME_LEN} bytes"
            )));
        }
        if !unique.contains(tag) {
            unique.push(tag.clone());
        }
    }
    if unique.len() > MAX_TAGS {
        return Err(Error::invalid(format!(
            "{} tags, an event carries at most {MAX_TAGS}",
            unique.len()
        )));
    }
    check_target(target)?;
    Ok(unique)
}

/// Most (event, tag) pairs one `add_tags` may name: its targeted events
/// times its tags. So its journal entry stays well under the journal's
/// largest entry (each pair is at most a 10-byte varint, 40 MB in all),
/// and the memory to plan it bounded (32 MB of positions): tag more in
/// several calls.
pub const MAX_TAGGINGS: usize = 4_000_000;

/// Which of `tags` each targeted event gains: for each tag (in order), the
/// positions (ascending) of the events that do not carry it yet. `current`
/// answers an event's tags as they are now. Fails, changing nothing and
/// before reading any event, if the call names more than [`MAX_TAGGINGS`]
/// (event, tag) pairs; and if an event would carry more than [`MAX_TAGS`]
/// tags.
pub fn plan_tags(
    positions: &[u64],
    tags: &[String],
    mut current: impl FnMut(u64) -> Result<Vec<String>>,
) -> Result<(Vec<Vec<u64>>, TagsAdded)> {
    if positions.len().saturating_mul(tags.len()) > MAX_TAGGINGS {
        return Err(Error::invalid(format!(
            "add_tags of {} tags to {} events names {} (event, tag) pairs, at most {MAX_TAGGINGS} \
             per call: tag them in several calls",
            tags.len(),
            positions.len(),
            positions.len().saturating_mul(tags.len())
        )));
    }
    let mut gained: Vec<Vec<u64>> = vec![Vec::new(); tags.len()];
    let mut tagged = 0u64;
    for &p in positions {
        let has = current(p)?;
        let mut added = 0;
        for (tag, list) in tags.iter().zip(gained.iter_mut()) {
            if !has.contains(tag) {
                list.push(p);
                added += 1;
            }
        }
        if has.len() + added > MAX_TAGS {
            return Err(Error::invalid(format!(
                "the event at position {p} would carry {} tags, the limit is {MAX_TAGS}",
                has.len() + added
            )));
        }
        tagged += u64::from(added > 0);
    }
    let result = TagsAdded {
        targeted: positions.len() as u64,
        tagged,
    };
    Ok((gained, result))
}

// --- The binary form ---------------------------------------------------
//
// An audit entry: kind (1 byte: 1 = add tags, 2 = redact), sequence,
// timestamp and head (8 bytes each), then the operation. Add tags: the
// tags (varint count, each a varint length and UTF-8), the target (1 byte:
// 0 positions — varint count, then each as a varint delta from the
// previous; 1 query — varint item count, each item's types then tags as
// name lists), the result (two varints). Redact: the target, the result.
// The engine's journal appends, after an entry, what it did: for add tags,
// for each tag the positions that gained it; for redact, the positions it
// erased (position lists).
//
// Remove (kind 3): the removal (1 byte: 0 a target, as above; 1 a stream
// — its name, then 0 or 1 and the revision `before` as a varint; 2 a
// retention rule), the result (two varints); the journal adds the
// positions removed. Set retention (kind 4): the rule — its scope (1 byte:
// 0 a stream name, 1 a query as in a target), then the maximum age and
// the maximum count, each 0 (none) or 1 and a varint.

const KIND_ADD_TAGS: u8 = 1;
const KIND_REDACT: u8 = 2;
const KIND_REMOVE: u8 = 3;
const KIND_SET_RETENTION: u8 = 4;
const REMOVAL_TARGET: u8 = 0;
const REMOVAL_STREAM: u8 = 1;
const REMOVAL_RETENTION: u8 = 2;
const SCOPE_STREAM: u8 = 0;
const SCOPE_QUERY: u8 = 1;
const TARGET_POSITIONS: u8 = 0;
const TARGET_QUERY: u8 = 1;

/// The portable binary form of an audit entry, for stores that keep the
/// trail as bytes (the SQL stores); [`decode_entry`] reads it back.
pub fn encode_entry(entry: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::new();
    put_entry(&mut out, entry);
    out
}

/// Reads an entry written by [`encode_entry`]; anything else, or bytes
/// after it, is [`Error::InvalidInput`] naming what was wrong.
pub fn decode_entry(bytes: &[u8]) -> Result<AuditEntry> {
    let mut r = Reader { b: bytes };
    let entry = r.entry()?;
    if !r.b.is_empty() {
        return Err(Error::invalid("audit entry: bytes after its end"));
    }
    Ok(entry)
}

/// The portable binary form of a retention rule (as an audit entry holds
/// it), for stores that keep their rules as bytes; [`decode_rule`] reads
/// it back.
pub fn encode_rule(rule: &RetentionRule) -> Vec<u8> {
    let mut out = Vec::new();
    put_rule(&mut out, rule);
    out
}

/// Reads a rule written by [`encode_rule`]; anything else is
/// [`Error::InvalidInput`].
pub fn decode_rule(bytes: &[u8]) -> Result<RetentionRule> {
    let mut r = Reader { b: bytes };
    let rule = r.rule()?;
    if !r.b.is_empty() {
        return Err(Error::invalid("retention rule: bytes after its end"));
    }
    Ok(rule)
}

/// An entry of the engine's lifecycle journal: the audit entry, then for
/// each of its tags the positions that gained it.
pub(crate) fn encode_journal_entry(entry: &AuditEntry, gained: &[Vec<u64>]) -> Vec<u8> {
    // For a redaction, `gained` is one list: the positions erased.
    let mut out = encode_entry(entry);
    for list in gained {
        put_positions(&mut out, list);
    }
    out
}

/// Reads a journal entry back: the audit entry and the positions each of
/// its tags was added to (ascending, each a committed position no later
/// than the entry's head — anything else is refused).
pub(crate) fn decode_journal_entry(bytes: &[u8]) -> Result<(AuditEntry, Vec<Vec<u64>>)> {
    let mut r = Reader { b: bytes };
    let entry = r.entry()?;
    let lists = match &entry.operation {
        Operation::AddTags { tags, .. } => tags.len(),
        Operation::Redact { .. } | Operation::Remove { .. } => 1,
        Operation::SetRetention { .. } => 0,
    };
    let mut gained = Vec::with_capacity(lists);
    for _ in 0..lists {
        let list = r.positions()?;
        let ascending = list.windows(2).all(|w| w[0] < w[1]);
        if !ascending || list.first() == Some(&0) || list.last() > Some(&entry.head) {
            return Err(Error::invalid(
                "journal entry: positions out of order or past the entry's head",
            ));
        }
        gained.push(list);
    }
    if !r.b.is_empty() {
        return Err(Error::invalid("journal entry: bytes after its end"));
    }
    Ok((entry, gained))
}

pub(crate) fn journal_corruption(path: &Path, offset: u64, e: Error) -> Error {
    let reason = match e {
        Error::InvalidInput { reason } => reason,
        other => other.to_string(),
    };
    Error::Corruption {
        file: path.to_owned(),
        offset,
        reason,
    }
}

/// Decodes a journal's entries and checks them: each well formed, the
/// sequences following each other from 1, each made at a head no later
/// than the log's `head` (so every position it names is in the log).
/// Anything else is corruption at the entry's offset.
pub(crate) fn check_journal_entries(
    path: &Path,
    bodies: &[Vec<u8>],
    head: u64,
) -> Result<Vec<(AuditEntry, Vec<Vec<u64>>)>> {
    let mut out: Vec<(AuditEntry, Vec<Vec<u64>>)> = Vec::with_capacity(bodies.len());
    let mut offset = gesta_wal::journal::JOURNAL_HEADER_LEN as u64;
    for body in bodies {
        let (entry, gained) =
            decode_journal_entry(body).map_err(|e| journal_corruption(path, offset, e))?;
        let sequence = out.last().map_or(0, |(e, _)| e.sequence);
        if entry.sequence != sequence + 1 {
            return Err(journal_corruption(
                path,
                offset,
                Error::invalid(format!("entry {} follows entry {sequence}", entry.sequence)),
            ));
        }
        if entry.head > head {
            return Err(journal_corruption(
                path,
                offset,
                Error::invalid(format!(
                    "entry {} was made at head {}, but the log ends at {head}",
                    entry.sequence, entry.head
                )),
            ));
        }
        out.push((entry, gained));
        offset += (gesta_wal::journal::ENTRY_FRAME_LEN + body.len()) as u64;
    }
    Ok(out)
}

pub(crate) fn put_entry(out: &mut Vec<u8>, entry: &AuditEntry) {
    let kind = match &entry.operation {
        Operation::AddTags { .. } => KIND_ADD_TAGS,
        Operation::Redact { .. } => KIND_REDACT,
        Operation::Remove { .. } => KIND_REMOVE,
        Operation::SetRetention { .. } => KIND_SET_RETENTION,
    };
    out.push(kind);
    out.extend_from_slice(&entry.sequence.to_le_bytes());
    out.extend_from_slice(&entry.timestamp_micros.to_le_bytes());
    out.extend_from_slice(&entry.head.to_le_bytes());
    match &entry.operation {
        Operation::AddTags {
            tags,
            target,
            result,
        } => {
            put_names(out, tags);
            put_target(out, target);
            put_varint(out, result.targeted);
            put_varint(out, result.tagged);
        }
        Operation::Redact { target, result } => {
            put_target(out, target);
            put_varint(out, result.targeted);
            put_varint(out, result.redacted);
        }
        Operation::Remove { removal, result } => {
            match removal {
                Removal::Target(target) => {
                    out.push(REMOVAL_TARGET);
                    put_target(out, target);
                }
                Removal::Stream { stream, before } => {
                    out.push(REMOVAL_STREAM);
                    put_names(out, std::slice::from_ref(stream));
                    put_option(out, *before);
                }
                Removal::Retention(rule) => {
                    out.push(REMOVAL_RETENTION);
                    put_rule(out, rule);
                }
            }
            put_varint(out, result.targeted);
            put_varint(out, result.removed);
        }
        Operation::SetRetention { rule } => put_rule(out, rule),
    }
}

fn put_option(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
    }
}

fn put_rule(out: &mut Vec<u8>, rule: &RetentionRule) {
    match &rule.scope {
        RetentionScope::Stream(stream) => {
            out.push(SCOPE_STREAM);
            put_names(out, std::slice::from_ref(stream));
        }
        RetentionScope::Query(q) => {
            out.push(SCOPE_QUERY);
            put_query(out, q);
        }
    }
    put_option(out, rule.max_age_micros);
    put_option(out, rule.max_count);
}

fn put_query(out: &mut Vec<u8>, q: &Query) {
    put_varint(out, q.items.len() as u64);
    for item in &q.items {
        put_names(out, &item.types);
        put_names(out, &item.tags);
    }
}

fn put_target(out: &mut Vec<u8>, target: &Target) {
    match target {
        Target::Positions(p) => {
            out.push(TARGET_POSITIONS);
            put_positions(out, p);
        }
        Target::Query(q) => {
            out.push(TARGET_QUERY);
            put_query(out, q);
        }
    }
}

fn put_names(out: &mut Vec<u8>, names: &[String]) {
    put_varint(out, names.len() as u64);
    for n in names {
        put_varint(out, n.len() as u64);
        out.extend_from_slice(n.as_bytes());
    }
}

/// A list of positions: a varint count, then each as a varint difference
/// from the one before (the first from 0). Unsorted lists are written
/// with wrapping differences and read back as they were.
pub(crate) fn put_positions(out: &mut Vec<u8>, positions: &[u64]) {
    put_varint(out, positions.len() as u64);
    let mut prev = 0u64;
    for &p in positions {
        put_varint(out, p.wrapping_sub(prev));
        prev = p;
    }
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    crate::codec::put_varint(out, v);
}

/// A bounds-checked reader of the binary form.
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
}

impl Reader<'_> {
    fn fail<T>(what: &str) -> Result<T> {
        Err(Error::invalid(format!("audit entry: {what}")))
    }

    fn u8(&mut self) -> Result<u8> {
        let (&v, rest) = self
            .b
            .split_first()
            .map_or_else(|| Self::fail("ends early"), Ok)?;
        self.b = rest;
        Ok(v)
    }

    fn u64(&mut self) -> Result<u64> {
        let Some((v, rest)) = self.b.split_first_chunk::<8>() else {
            return Self::fail("ends early");
        };
        self.b = rest;
        Ok(u64::from_le_bytes(*v))
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                if shift == 63 && byte > 1 {
                    return Self::fail("a number overflows");
                }
                return Ok(v);
            }
        }
        Self::fail("a number is too long")
    }

    /// A count of items each at least `min_bytes` long, bounded by what is
    /// left, so that a damaged count cannot make a reader allocate.
    fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_bytes) <= self.b.len() => Ok(n),
            _ => Self::fail("a count exceeds the bytes left"),
        }
    }

    fn names(&mut self) -> Result<Vec<String>> {
        let n = self.count(1)?;
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.count(1)?;
            let (name, rest) = self.b.split_at(len);
            let Ok(name) = std::str::from_utf8(name) else {
                return Self::fail("a name is not UTF-8");
            };
            names.push(name.to_owned());
            self.b = rest;
        }
        Ok(names)
    }

    pub(crate) fn positions(&mut self) -> Result<Vec<u64>> {
        let n = self.count(1)?;
        let mut out = Vec::with_capacity(n);
        let mut prev = 0u64;
        for _ in 0..n {
            prev = prev.wrapping_add(self.varint()?);
            out.push(prev);
        }
        Ok(out)
    }

    pub(crate) fn entry(&mut self) -> Result<AuditEntry> {
        let kind = self.u8()?;
        if !(KIND_ADD_TAGS..=KIND_SET_RETENTION).contains(&kind) {
            return Self::fail("unknown operation");
        }
        let sequence = self.u64()?;
        let timestamp_micros = self.u64()?;
        let head = self.u64()?;
        let operation = if kind == KIND_REMOVE {
            let removal = match self.u8()? {
                REMOVAL_TARGET => Removal::Target(self.target()?),
                REMOVAL_STREAM => Removal::Stream {
                    stream: self.name()?,
                    before: self.option()?,
                },
                REMOVAL_RETENTION => Removal::Retention(self.rule()?),
                _ => return Self::fail("unknown removal"),
            };
            let result = Removed {
                targeted: self.varint()?,
                removed: self.varint()?,
            };
            Operation::Remove { removal, result }
        } else if kind == KIND_SET_RETENTION {
            Operation::SetRetention { rule: self.rule()? }
        } else if kind == KIND_ADD_TAGS {
            let tags = self.names()?;
            let target = self.target()?;
            let result = TagsAdded {
                targeted: self.varint()?,
                tagged: self.varint()?,
            };
            Operation::AddTags {
                tags,
                target,
                result,
            }
        } else {
            let target = self.target()?;
            let result = Redacted {
                targeted: self.varint()?,
                redacted: self.varint()?,
            };
            Operation::Redact { target, result }
        };
        Ok(AuditEntry {
            sequence,
            timestamp_micros,
            head,
            operation,
        })
    }

    fn target(&mut self) -> Result<Target> {
        Ok(match self.u8()? {
            TARGET_POSITIONS => Target::Positions(self.positions()?),
            TARGET_QUERY => Target::Query(self.query()?),
            _ => return Self::fail("unknown target"),
        })
    }

    fn query(&mut self) -> Result<Query> {
        let n = self.count(2)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let types = self.names()?;
            let tags = self.names()?;
            items.push(QueryItem { types, tags });
        }
        Ok(Query { items })
    }

    /// A name list of exactly one name.
    fn name(&mut self) -> Result<String> {
        let mut names = self.names()?;
        match (names.pop(), names.is_empty()) {
            (Some(name), true) => Ok(name),
            _ => Self::fail("a stream name list holds other than one name"),
        }
    }

    fn option(&mut self) -> Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.varint()?)),
            _ => Self::fail("an optional number is neither absent nor present"),
        }
    }

    fn rule(&mut self) -> Result<RetentionRule> {
        let scope = match self.u8()? {
            SCOPE_STREAM => RetentionScope::Stream(self.name()?),
            SCOPE_QUERY => RetentionScope::Query(self.query()?),
            _ => return Self::fail("unknown retention scope"),
        };
        Ok(RetentionRule {
            scope,
            max_age_micros: self.option()?,
            max_count: self.option()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: Target) -> AuditEntry {
        AuditEntry {
            sequence: 7,
            timestamp_micros: 1_700_000_000_000_000,
            head: 42,
            operation: Operation::AddTags {
                tags: vec!["a".into(), "é".into()],
                target,
                result: TagsAdded {
                    targeted: 3,
                    tagged: 2,
                },
            },
        }
    }

    #[test]
    fn entries_round_trip() {
        for target in [
            Target::Positions(vec![5, 1, 9, u64::MAX - 1]),
            Target::Query(Query::all()),
            Target::Query(
                Query::item(QueryItem::new().event_type("T").tag("x"))
                    .or(QueryItem::new().tags(["y", "z"])),
            ),
        ] {
            let e = entry(target);
            assert_eq!(decode_entry(&encode_entry(&e)).unwrap(), e);
        }
    }

    #[test]
    fn removals_and_rules_round_trip() {
        let rule = RetentionRule::query(Query::tag("x").or(QueryItem::new().event_type("T")))
            .max_age(std::time::Duration::from_secs(3600))
            .max_count(7);
        let operations = [
            Operation::Remove {
                removal: Removal::Target(Target::Positions(vec![3, 1])),
                result: Removed {
                    targeted: 2,
                    removed: 1,
                },
            },
            Operation::Remove {
                removal: Removal::Stream {
                    stream: "s-1".into(),
                    before: Some(4),
                },
                result: Removed::default(),
            },
            Operation::Remove {
                removal: Removal::Stream {
                    stream: "s-2".into(),
                    before: None,
                },
                result: Removed::default(),
            },
            Operation::Remove {
                removal: Removal::Retention(rule.clone()),
                result: Removed {
                    targeted: 9,
                    removed: 9,
                },
            },
            Operation::SetRetention { rule },
            Operation::SetRetention {
                rule: RetentionRule::stream("s"),
            },
        ];
        for operation in operations {
            let e = AuditEntry {
                operation,
                ..entry(Target::Positions(vec![1]))
            };
            let bytes = encode_entry(&e);
            assert_eq!(decode_entry(&bytes).unwrap(), e);
            if let Operation::SetRetention { rule } = &e.operation {
                assert_eq!(&decode_rule(&encode_rule(rule)).unwrap(), rule);
                assert!(decode_rule(&[encode_rule(rule), vec![0]].concat()).is_err());
            }
            for cut in 0..bytes.len() {
                assert!(decode_entry(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn journal_entries_round_trip_and_refuse_positions_past_the_head() {
        let e = entry(Target::Query(Query::tag("x")));
        let gained = vec![vec![1, 5, 42], vec![]];
        let bytes = encode_journal_entry(&e, &gained);
        assert_eq!(decode_journal_entry(&bytes).unwrap(), (e.clone(), gained));
        for bad in [
            vec![vec![43], vec![]],
            vec![vec![5, 1], vec![]],
            vec![vec![0], vec![]],
        ] {
            assert!(decode_journal_entry(&encode_journal_entry(&e, &bad)).is_err());
        }
        assert!(decode_journal_entry(&encode_entry(&e)).is_err());
    }

    #[test]
    fn damaged_entries_are_refused_not_misread() {
        let bytes = encode_entry(&entry(Target::Positions(vec![1, 2, 3])));
        for cut in 0..bytes.len() {
            assert!(decode_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_entry(&longer).is_err());
        let mut bad_kind = bytes;
        bad_kind[0] = 9;
        assert!(decode_entry(&bad_kind).is_err());
    }

    #[test]
    fn checks_refuse_bad_input() {
        let t = Target::Positions(vec![1]);
        assert!(check_add_tags(&t, &[]).is_err());
        assert!(check_add_tags(&t, &[String::new()]).is_err());
        assert!(check_add_tags(&t, &["x".repeat(MAX_NAME_LEN + 1)]).is_err());
        assert!(check_add_tags(&Target::Positions(vec![]), &["a".into()]).is_err());
        assert_eq!(
            check_add_tags(&t, &["a".into(), "b".into(), "a".into()]).unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert!(check_positions(&[0], 5).is_err());
        assert!(check_positions(&[6], 5).is_err());
        assert_eq!(check_positions(&[3, 1, 3], 5).unwrap(), vec![1, 3]);
    }

    #[test]
    fn plans_skip_tags_an_event_has_and_enforce_the_limit() {
        let tags = vec!["a".to_owned(), "b".to_owned()];
        let (gained, result) = plan_tags(&[1, 2], &tags, |p| {
            Ok(if p == 1 { vec!["a".into()] } else { vec![] })
        })
        .unwrap();
        assert_eq!(gained, vec![vec![2], vec![1, 2]]);
        assert_eq!(
            result,
            TagsAdded {
                targeted: 2,
                tagged: 2
            }
        );
        let full = vec!["t".to_owned(); MAX_TAGS];
        assert!(plan_tags(&[1], &tags, |_| Ok(full.clone())).is_err());
        let (_, none) = plan_tags(&[1], &tags, |_| Ok(tags.clone())).unwrap();
        assert_eq!(none.tagged, 0);
    }

    /// More (event, tag) pairs than a journal entry holds are refused as
    /// bad input before any event is read; exactly the bound is planned.
    #[test]
    fn plans_are_bounded_in_events_times_tags() {
        let tags: Vec<String> = (0..4).map(|i| format!("t{i}")).collect();
        let positions: Vec<u64> = (1..=(MAX_TAGGINGS / 4) as u64).collect();
        let mut read = 0;
        let (gained, _) = plan_tags(&positions, &tags, |_| {
            read += 1;
            Ok(Vec::new())
        })
        .unwrap();
        assert_eq!(gained.iter().map(Vec::len).sum::<usize>(), MAX_TAGGINGS);
        let mut more = tags.clone();
        more.push("t4".into());
        let mut read_over = 0;
        let refused = plan_tags(&positions, &more, |_| {
            read_over += 1;
            Ok(Vec::new())
        });
        assert!(
            matches!(&refused, Err(Error::InvalidInput { reason }) if reason.contains("several calls")),
            "{refused:?}"
        );
        assert_eq!((read, read_over), (positions.len(), 0));
    }
}
