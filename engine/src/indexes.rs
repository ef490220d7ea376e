//! The store's indices as a whole: the runs the MANIFEST lists, memtables
//! frozen for flushing, and the active memtable the committer fills — and
//! the immutable [`IndexView`] over all of them that readers take.
//!
//! Only the committer inserts into the active memtable and only it freezes
//! one (so no insert can land in a memtable after it was frozen). A
//! background flusher writes frozen memtables as runs, switches the
//! MANIFEST, and installs the run in place of the memtable; readers holding
//! an older view keep the memtable alive until they drop it. After each
//! flush it merges runs by the size-tiered policy of
//! `gesta_compaction::merge`: the merged run is written, the MANIFEST
//! switched, the view republished, and only then are the replaced files
//! deleted (readers holding older views keep their runs mapped). The
//! thread that does that work is `compactor`'s. It also holds the store's
//! snapshot directory, which `snapshots` and the projections write to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use gesta_compaction::flush::{
    INDEX_DIR, purged_run_file_name, remove_orphans, run_file_name, write_run_file,
    write_run_file_paced,
};
use gesta_compaction::manifest::{Manifest, ManifestError, Purged, RunEntry};
use gesta_compaction::merge::{Merged, merge_runs_purging, plan};
use gesta_compaction::snapshot::{SnapshotError, Snapshots};
use gesta_index::{Hidden, IndexView, Key, Memtable, Overlay, Run, RunError, write_run};
use gesta_wal::io::{FileSystem, OpenMode};
use parking_lot::{Mutex, RwLock};

use crate::amended::Amendments;
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
    /// Postings added after the fact (retroactive tags), at any position.
    overlay: Arc<Overlay>,
    /// Positions removed after the fact, which queries skip.
    hidden: Arc<Hidden>,
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
            .with_overlay(self.overlay.clone())
            .with_hidden(self.hidden.clone())
    }
}

/// The indices of one store.
pub(crate) struct Indexes {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    parts: Mutex<Parts>,
    view: RwLock<Arc<IndexView>>,
    /// Held for a whole flush or merge, so that the flusher thread, a
    /// closing committer and an explicit compaction never write the same
    /// frozen memtable twice or merge runs another is merging.
    compacting: Mutex<()>,
    settings: CompactionSettings,
    snapshots: Snapshots,
    /// What lifecycle operations changed about events, as reads apply it
    /// (the overlay in `parts` is the added tags as postings).
    amendments: Arc<Amendments>,
}

/// How runs are merged and snapshots kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompactionSettings {
    /// Snapshots kept per key (0: all).
    pub snapshots_kept: usize,
    /// Pause between two passes of the projector.
    pub projection_interval: std::time::Duration,
    /// The size of a flushed run, in postings: the base of the tiers.
    pub base: u64,
    /// Runs merged at once; below 2, no background merging.
    pub fan_in: usize,
    /// Pace of background merge writes.
    pub bytes_per_sec: Option<u64>,
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

pub(crate) fn snapshot_error(e: SnapshotError) -> Error {
    match e {
        SnapshotError::Io { path, source } => Error::Io { path, source },
        SnapshotError::Corrupt {
            path,
            offset,
            reason,
        } => Error::Corruption {
            file: path,
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
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        settings: CompactionSettings,
    ) -> Result<(Indexes, u64)> {
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
        // A MANIFEST switch that a crash cut before its rename.
        let tmp = dir.join(format!("{}.tmp", gesta_compaction::manifest::FILE_NAME));
        if fs.exists(&tmp).map_err(io_error(&tmp))? {
            fs.remove_file(&tmp).map_err(io_error(&tmp))?;
            log::info!(
                "gesta: removed {}, left by an interrupted MANIFEST switch",
                tmp.display()
            );
        }
        let snapshots = Snapshots::new(fs.clone(), dir);
        for path in snapshots.sweep().map_err(snapshot_error)? {
            log::info!(
                "gesta: removed {}, left by an interrupted snapshot write",
                path.display()
            );
        }
        let covered = manifest.covered();
        let parts = Parts {
            manifest,
            runs,
            frozen: Vec::new(),
            active: Arc::new(Memtable::new()),
            overlay: Arc::new(Overlay::new()),
            hidden: Arc::new(Hidden::new()),
        };
        let view = RwLock::new(Arc::new(parts.view()));
        let indexes = Indexes {
            fs,
            dir: dir.to_owned(),
            parts: Mutex::new(parts),
            view,
            compacting: Mutex::new(()),
            settings,
            snapshots,
            amendments: Arc::default(),
        };
        Ok((indexes, covered))
    }

    /// The pause between two passes of the projector.
    pub fn projection_interval(&self) -> std::time::Duration {
        self.settings.projection_interval
    }

    /// The store's snapshots, and how many to keep per key.
    pub fn snapshots(&self) -> (&Snapshots, usize) {
        (&self.snapshots, self.settings.snapshots_kept)
    }

    /// The active memtable (for the committer, and for replay on open).
    pub fn active(&self) -> Arc<Memtable> {
        self.parts.lock().active.clone()
    }

    /// What lifecycle operations changed about events, by position.
    pub fn amendments(&self) -> &Arc<Amendments> {
        &self.amendments
    }

    /// Adds tags to committed events: `gained[i]` lists the positions that
    /// gain `tags[i]` (none of which carries it already). Readers see the
    /// events' tags first and the postings right after, so a query that
    /// finds an event by an added tag reads it with that tag.
    pub fn add_tags(&self, tags: &[String], gained: &[Vec<u64>]) {
        self.amendments.add_tags(tags, gained);
        let additions: Vec<(Key, Vec<u64>)> = tags
            .iter()
            .zip(gained)
            .map(|(t, p)| (Key::tag(t), p.clone()))
            .collect();
        let mut parts = self.parts.lock();
        parts.overlay = Arc::new(parts.overlay.with(&additions));
        self.publish(&parts);
    }

    /// Removes committed events: `positions` (ascending, none removed
    /// yet), whose events carried `keys`. Reads skip them from then on:
    /// scans through the amendments, queries through the view.
    pub fn remove(&self, positions: &[u64], keys: Vec<Key>, sequence: u64) {
        if positions.is_empty() {
            return;
        }
        self.amendments.remove(positions, keys, sequence);
        let mut parts = self.parts.lock();
        parts.hidden = self.amendments.hidden();
        self.publish(&parts);
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
        let _compacting = self.compacting.lock();
        self.flush_frozen_locked()
    }

    /// Opens and verifies the run file at `path`.
    fn open_run(&self, path: &Path) -> Result<Run> {
        let file = self
            .fs
            .open(path, OpenMode::Existing)
            .map_err(io_error(path))?;
        let map = file.map().map_err(io_error(path))?;
        Run::open(Bytes::from_owner(map)).map_err(|e| run_corruption(path, e))
    }

    fn store_manifest(&self, manifest: &Manifest) -> Result<()> {
        manifest
            .store(self.fs.as_ref(), &self.dir)
            .map_err(io_error(
                &self.dir.join(gesta_compaction::manifest::FILE_NAME),
            ))
    }

    /// Flushes, then merges runs while the size-tiered policy asks for it.
    /// The lock is let go between steps, so a closing committer or an
    /// explicit compaction is never kept waiting for more than one merge.
    pub fn compact_by_policy(&self) -> Result<()> {
        loop {
            let _compacting = self.compacting.lock();
            self.flush_frozen_locked()?;
            if self.settings.fan_in < 2 {
                return Ok(());
            }
            let range = {
                let parts = self.parts.lock();
                let sizes: Vec<u64> = parts.runs.iter().map(|r| r.postings()).collect();
                plan(&sizes, self.settings.base, self.settings.fan_in)
            };
            let Some(range) = range else {
                return Ok(());
            };
            self.merge_locked(range, self.settings.bytes_per_sec, None)?;
        }
    }

    /// Flushes every frozen memtable and merges all runs into one, at full
    /// speed, dropping the type and tag postings of every event removed by
    /// now (see [`Purged`]). A single run is rewritten only for that.
    pub fn compact_all(&self) -> Result<()> {
        let _compacting = self.compacting.lock();
        self.flush_frozen_locked()?;
        let hidden = self.amendments.hidden();
        let (n, purged) = {
            let parts = self.parts.lock();
            (parts.runs.len(), parts.manifest.purged.sequence)
        };
        let purge = (!hidden.is_empty() && hidden.sequence() > purged).then_some(hidden);
        if n >= 2 || (n == 1 && purge.is_some()) {
            self.merge_locked(0..n, None, purge)?;
        }
        Ok(())
    }

    /// The journal sequence of the newest removal the runs were purged of
    /// (0: none).
    pub fn purged_sequence(&self) -> u64 {
        self.parts.lock().manifest.purged.sequence
    }

    /// On open, after the journal's removals up to
    /// [`purged_sequence`](Self::purged_sequence) were replayed without
    /// their keys: counts what the MANIFEST says they still count.
    pub fn count_purged_removals(&self) {
        let mut parts = self.parts.lock();
        let counts = &parts.manifest.purged.counts;
        if counts.is_empty() {
            return;
        }
        self.amendments.count_removed(counts);
        parts.hidden = self.amendments.hidden();
        self.publish(&parts);
    }

    /// Merges the runs at `range` (indices into the MANIFEST's list) into
    /// one: write it, switch the MANIFEST, publish, then delete the old
    /// files. A failure before the switch leaves everything as it was (and
    /// perhaps an orphaned file, which the next open removes). With
    /// `purge` (only for a merge of every run, so that the MANIFEST's one
    /// [`Purged`] describes every run), the postings it hides are dropped
    /// from types' and tags' lists, and the same view that first reads the
    /// new run stops counting them as hidden.
    fn merge_locked(
        &self,
        range: std::ops::Range<usize>,
        pace: Option<u64>,
        purge: Option<Arc<Hidden>>,
    ) -> Result<()> {
        let (inputs, mut manifest) = {
            let parts = self.parts.lock();
            let Some(inputs) = parts.runs.get(range.clone()) else {
                return Ok(());
            };
            (inputs.to_vec(), parts.manifest.clone())
        };
        let refs: Vec<&Run> = inputs.iter().map(|r| r.as_ref()).collect();
        let purge = purge.filter(|_| range.start == 0);
        let Merged {
            bytes,
            covers: (lo, hi),
            dropped,
        } = merge_runs_purging(&refs, purge.as_deref());
        if let Some(hidden) = &purge {
            // What the removals it holds still count, kept so that an open
            // need not read the removed events to learn it.
            let counts = hidden
                .discounted(&dropped)
                .counts()
                .map(|(key, n)| (key.clone(), n))
                .collect();
            manifest.purged = Purged {
                sequence: hidden.sequence(),
                through: hi,
                counts,
            };
        }
        let name = match &purge {
            Some(hidden) => purged_run_file_name(lo, hi, hidden.sequence()),
            None => run_file_name(lo, hi),
        };
        let index_dir = self.dir.join(INDEX_DIR);
        let path = index_dir.join(&name);
        write_run_file_paced(self.fs.as_ref(), &index_dir, &name, &bytes, pace)
            .map_err(io_error(&path))?;
        drop(bytes);
        let run = self.open_run(&path)?;
        let replaced: Vec<RunEntry> = manifest
            .runs
            .splice(range.clone(), [RunEntry { name, lo, hi }])
            .collect();
        self.store_manifest(&manifest)?;
        {
            let mut parts = self.parts.lock();
            parts.manifest = manifest;
            parts.runs.splice(range, [Arc::new(run)]);
            if !dropped.is_empty() {
                self.amendments.discount(&dropped);
                parts.hidden = self.amendments.hidden();
            }
            self.publish(&parts);
        }
        for entry in replaced {
            let old = index_dir.join(&entry.name);
            if let Err(e) = self.fs.remove_file(&old) {
                log::warn!(
                    "gesta: could not remove the merged index run {}: {e}",
                    old.display()
                );
            }
        }
        if let Err(e) = self.fs.sync_dir(&index_dir) {
            log::warn!("gesta: could not sync {}: {e}", index_dir.display());
        }
        Ok(())
    }

    fn flush_frozen_locked(&self) -> Result<()> {
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
            let run = self.open_run(&path)?;
            manifest.runs.push(RunEntry { name, lo, hi });
            self.store_manifest(&manifest)?;
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
