//! [`Store`]: opening a directory, appending through the committer, reading,
//! and closing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::Sender;
use gesta_wal::io::LockGuard;
use gesta_wal::{Payload, RecoveryReport, SyncPolicy, WalOptions, WalReader};
use parking_lot::Mutex;

use crate::codec::{decode_record, encode_batch, streams_of};
use crate::committer::{AppendRequest, Appended, Committer, Request, Shared};
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::options::Options;
use crate::read::{Events, ReadOptions};

/// An open event store. Cheap to clone and share across threads; the store
/// closes when [`close`](Store::close) is called or the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    tx: Sender<Request>,
    shared: Arc<Shared>,
    reader: WalReader,
    committer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<LockGuard>>,
    closed: AtomicBool,
    report: RecoveryReport,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("head", &self.shared.head.load(Ordering::Relaxed))
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(dir, Options::default())
    }

    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Takes the directory's lock (a second open, from any process, gets
    /// [`Error::Locked`]), then recovers the log: every record is verified, a
    /// torn write at the tail is cut off, anything else damaged is
    /// [`Error::Corruption`].
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        let dir = dir.as_ref().to_owned();
        if options.segment_size < 4096 {
            return Err(Error::invalid("segment_size must be at least 4096 bytes"));
        }
        if options.queue_capacity == 0 {
            return Err(Error::invalid("queue_capacity must be at least 1"));
        }
        let fs = options.fs.clone();
        fs.create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let lock_path = dir.join("LOCK");
        let lock = fs.lock(&lock_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { path: dir.clone() }
            } else {
                Error::Io {
                    path: lock_path.clone(),
                    source,
                }
            }
        })?;

        let mut revisions: HashMap<String, u64> = HashMap::new();
        let mut scratch = Vec::new();
        let mut decode_error = None;
        let opened = gesta_wal::open(
            fs,
            &dir.join("wal"),
            WalOptions {
                segment_size: options.segment_size,
                preallocate: options.preallocate,
            },
            1,
            |record| {
                if record.seq.is_empty() {
                    return Ok(());
                }
                scratch.clear();
                if let Err(e) = decode_record(record, &mut scratch) {
                    decode_error.get_or_insert(e);
                    return Ok(());
                }
                for e in &scratch {
                    if let (Some(s), Some(r)) = (&e.stream, e.revision) {
                        revisions.insert(s.clone(), r + 1);
                    }
                }
                Ok(())
            },
        )?;
        if let Some(e) = decode_error {
            return Err(e);
        }

        let shared = Arc::new(Shared::default());
        shared
            .head
            .store(opened.report.last_position, Ordering::Release);
        let committer = Committer {
            writer: opened.writer,
            policy: SyncPolicy::new(options.durability),
            limits: options.group_limits,
            shared: shared.clone(),
            clock: options.clock.clone(),
            last_timestamp: opened.last_timestamp_micros,
            revisions,
        };
        let (tx, rx) = gesta_wal::commit::queue(options.queue_capacity);
        let handle = std::thread::Builder::new()
            .name("gesta-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir,
                tx,
                shared,
                reader: opened.reader,
                committer: Mutex::new(Some(handle)),
                lock: Mutex::new(Some(lock)),
                closed: AtomicBool::new(false),
                report: opened.report,
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// What recovery found when the store was opened (e.g. a torn tail it
    /// cut off).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Appends a batch atomically: all its events get consecutive positions
    /// and are committed together, or none is. Returns once the batch is
    /// durable per the store's [`Durability`](crate::Durability).
    pub fn append(&self, events: Vec<NewEvent>) -> Result<Appended> {
        let encoded = encode_batch(&events)?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        let request = AppendRequest {
            payload: Payload::new(Bytes::from(encoded)),
            count: events.len() as u32,
            streams: streams_of(&events),
            reply,
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.inner.shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        self.inner
            .tx
            .send(Request::Append(request))
            .map_err(|_| Error::Closed)?;
        answer.recv().unwrap_or(Err(Error::Closed))
    }

    /// The position of the last committed event (0 when empty).
    pub fn head(&self) -> u64 {
        self.inner.shared.head.load(Ordering::Acquire)
    }

    /// Whether an earlier write or sync failure makes the store refuse
    /// appends until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.poisoned.load(Ordering::Acquire)
    }

    /// Reads events by position; see [`ReadOptions`]. The read sees the
    /// events committed when it starts and is lazy: a limit stops the work.
    pub fn read(&self, options: ReadOptions) -> Events {
        Events::new(&self.inner.reader, self.head(), options)
    }

    /// Flushes and syncs whatever is outstanding, stops the committer and
    /// releases the directory lock. Appends after this fail with
    /// [`Error::Closed`]; closing twice is harmless. Dropping the last clone
    /// closes too, ignoring errors.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        let result = match self.tx.send(Request::Close(reply)) {
            Ok(()) => answer.recv().unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        if let Some(handle) = self.committer.lock().take() {
            let _ = handle.join();
        }
        self.lock.lock().take();
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
