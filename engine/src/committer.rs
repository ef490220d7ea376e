//! The committer thread: the only writer of the log.
//!
//! It takes every append waiting in the queue, assigns positions (and stream
//! revisions) in arrival order, writes the group with one write and — in
//! `Sync` mode — one `fdatasync`, then publishes: the committed head advances
//! and each caller is answered. If a write or sync fails, every caller of the
//! group gets an error and the store is poisoned: what reached the disk is
//! unknown until recovery reads it back, so no later append may build on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use gesta_wal::{GroupLimits, GroupSize, Next, Payload, RecordMeta, SyncPolicy, WalWriter};

use crate::clock::Clock;
use crate::error::{Error, Result};

/// The positions an append was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Appended {
    /// Position of the batch's first event.
    pub first: u64,
    /// Position of the batch's last event.
    pub last: u64,
}

pub(crate) struct AppendRequest {
    pub payload: Payload,
    pub count: u32,
    pub streams: Vec<String>,
    pub reply: Sender<Result<Appended>>,
}

pub(crate) enum Request {
    Append(AppendRequest),
    Close(Sender<Result<()>>),
}

impl GroupSize for Request {
    fn group_bytes(&self) -> usize {
        match self {
            Request::Append(a) => a.payload.bytes().len(),
            Request::Close(_) => 0,
        }
    }
}

/// What the committer publishes to everyone else.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The last committed position; readers never look past it.
    pub head: AtomicU64,
    /// Set once a write or sync failed.
    pub poisoned: AtomicBool,
}

pub(crate) struct Committer {
    pub writer: WalWriter,
    pub policy: SyncPolicy,
    pub limits: GroupLimits,
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
    pub last_timestamp: u64,
    /// Next revision of every stream.
    pub revisions: HashMap<String, u64>,
}

/// A copy of an error for every caller of a failed group (`io::Error` is not
/// `Clone`).
fn replicate(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::Corruption {
            file,
            offset,
            reason,
        } => Error::Corruption {
            file: file.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        Error::InvalidInput { reason } => Error::InvalidInput {
            reason: reason.clone(),
        },
        Error::Locked { path } => Error::Locked { path: path.clone() },
        Error::Closed => Error::Closed,
        Error::ConditionFailed { position } => Error::ConditionFailed {
            position: *position,
        },
        Error::WrongExpectedRevision {
            stream,
            expected,
            actual,
        } => Error::WrongExpectedRevision {
            stream: stream.clone(),
            expected: *expected,
            actual: *actual,
        },
        Error::DuplicateEventId { id } => Error::DuplicateEventId { id: *id },
        Error::Poisoned => Error::Poisoned,
    }
}

impl Committer {
    pub fn run(mut self, rx: Receiver<Request>) {
        loop {
            match self.policy.next_group(&rx, self.limits) {
                Next::Closed => {
                    let _ = self.writer.close();
                    return;
                }
                Next::SyncDue => match self.writer.sync() {
                    Ok(()) => self.policy.synced(),
                    Err(_) => self.shared.poisoned.store(true, Ordering::Release),
                },
                Next::Group(requests) => {
                    if !self.commit_group(requests) {
                        return;
                    }
                }
            }
        }
    }

    fn fail_all(&self, accepted: &mut Vec<(Sender<Result<Appended>>, Appended)>, e: &Error) {
        self.shared.poisoned.store(true, Ordering::Release);
        for (reply, _) in accepted.drain(..) {
            let _ = reply.send(Err(replicate(e)));
        }
    }

    /// Commits one group; returns false when the store is closing.
    fn commit_group(&mut self, requests: Vec<Request>) -> bool {
        let mut accepted = Vec::with_capacity(requests.len());
        let mut close = None;
        let timestamp = self.clock.now_micros().max(self.last_timestamp);
        for request in requests {
            let a = match request {
                Request::Close(reply) => {
                    close = Some(reply);
                    continue;
                }
                Request::Append(a) => a,
            };
            if close.is_some() {
                let _ = a.reply.send(Err(Error::Closed));
                continue;
            }
            if self.writer.is_poisoned() {
                let _ = a.reply.send(Err(Error::Poisoned));
                continue;
            }
            let first = self.writer.next_position();
            let mut seq = Vec::with_capacity(a.streams.len() * 8);
            for stream in a.streams {
                let next = self.revisions.entry(stream).or_insert(0);
                seq.extend_from_slice(&next.to_le_bytes());
                *next += 1;
            }
            let meta = RecordMeta {
                first_position: first,
                count: a.count,
                timestamp_micros: timestamp,
            };
            match self.writer.push(meta, &seq, &a.payload) {
                Ok(()) => accepted.push((
                    a.reply,
                    Appended {
                        first,
                        last: meta.last_position(),
                    },
                )),
                Err(e) => {
                    let e = Error::from(e);
                    self.fail_all(&mut accepted, &e);
                    let _ = a.reply.send(Err(e));
                }
            }
        }
        if !accepted.is_empty() {
            let sync = self.policy.sync_each_group();
            match self.writer.commit(sync) {
                Ok(()) => {
                    if sync {
                        self.policy.synced();
                    } else {
                        // Under steady load the idle timeout never fires, so
                        // a periodic sync that is due happens here.
                        let now = Instant::now();
                        self.policy.wrote_unsynced(now);
                        if self.policy.sync_due(now) {
                            match self.writer.sync() {
                                Ok(()) => self.policy.synced(),
                                Err(e) => {
                                    self.fail_all(&mut accepted, &Error::from(e));
                                    return close.is_none();
                                }
                            }
                        }
                    }
                    self.last_timestamp = timestamp;
                    let last = accepted.last().map_or(0, |(_, a)| a.last);
                    self.shared.head.store(last, Ordering::Release);
                    for (reply, appended) in accepted {
                        let _ = reply.send(Ok(appended));
                    }
                }
                Err(e) => self.fail_all(&mut accepted, &Error::from(e)),
            }
        }
        if let Some(reply) = close {
            let r = if self.writer.is_poisoned() {
                Ok(())
            } else {
                self.writer.close().map_err(Error::from)
            };
            let _ = reply.send(r);
            return false;
        }
        true
    }
}
