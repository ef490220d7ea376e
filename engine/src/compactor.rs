//! The store's background work, on two threads the store starts and stops:
//! the flusher (`gesta-flusher`), which writes frozen memtables as index
//! runs, merges runs by the size-tiered policy and rewrites sealed segments
//! compressed; and the projector (`gesta-projector`), which folds new
//! events into registered projections and writes their snapshots. Neither
//! holds the store: they get the parts they work on, and stop when the
//! store tells them to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::error::Result;
use crate::indexes::Indexes;
use crate::projections::{Registry, Source};
use crate::shared::Shared;
use crate::telemetry::{self, Stage};

/// A request to the flusher thread.
pub(crate) struct FlushJob {
    /// Answered once every memtable frozen so far is a run (or failed).
    pub reply: Option<Sender<Result<()>>>,
}

/// Starts the background flusher, which also merges runs and, with
/// `compress`, rewrites sealed segments compressed; it ends when every
/// sender is dropped.
pub(crate) fn spawn_flusher(
    indexes: Arc<Indexes>,
    compress: Option<(gesta_wal::Compressor, gesta_wal::Compression, Option<u64>)>,
    shared: Arc<Shared>,
    jobs: Receiver<FlushJob>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gesta-flusher".into())
        .spawn(move || {
            for job in &jobs {
                let result = {
                    let _span = telemetry::enter(Stage::Flush);
                    indexes.flush_frozen()
                };
                if let Err(e) = &result {
                    log::error!("gesta: index flush failed (will retry): {e}");
                }
                if let Some(reply) = job.reply {
                    let _ = reply.send(result);
                }
                if let Err(e) = {
                    let _span = telemetry::enter(Stage::Merge);
                    indexes.compact_by_policy()
                } {
                    log::error!("gesta: index merge failed (will retry): {e}");
                }
                if let Some((compressor, settings, pace)) = &compress {
                    let _span = telemetry::enter(Stage::Compress);
                    let stop = || !jobs.is_empty() || shared.closing.load(Ordering::Acquire);
                    if let Err(e) = compressor.compress_sealed(*settings, *pace, &stop) {
                        log::error!("gesta: segment compression failed (will retry): {e}");
                    }
                }
            }
        })
}

/// Starts the projector: every `interval` it catches every registered
/// projection up and writes the snapshots that are due. A projection that
/// fails, or whose `fold` panics, is logged and tried again at the next
/// pass; the others and the thread go on. It ends when `stop` is dropped
/// (or sent to), after the pass in flight, so that a closing store waits
/// for it and never has a snapshot written behind its back.
pub(crate) fn spawn_projector(
    registry: Arc<Registry>,
    source: Source,
    interval: Duration,
    stop: Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gesta-projector".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
                if source.shared.closing.load(Ordering::Acquire) {
                    return;
                }
                for (name, failure) in registry.snapshot_pass(&source) {
                    if source.shared.closing.load(Ordering::Acquire) {
                        return;
                    }
                    log::error!(
                        "gesta: the snapshot pass of projection {name:?} failed (will retry): {failure}"
                    );
                }
            }
        })
}

/// The projector of a store, once one was started.
#[derive(Default)]
pub(crate) struct Projector(parking_lot::Mutex<Option<(Sender<()>, JoinHandle<()>)>>);

impl Projector {
    /// Starts the projector unless it runs already (again if its thread
    /// ended, which only a bug could make it do before the store closes).
    pub(crate) fn ensure(
        &self,
        registry: &Arc<Registry>,
        source: &Source,
        interval: Duration,
    ) -> std::io::Result<()> {
        let mut running = self.0.lock();
        if running
            .as_ref()
            .is_none_or(|(_, handle)| handle.is_finished())
        {
            if let Some((_, ended)) = running.take() {
                let _ = ended.join();
            }
            let (stop, stopped) = crossbeam_channel::bounded(1);
            let handle = spawn_projector(registry.clone(), source.clone(), interval, stopped)?;
            *running = Some((stop, handle));
        }
        Ok(())
    }

    /// Stops the projector and waits for its pass in flight.
    pub(crate) fn stop(&self) {
        if let Some((stop, handle)) = self.0.lock().take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}
