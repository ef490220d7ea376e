//! The store's indices as a whole: the runs the MANIFEST lists, memtables
//! frozen for flushing, and the active memtable the committer fills — and
//! the immutable [`IndexView`] over all of them that readers take.
//!
//! Only the committer inserts into the active memtable and only it freezes
//! one (so no insert can land in a memtable after it was frozen). A
//! background flusher writes frozen memtables as runs, switches the
//! MANIFEST, and installs the run in place of the memtable; readers holding
//! an older view keep the memtable alive until they drop it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use gesta_compaction::flush::{INDEX_DIR, remove_orphans, run_file_name, write_run_file};
use gesta_compaction::manifest::{Manifest, ManifestError, RunEntry};
use gesta_index::{IndexView, Memtable, Run, RunError, write_run};
use gesta_wal::io::{FileSystem, OpenMode};
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};

struct Frozen {
    lo: u64,
    hi: u64,
    memtable: Arc<Memtable>,
}

struct Parts {
    manifest: Manifest,
    runs: Vec<Arc<Run>>,
    frozen: Vec<Frozen>,
    active: Arc<Memtable>,
}

impl Parts {
    fn view(&self) -> IndexView {
        let memtables = self
            .frozen
            .iter()
            .map(|f| f.memtable.clone())
            .chain(std::iter::once(self.active.clone()))
            .collect();
        IndexView::new(self.runs.clone(), memtables)
    }
}

/// The indices of one store.
pub(crate) struct Indexes {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    parts: Mutex<Parts>,
    view: RwLock<Arc<IndexView>>,
    /// Held for a whole flush, so that the flusher thread and a closing
    /// committer never write the same frozen memtable twice.
    flushing: Mutex<()>,
}

fn manifest_error(dir: &Path, e: ManifestError) -> Error {
    match e {
        ManifestError::Io(source) => Error::Io {
            path: dir.join(gesta_compaction::manifest::FILE_NAME),
            source,
        },
        ManifestError::Corrupt { offset, reason } => Error::Corruption {
            file: dir.join(gesta_compaction::manifest::FILE_NAME),
            offset,
            reason: reason.to_owned(),
        },
    }
}

fn run_corruption(path: &Path, e: RunError) -> Error {
    let (offset, reason) = match e {
        RunError::Corrupt { offset, reason } => (offset, reason.to_owned()),
        other => (0, other.to_string()),
    };
    Error::Corruption {
        file: path.to_owned(),
        offset,
        reason,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Indexes {
    /// Loads the MANIFEST and maps its runs (verifying each), removes files
    /// it does not name, and starts with an empty active memtable. Returns
    /// the indices and the last position the runs cover: the log must be
    /// replayed into the memtable from the position after it.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<(Indexes, u64)> {
        let manifest = Manifest::load(fs.as_ref(), dir)
            .map_err(|e| manifest_error(dir, e))?
            .unwrap_or_default();
        let index_dir = dir.join(INDEX_DIR);
        let mut runs = Vec::with_capacity(manifest.runs.len());
        for entry in &manifest.runs {
            let path = index_dir.join(&entry.name);
            let file = fs
                .open(&path, OpenMode::Existing)
                .map_err(io_error(&path))?;
            let map = file.map().map_err(io_error(&path))?;
            let run = Run::open(Bytes::from_owner(map)).map_err(|e| run_corruption(&path, e))?;
            if run.covers() != (entry.lo, entry.hi) {
                return Err(Error::Corruption {
                    file: path,
                    offset: 0,
                    reason: "index run covers other positions than the MANIFEST says".into(),
                });
            }
            runs.push(Arc::new(run));
        }
        let keep: Vec<&str> = manifest.runs.iter().map(|r| r.name.as_str()).collect();
        let removed =
            remove_orphans(fs.as_ref(), &index_dir, &keep).map_err(io_error(&index_dir))?;
        for name in removed {
            log::info!("gesta: removed index file {name}, which the MANIFEST does not list");
        }
        let covered = manifest.covered();
        let parts = Parts {
            manifest,
            runs,
            frozen: Vec::new(),
            active: Arc::new(Memtable::new()),
        };
        let view = RwLock::new(Arc::new(parts.view()));
        let indexes = Indexes {
            fs,
            dir: dir.to_owned(),
            parts: Mutex::new(parts),
            view,
            flushing: Mutex::new(()),
        };
        Ok((indexes, covered))
    }

    /// The active memtable (for the committer, and for replay on open).
    pub fn active(&self) -> Arc<Memtable> {
        self.parts.lock().active.clone()
    }

    /// A snapshot of every index source, for a reader or the committer.
    pub fn view(&self) -> Arc<IndexView> {
        self.view.read().clone()
    }

    fn publish(&self, parts: &Parts) {
        *self.view.write() = Arc::new(parts.view());
    }

    /// Freezes the active memtable as covering `lo..=hi` and starts a new
    /// one. Called only by the committer, between groups. Returns whether
    /// anything was frozen.
    pub fn freeze(&self, lo: u64, hi: u64) -> bool {
        let mut parts = self.parts.lock();
        if parts.active.is_empty() || hi < lo {
            return false;
        }
        let memtable = std::mem::replace(&mut parts.active, Arc::new(Memtable::new()));
        parts.frozen.push(Frozen { lo, hi, memtable });
        self.publish(&parts);
        true
    }

    /// Writes every frozen memtable as a run, oldest first, switching the
    /// MANIFEST after each. On failure the memtable stays frozen (and keeps
    /// answering queries) and a later flush retries it.
    pub fn flush_frozen(&self) -> Result<()> {
        let _flushing = self.flushing.lock();
        loop {
            let (lo, hi, memtable, mut manifest) = {
                let parts = self.parts.lock();
                let Some(f) = parts.frozen.first() else {
                    return Ok(());
                };
                (f.lo, f.hi, f.memtable.clone(), parts.manifest.clone())
            };
            let bytes = write_run(memtable.entries(), (lo, hi));
            let name = run_file_name(lo, hi);
            let index_dir = self.dir.join(INDEX_DIR);
            let path = index_dir.join(&name);
            write_run_file(self.fs.as_ref(), &index_dir, &name, &bytes).map_err(io_error(&path))?;
            let file = self
                .fs
                .open(&path, OpenMode::Existing)
                .map_err(io_error(&path))?;
            let map = file.map().map_err(io_error(&path))?;
            let run = Run::open(Bytes::from_owner(map)).map_err(|e| run_corruption(&path, e))?;
            manifest.runs.push(RunEntry { name, lo, hi });
            manifest
                .store(self.fs.as_ref(), &self.dir)
                .map_err(io_error(
                    &self.dir.join(gesta_compaction::manifest::FILE_NAME),
                ))?;
            let mut parts = self.parts.lock();
            parts.manifest = manifest;
            parts.runs.push(Arc::new(run));
            parts.frozen.remove(0);
            self.publish(&parts);
        }
    }

    /// Number of runs and of frozen memtables (for stats and tests).
    pub fn shape(&self) -> (usize, usize) {
        let parts = self.parts.lock();
        (parts.runs.len(), parts.frozen.len())
    }
}

/// A request to the flusher thread.
pub(crate) struct FlushJob {
    /// Answered once every memtable frozen so far is a run (or failed).
    pub reply: Option<Sender<Result<()>>>,
}

/// Starts the background flusher; it ends when every sender is dropped.
pub(crate) fn spawn_flusher(
    indexes: Arc<Indexes>,
    jobs: Receiver<FlushJob>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gesta-flusher".into())
        .spawn(move || {
            for job in jobs {
                let result = indexes.flush_frozen();
                if let Err(e) = &result {
                    log::error!("gesta: index flush failed (will retry): {e}");
                }
                if let Some(reply) = job.reply {
                    let _ = reply.send(result);
                }
            }
        })
}
