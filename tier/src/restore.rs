//! Restore: rebuilds a store directory from the bucket alone.
//!
//! It reads the checkpoint (refused if its own CRC fails), downloads
//! every chunk it names, checks each one's length and CRC-32 against the
//! checkpoint (a corrupt object is [`Error::Corrupt`], naming its key, and
//! nothing of it is kept), and writes the files into `DIR.partial`, which
//! holds the engine's `BACKUP-INCOMPLETE` marker from the start (so no
//! store ever opens a half-restored directory). Every file and directory
//! is synced, the marker removed, and `DIR.partial` renamed to `DIR` last.
//!
//! A writer that publishes a new checkpoint during a restore deletes the
//! chunks that checkpoint no longer names; a chunk found missing sends
//! the restore back to the new checkpoint (a few times), so a restore
//! never mixes two checkpoints.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result, bucket, io_at};
use crate::fence;
use crate::location::Location;

/// Chunk downloads in flight at once.
const CONCURRENCY: usize = 4;

/// How many times a restore starts again after the checkpoint changed
/// under it.
const ATTEMPTS: usize = 5;

/// What [`restore`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The restored store holds exactly positions `1..=head`.
    pub head: u64,
    /// The epoch of the writer whose checkpoint was restored.
    pub epoch: u64,
    /// That writer's id.
    pub writer: String,
    /// The checkpoint's sequence number.
    pub sequence: u64,
    /// The restored directory.
    pub path: PathBuf,
    /// Files written.
    pub files: u64,
    /// Chunk objects downloaded and checked.
    pub objects: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// The time the restore took.
    pub time: Duration,
}

/// Why one attempt stopped.
enum Attempt {
    /// A chunk was gone: the checkpoint was replaced meanwhile.
    Moved,
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

/// Rebuilds the store mirrored at `location` into `dir`, a directory
/// that must not exist; see the module doc.
pub fn restore(location: &Location, dir: impl AsRef<Path>) -> Result<RestoreReport> {
    let dir = dir.as_ref();
    let started = Instant::now();
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::InvalidInput(format!("{} has no usable directory name", dir.display()))
    })?;
    if dir.exists() {
        return Err(Error::InvalidInput(format!(
            "{} already exists; restore into a new directory",
            dir.display()
        )));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let partial = parent.join(format!("{name}.partial"));
    if partial.exists() {
        let names: Vec<_> = std::fs::read_dir(&partial)
            .map_err(io_at(&partial))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        if !names.is_empty() && !names.iter().any(|n| n == gesta::BACKUP_INCOMPLETE) {
            return Err(Error::InvalidInput(format!(
                "{} exists and is not an unfinished restore; remove it or give another directory",
                partial.display()
            )));
        }
    }
    let runtime = crate::runtime()?;
    let mut attempts = 0;
    let (checkpoint, objects, bytes) = loop {
        attempts += 1;
        start_partial(&partial)?;
        let checkpoint = runtime.block_on(fence::load_checkpoint(location))?;
        match runtime.block_on(fetch(location, &checkpoint, &partial)) {
            Ok((objects, bytes)) => break (checkpoint, objects, bytes),
            Err(Attempt::Moved) if attempts < ATTEMPTS => continue,
            Err(Attempt::Moved) => {
                return Err(Error::InvalidInput(format!(
                    "{location}: the checkpoint changed {ATTEMPTS} times during the restore; \
                     the writer ships faster than the restore reads"
                )));
            }
            Err(Attempt::Failed(e)) => return Err(e),
        }
    };
    // A checkpoint whose MANIFEST lists a run it does not name would give
    // a store that does not open: refused here, naming the run.
    if let Some(missing) =
        crate::round::unlisted_run(&partial, checkpoint.files.iter().map(|f| f.path.as_str()))?
    {
        return Err(Error::Corrupt {
            key: location.key(fence::CHECKPOINT_OBJECT).to_string(),
            reason: format!(
                "checkpoint {} (epoch {}) holds a MANIFEST that lists {missing}, which it does not name",
                checkpoint.sequence, checkpoint.epoch
            ),
        });
    }
    let marker = partial.join(gesta::BACKUP_INCOMPLETE);
    std::fs::remove_file(&marker).map_err(io_at(&marker))?;
    sync_dir(&partial)?;
    std::fs::rename(&partial, dir).map_err(io_at(dir))?;
    sync_dir(&parent)?;
    Ok(RestoreReport {
        head: checkpoint.head,
        epoch: checkpoint.epoch,
        writer: checkpoint.writer,
        sequence: checkpoint.sequence,
        path: dir.to_owned(),
        files: checkpoint.files.len() as u64,
        objects,
        bytes,
        time: started.elapsed(),
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_at(dir))
}

/// An empty `partial` holding only the marker, synced.
fn start_partial(partial: &Path) -> Result<()> {
    match std::fs::remove_dir_all(partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(partial)(e)),
    }
    std::fs::create_dir_all(partial).map_err(io_at(partial))?;
    let marker = partial.join(gesta::BACKUP_INCOMPLETE);
    std::fs::File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(io_at(&marker))?;
    sync_dir(partial)?;
    if let Some(parent) = partial.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Downloads and checks every chunk, writing the files; the count of
/// objects and bytes.
async fn fetch(
    location: &Location,
    checkpoint: &Checkpoint,
    partial: &Path,
) -> Result<(u64, u64), Attempt> {
    let mut dirs: Vec<PathBuf> = checkpoint.dirs.iter().map(|d| partial.join(d)).collect();
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    let mut objects = 0;
    let mut bytes = 0;
    for file in &checkpoint.files {
        let path = partial.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
            dirs.push(parent.to_owned());
        }
        let out = std::fs::File::create(&path).map_err(io_at(&path))?;
        let mut downloads = futures::stream::iter(file.chunks.iter().map(|chunk| {
            let key = location.key(&chunk.key);
            async move {
                match location.store().get(&key).await {
                    Ok(got) => match got.bytes().await {
                        Ok(b) => Ok((chunk, key, b)),
                        Err(e) => Err(Attempt::Failed(bucket(format!("read {key}"))(e))),
                    },
                    Err(object_store::Error::NotFound { .. }) => Err(Attempt::Moved),
                    Err(e) => Err(Attempt::Failed(bucket(format!("read {key}"))(e))),
                }
            }
        }))
        .buffer_unordered(CONCURRENCY);
        while let Some(got) = downloads.next().await {
            let (chunk, key, data) = got?;
            if let Err(reason) = chunk.check(&data) {
                return Err(Attempt::Failed(Error::Corrupt {
                    key: key.to_string(),
                    reason,
                }));
            }
            write_at(&out, &path, &data, chunk.offset)?;
            objects += 1;
            bytes += data.len() as u64;
        }
        out.set_len(file.len).map_err(io_at(&path))?;
        out.sync_all().map_err(io_at(&path))?;
    }
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        sync_dir(dir)?;
    }
    sync_dir(partial)?;
    Ok((objects, bytes))
}

fn write_at(file: &std::fs::File, path: &Path, data: &[u8], offset: u64) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    file.seek(SeekFrom::Start(offset)).map_err(io_at(path))?;
    file.write_all(data).map_err(io_at(path))
}
