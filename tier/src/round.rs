//! One shipping round: a consistent copy of the store at its head `P`
//! (the engine's own online backup, into a staging directory beside the
//! store, where sealed files are hard links), then the upload of the
//! bytes the bucket lacks, then the checkpoint naming them all.
//!
//! A round that finds the store as the last one left it (the same head,
//! every file of its directory with the same length and modification
//! time) does nothing at all.
//!
//! What a round uploads, per file of the copy:
//!
//! - **Unchanged** (a hard link with the same inode, length and
//!   modification time as the file the last checkpoint was made from — a
//!   sealed segment, an index run or a snapshot the backup linked):
//!   nothing; not even read. A file the backup wrote afresh is never
//!   trusted by its identity: its inode number may be one the last round's
//!   copy freed.
//! - **Grown** (the file starts with exactly the bytes of the checkpoint's
//!   chunks for it, checked by their CRCs — the newest segment, which the
//!   backup copies up to `P`, or that segment once sealed): only the new
//!   bytes, as new chunk objects (now and then merged with the block's
//!   last small chunks, so a block keeps few chunks: see `layout`). So
//!   the log's tail costs about its own size per round, not its
//!   segment's.
//! - **Anything else** (new, or rewritten: compressed, erased, redacted,
//!   the MANIFEST, the lifecycle journal, cursors): the whole file, as new
//!   chunk objects.
//!
//! Chunk objects are never overwritten with other bytes: a key names the
//! uploading epoch, the file, the offset, the length and the CRC
//! (`data/e<epoch>/<path>/<offset>-<len>-<crc>`). So a fenced writer's
//! late uploads land beside the new writer's, never on them. Chunks that
//! the new checkpoint no longer names (a rewritten file's old bytes, the
//! MANIFEST before) are deleted once that checkpoint is written — that is
//! when an erasure leaves the bucket.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use crate::checkpoint::{Checkpoint, Chunk, FileEntry, chunk_key, plain_path};
use crate::error::{Error, Result, bucket, io_at};
use crate::fence::{self, Chain, Claim};
use crate::location::Location;

/// The most bytes in one chunk object (a larger file is several).
pub const CHUNK_BYTES: u64 = 8 << 20;

/// What identifies a local file's content without reading it: a hard link
/// of an immutable file keeps all of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Identity {
    /// Whether the file has another name: one the backup linked, whose
    /// inode the store's own name keeps from being freed and reused.
    fn is_link(meta: &std::fs::Metadata) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            meta.nlink() > 1
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            false
        }
    }

    fn of(meta: &std::fs::Metadata) -> Identity {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Identity {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            Identity {
                dev: 0,
                ino: 0,
                len: meta.len(),
                mtime_ns,
            }
        }
    }
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundReport {
    /// The head the bucket now restores to.
    pub head: u64,
    /// Files in the checkpoint.
    pub files: u64,
    /// Files that needed no upload.
    pub files_unchanged: u64,
    /// Chunk objects uploaded.
    pub objects_uploaded: u64,
    /// Bytes uploaded (chunks, then the checkpoint).
    pub bytes_uploaded: u64,
    /// Chunk objects deleted (no longer named).
    pub objects_deleted: u64,
    /// Time taken by the local backup into the staging directory.
    pub backup_time: Duration,
    /// Time taken by the whole round.
    pub time: Duration,
    /// The round found the store as the last one left it (the same head,
    /// and no file of the store's directory with another length or
    /// modification time) and did nothing: no backup, no request.
    pub idle: bool,
}

/// What a shipper carries from round to round.
pub(crate) struct State {
    pub claim: Claim,
    pub chain: Chain,
    /// The identity of the local file each checkpoint entry was made from.
    known: HashMap<String, Identity>,
    /// Chunk keys uploaded but not yet named by a checkpoint (a failed
    /// round's), so that the next round does not upload them again.
    uploaded: HashSet<String>,
    /// The store directory's files as the last successful round found
    /// them before its backup.
    fingerprint: Option<Vec<(PathBuf, u64, Option<std::time::SystemTime>)>>,
    pub staging: PathBuf,
    pub concurrency: usize,
}

impl State {
    pub fn new(claim: Claim, chain: Chain, staging: PathBuf, concurrency: usize) -> State {
        State {
            claim,
            chain,
            known: HashMap::new(),
            uploaded: HashSet::new(),
            fingerprint: None,
            staging,
            concurrency: concurrency.max(1),
        }
    }
}

/// A directory's contents: its directories' relative paths, and its
/// files' relative paths with their full paths.
type Tree = (Vec<String>, Vec<(String, PathBuf)>);

/// Every file and directory under `root`, as `/`-separated relative paths.
fn walk(root: &Path) -> Result<Tree> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut stack = vec![(String::new(), root.to_owned())];
    while let Some((rel, dir)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::InvalidInput(format!(
                    "{}: a file name that is not UTF-8",
                    entry.path().display()
                )));
            };
            let path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            if !plain_path(&path) {
                return Err(Error::InvalidInput(format!(
                    "{}: a file name the bucket layout cannot hold",
                    entry.path().display()
                )));
            }
            let kind = entry.file_type().map_err(io_at(&entry.path()))?;
            if kind.is_dir() {
                dirs.push(path.clone());
                stack.push((path, entry.path()));
            } else {
                files.push((path, entry.path()));
            }
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// A chunk to upload: its entry and the file its bytes are read from
/// when it is sent (so that a round holds at most a few chunks in memory).
struct Upload {
    chunk: Chunk,
    path: PathBuf,
}

/// Bytes `offset..offset + len` of the file at `path`.
fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(io_at(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_at(path))?;
    let mut buf = vec![0; len as usize];
    file.read_exact(&mut buf).map_err(io_at(path))?;
    Ok(buf)
}

/// One piece of a file's new layout: a chunk the bucket has, or bytes
/// to upload as a new chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    /// The `i`-th chunk kept from the checkpoint.
    Kept(usize),
    /// Bytes `offset..offset + len`, to upload.
    New { offset: u64, len: u64 },
}

/// The layout of a file of `len` bytes whose first chunks, `kept`, the
/// bucket already has.
///
/// New bytes are cut at multiples of [`CHUNK_BYTES`], so no chunk spans
/// two blocks. Within a block, the newest segment grows by a small chunk
/// per round; left alone, a block would gather thousands of them (each a
/// line of every later checkpoint and an object to fetch on restore). So
/// after each new piece, the last two pieces of a block are merged into
/// one new chunk while the older is no larger than the newer — a binary
/// counter: a block holds O(log n) chunks, and a byte is uploaded again
/// O(log n) times at most.
fn layout(kept: &[Chunk], len: u64) -> Vec<Piece> {
    let size = |p: &Piece| match *p {
        Piece::Kept(i) => (kept[i].offset, kept[i].len),
        Piece::New { offset, len } => (offset, len),
    };
    let mut pieces: Vec<Piece> = (0..kept.len()).map(Piece::Kept).collect();
    let mut at = kept.last().map_or(0, |c| c.offset + c.len);
    while at < len {
        let end = len.min((at / CHUNK_BYTES + 1) * CHUNK_BYTES);
        pieces.push(Piece::New {
            offset: at,
            len: end - at,
        });
        at = end;
        while let [.., older, newer] = pieces.as_slice() {
            let ((o_at, o_len), (n_at, n_len)) = (size(older), size(newer));
            if o_at / CHUNK_BYTES != n_at / CHUNK_BYTES || o_len > n_len {
                break;
            }
            pieces.truncate(pieces.len() - 2);
            pieces.push(Piece::New {
                offset: o_at,
                len: o_len + n_len,
            });
        }
    }
    pieces
}

/// Plans one file: the chunks of its checkpoint entry it can keep (its
/// first bytes are exactly theirs, by their CRCs), and the uploads of the
/// rest (see [`layout`]).
fn plan_file(
    epoch: u64,
    rel: &str,
    path: &Path,
    len: u64,
    previous: Option<&FileEntry>,
    uploads: &mut Vec<Upload>,
) -> Result<FileEntry> {
    let mut kept: &[Chunk] = &[];
    if let Some(previous) = previous.filter(|p| p.len <= len) {
        let mut same = true;
        for c in &previous.chunks {
            // Not by the CRC-32 alone: a file that ends with its own
            // CRC-32 has the same one whatever it holds (CRC_RESIDUE).
            if !c.holds(&read_range(path, c.offset, c.len)?) {
                same = false;
                break;
            }
        }
        if same {
            kept = &previous.chunks;
        }
    }
    let mut chunks = Vec::new();
    for piece in layout(kept, len) {
        match piece {
            Piece::Kept(i) => chunks.push(kept[i].clone()),
            Piece::New { offset, len: n } => {
                let (crc, key) = chunk_key(epoch, rel, offset, &read_range(path, offset, n)?);
                let chunk = Chunk {
                    offset,
                    len: n,
                    crc,
                    key,
                };
                chunks.push(chunk.clone());
                uploads.push(Upload {
                    chunk,
                    path: path.to_owned(),
                });
            }
        }
    }
    Ok(FileEntry {
        path: rel.to_owned(),
        len,
        chunks,
    })
}

/// For the eviction marker `rel` (`wal/<first>.evicted`, see the engine's
/// `Store::evict_segment`) at `path`, the previous checkpoint's entry for
/// the segment it stands for (`wal/<first>.seg`), which must hold the
/// length and CRC-32 the marker records: the segment's bytes are in the
/// bucket only, and the new checkpoint must keep naming them. A marker
/// the previous checkpoint cannot back fails the round (a checkpoint
/// without the segment would let its chunks be deleted). `None` for any
/// other file.
fn evicted_entry(rel: &str, path: &Path, previous: &Checkpoint) -> Result<Option<FileEntry>> {
    let Some(first) = rel
        .strip_prefix("wal/")
        .and_then(|n| n.strip_suffix(".evicted"))
        .filter(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(io_at(path))?;
    let marker = gesta::EvictedSegment::decode(&bytes).map_err(|reason| {
        Error::Store(gesta::Error::Corruption {
            file: path.to_owned(),
            offset: 0,
            reason: reason.to_owned(),
        })
    })?;
    let seg = format!("wal/{first}.seg");
    match previous.file(&seg) {
        Some(e) if e.len == marker.len && crate::chunks::file_crc(e) == marker.crc => {
            Ok(Some(e.clone()))
        }
        _ => Err(Error::InvalidInput(format!(
            "{seg} is evicted from the store, but the bucket's checkpoint does not hold its bytes \
             ({} bytes, CRC-32 {:08x}): was the store evicted against another prefix?",
            marker.len, marker.crc
        ))),
    }
}

/// The first index run that the MANIFEST in `dir` lists and `files` (the
/// `/`-separated paths of a copy of the store) lacks, if any.
pub(crate) fn unlisted_run<'a>(
    dir: &Path,
    files: impl Iterator<Item = &'a str>,
) -> Result<Option<String>> {
    let files: HashSet<&str> = files.collect();
    for run in gesta::inspect::listed_index_runs(dir)? {
        let rel = run
            .iter()
            .map(|part| part.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if !files.contains(rel.as_str()) {
            return Ok(Some(rel));
        }
    }
    Ok(None)
}

/// Removes a directory tree if it exists.
fn clear(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// Every file under `dir` with its length and modification time, sorted:
/// what changes whenever the store writes anything.
fn fingerprint(dir: &Path) -> Result<Vec<(PathBuf, u64, Option<std::time::SystemTime>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_at(&d))? {
            let entry = entry.map_err(io_at(&d))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed since it was listed: the store is changing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs one round; on success the bucket restores to the returned head.
/// On failure nothing is reported shipped, and the next round starts
/// afresh (keeping the chunks this one uploaded).
pub(crate) async fn run(
    store: &gesta::Store,
    location: &Location,
    state: &mut State,
) -> Result<RoundReport> {
    let started = Instant::now();
    // Nothing written since the last round's backup, and the same head:
    // that backup is what this one would be. An idle store costs a stat
    // of its files per interval, not a copy of its active segment.
    let head = store.head();
    let before = fingerprint(store.path())?;
    if head == state.chain.checkpoint.head && state.fingerprint.as_ref() == Some(&before) {
        return Ok(RoundReport {
            head,
            files: state.chain.checkpoint.files.len() as u64,
            files_unchanged: state.chain.checkpoint.files.len() as u64,
            time: started.elapsed(),
            idle: true,
            ..RoundReport::default()
        });
    }
    let copy = state.staging.join("round");
    clear(&copy)?;
    clear(&state.staging.join("round.partial"))?;
    std::fs::create_dir_all(&state.staging).map_err(io_at(&state.staging))?;
    let backup = store.backup(&copy)?;
    let backup_time = started.elapsed();
    let result = ship_copy(location, state, &copy, backup.position, backup_time).await;
    // The staging copy is only a means: hard links and a copy of the tail.
    let cleared = clear(&copy);
    let mut report = result?;
    cleared?;
    state.fingerprint = Some(before);
    report.time = started.elapsed();
    Ok(report)
}

async fn ship_copy(
    location: &Location,
    state: &mut State,
    copy: &Path,
    head: u64,
    backup_time: Duration,
) -> Result<RoundReport> {
    let epoch = state.claim.epoch;
    let (dirs, files) = walk(copy)?;
    if let Some(missing) = unlisted_run(copy, files.iter().map(|(rel, _)| rel.as_str()))? {
        // Never published: a checkpoint naming such a copy would not open.
        return Err(Error::Store(gesta::Error::Corruption {
            file: copy.join(&missing),
            offset: 0,
            reason: format!(
                "the round's copy of the store is inconsistent: its MANIFEST lists {missing}, which the copy does not hold"
            ),
        }));
    }
    let previous = state.chain.checkpoint.clone();
    let mut entries = Vec::with_capacity(files.len());
    let mut identities = HashMap::with_capacity(files.len());
    let mut uploads = Vec::new();
    let mut report = RoundReport {
        head,
        backup_time,
        ..RoundReport::default()
    };
    for (rel, path) in &files {
        if let Some(entry) = evicted_entry(rel, path, &previous)? {
            // An evicted segment's marker: the bucket's entry for the
            // segment is kept (its chunks are where its bytes are now);
            // the marker itself is a local file and is not shipped.
            entries.push(entry);
            report.files_unchanged += 1;
            continue;
        }
        let meta = std::fs::metadata(path).map_err(io_at(path))?;
        let identity = Identity::of(&meta);
        let before = previous.file(rel);
        match before {
            // Only a hard link is known by its identity: a file the backup
            // wrote afresh (the MANIFEST, the journal's prefix, cursors,
            // offset tables, the newest segment) may reuse the inode number
            // of the last round's copy, deleted since, with the same length
            // within one tick of the clock, and is read instead.
            Some(entry) if Identity::is_link(&meta) && state.known.get(rel) == Some(&identity) => {
                entries.push(entry.clone());
                report.files_unchanged += 1;
            }
            _ => {
                let entry = plan_file(epoch, rel, path, identity.len, before, &mut uploads)?;
                if before == Some(&entry) {
                    report.files_unchanged += 1;
                }
                entries.push(entry);
            }
        }
        identities.insert(rel.clone(), identity);
    }
    uploads.retain(|u| !state.uploaded.contains(&u.chunk.key));
    let store = location.store().clone();
    let mut pending = futures::stream::iter(uploads.into_iter().map(|u| {
        let store = store.clone();
        let key = location.key(&u.chunk.key);
        async move {
            // The staging copy does not change under the round: a linked
            // file is immutable, a copied one is the round's own.
            let bytes = read_range(&u.path, u.chunk.offset, u.chunk.len)?;
            if u.chunk.check(&bytes).is_err() {
                return Err(Error::InvalidInput(format!(
                    "{} changed while it was shipped",
                    u.path.display()
                )));
            }
            let len = bytes.len() as u64;
            store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(bucket(format!("upload {key}")))?;
            Ok::<_, Error>((u.chunk.key, len))
        }
    }))
    .buffer_unordered(state.concurrency);
    let mut failure = None;
    while let Some(done) = pending.next().await {
        match done {
            Ok((key, len)) => {
                state.uploaded.insert(key);
                report.objects_uploaded += 1;
                report.bytes_uploaded += len;
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let next = Checkpoint {
        epoch,
        writer: state.claim.writer.clone(),
        sequence: previous.sequence + 1,
        head,
        dirs,
        files: entries,
    };
    report.files = next.files.len() as u64;
    let encoded = next.encode().len() as u64;
    // A cheap early stop for a writer that was taken over; the
    // conditional write below is what guarantees it.
    fence::check(location, &state.claim).await?;
    fence::publish(location, &mut state.chain, next).await?;
    report.bytes_uploaded += encoded;
    state.known = identities;
    state.uploaded.clear();
    // Chunks the new checkpoint no longer names: an erased or rewritten
    // file's old bytes leave the bucket here. A failed delete leaves an
    // unnamed object behind, harmless, and is only logged.
    let named: HashSet<&str> = state.chain.checkpoint.keys().collect();
    for key in previous.keys().filter(|k| !named.contains(k)) {
        let key = location.key(key);
        match location.store().delete(&key).await {
            Ok(()) => report.objects_deleted += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => log::warn!("gesta-tier: could not delete {key}, left in the bucket: {e}"),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks a layout gives, as the bucket would then hold them.
    fn apply(kept: &[Chunk], pieces: &[Piece], uploaded: &mut u64) -> Vec<Chunk> {
        pieces
            .iter()
            .map(|p| match *p {
                Piece::Kept(i) => kept[i].clone(),
                Piece::New { offset, len } => {
                    *uploaded += len;
                    Chunk {
                        offset,
                        len,
                        crc: 0,
                        key: String::new(),
                    }
                }
            })
            .collect()
    }

    fn check_cover(chunks: &[Chunk], len: u64) {
        let mut at = 0;
        for c in chunks {
            assert_eq!(c.offset, at);
            assert!(c.len > 0);
            assert_eq!(
                c.offset / CHUNK_BYTES,
                (c.offset + c.len - 1) / CHUNK_BYTES,
                "{c:?} spans two blocks"
            );
            at += c.len;
        }
        assert_eq!(at, len);
    }

    /// The check a round makes before it publishes: a copy that lacks a
    /// run its MANIFEST lists is found, naming the run.
    #[test]
    fn a_copy_lacking_a_listed_index_run_is_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let store = gesta::Store::open(&dir).expect("open");
        for i in 0..50u32 {
            store
                .append(vec![
                    gesta::NewEvent::new("T", i.to_le_bytes().to_vec()).tag("t"),
                ])
                .expect("append");
        }
        store.flush_index().expect("flush");
        store.close().expect("close");
        let (_, files) = walk(&dir).expect("walk");
        let names: Vec<&str> = files.iter().map(|(rel, _)| rel.as_str()).collect();
        assert_eq!(
            unlisted_run(&dir, names.iter().copied()).expect("check"),
            None
        );
        let run = names
            .iter()
            .find(|n| n.starts_with("index/"))
            .expect("a run");
        let without = names.iter().copied().filter(|n| n != run);
        assert_eq!(
            unlisted_run(&dir, without).expect("check").as_deref(),
            Some(*run)
        );
    }

    #[test]
    fn a_whole_file_is_cut_at_block_boundaries() {
        let len = 3 * CHUNK_BYTES + 5;
        let mut uploaded = 0;
        let chunks = apply(&[], &layout(&[], len), &mut uploaded);
        check_cover(&chunks, len);
        assert_eq!(chunks.len(), 4);
        assert_eq!(uploaded, len);
    }

    #[test]
    fn a_file_growing_by_small_rounds_keeps_few_chunks_and_uploads_each_byte_a_few_times() {
        let mut chunks = Vec::new();
        let mut len = 0;
        let mut uploaded = 0;
        let mut most = 0;
        for round in 0..5_000u64 {
            // 1 to 300 bytes a round, then a burst now and then.
            len += 1 + (round * 7919) % 300 + if round % 997 == 0 { 3 << 20 } else { 0 };
            let pieces = layout(&chunks, len);
            chunks = apply(&chunks, &pieces, &mut uploaded);
            check_cover(&chunks, len);
            let last_block = chunks
                .iter()
                .filter(|c| c.offset / CHUNK_BYTES == (len - 1) / CHUNK_BYTES)
                .count();
            most = most.max(last_block);
        }
        assert!(most <= 24, "a block held {most} chunks");
        assert!(
            uploaded <= 24 * len,
            "{uploaded} bytes uploaded for a file of {len}"
        );
    }
}
