//! [`Served`]: the store a server serves, plain or through
//! crypto-shredding's wrapper (`gesta::encryption::Encrypted`), and the
//! one door both services reach it by. Every read and append goes through
//! here, so that with a key file clients see plaintext, subject events are
//! sealed before they reach the log, and no call hands out ciphertext.
//!
//! The engine's own operations that carry no event contents (the head,
//! batches' tracking info, backups, metrics) go to the engine's store
//! ([`Served::engine`]); everything in the `EventStore` contract goes
//! through [`Served::events`], which is the wrapper when there is one.

use std::future::Future;
use std::sync::Arc;

use futures::future::Either;
use gesta::encryption::{Encrypted, EncryptionOptions, is_encrypted};
use gesta::{AppendOptions, Appended, EventStore, NewEvent};

/// A store as a server serves it: a [`gesta::Store`], or one opened
/// through [`Encrypted`] (then subjects' events are sealed on append,
/// opened on read, and `gesta.v1.Gesta/Forget` destroys a subject's key).
/// Cheap to clone.
#[derive(Clone)]
pub struct Served {
    /// The engine's store (the wrapper's inner store, when there is one).
    store: Arc<gesta::Store>,
    encrypted: Option<Arc<Encrypted<gesta::Store>>>,
    /// What must hold a committed position before an append is answered
    /// (see [`Served::acknowledged_by`]).
    acknowledge: Option<Acknowledge>,
    /// What `Replication` and the metrics report (see
    /// [`Served::reports_replication`]).
    replication: Option<crate::replication::Probe>,
}

/// Waits until a committed position is held somewhere beyond the local
/// disk (a bucket): `Err` says why it is not. Runs on the blocking pool.
pub type Acknowledge = Arc<dyn Fn(u64) -> Result<(), String> + Send + Sync>;

/// An append that committed but was not acknowledged (see
/// [`Served::acknowledged_by`]); each service says it in its own protocol.
#[derive(Debug)]
pub(crate) struct Unacknowledged {
    first: u64,
    last: u64,
    reason: String,
}

impl std::fmt::Display for Unacknowledged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "committed at positions {}..={}, but not acknowledged: {}; a retry with the same \
             event ids appends nothing again",
            self.first, self.last, self.reason
        )
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("path", &self.store.path())
            .field("encrypted", &self.encrypted.is_some())
            .finish()
    }
}

impl From<gesta::Store> for Served {
    fn from(store: gesta::Store) -> Served {
        Served::plain(Arc::new(store))
    }
}

impl From<Encrypted<gesta::Store>> for Served {
    fn from(encrypted: Encrypted<gesta::Store>) -> Served {
        Served {
            store: Arc::new(encrypted.inner().clone()),
            encrypted: Some(Arc::new(encrypted)),
            acknowledge: None,
            replication: None,
        }
    }
}

impl Served {
    /// `store` through the wrapper if its directory holds the key file
    /// (`KEYS`: the store is encrypted, and serving it plain would hand
    /// out ciphertext and store subjects' new events in clear), or if
    /// `encrypt` (which creates the key file); plain otherwise.
    pub fn wrap(store: gesta::Store, encrypt: bool) -> gesta::Result<Served> {
        if !encrypt && !is_encrypted(store.path()) {
            return Ok(store.into());
        }
        let options = EncryptionOptions::in_dir(store.path());
        Ok(Encrypted::open(store, options)?.into())
    }

    /// A tenant's store, plain.
    pub(crate) fn plain(store: Arc<gesta::Store>) -> Served {
        Served {
            store,
            encrypted: None,
            acknowledge: None,
            replication: None,
        }
    }

    /// A tenant's encrypted store: its open store and the one wrapper
    /// made for it.
    pub(crate) fn tenant_encrypted(
        store: Arc<gesta::Store>,
        encrypted: Arc<Encrypted<gesta::Store>>,
    ) -> Served {
        Served {
            store,
            encrypted: Some(encrypted),
            acknowledge: None,
            replication: None,
        }
    }

    /// Answers an append (on both services) only once `acknowledge` has
    /// returned for its last position: `gesta serve --ship-ack` waits for
    /// the bucket this way. When it fails, the call fails with
    /// `UNAVAILABLE` naming the committed positions: the events are in the
    /// store, not yet where `acknowledge` looks, and a retry with the same
    /// event ids appends nothing again.
    pub fn acknowledged_by(mut self, acknowledge: Acknowledge) -> Served {
        self.acknowledge = Some(acknowledge);
        self
    }

    /// Reports the shipping or the replica behind the store through
    /// `gesta.v1.Gesta/Replication` and the `gesta_replication_*` metrics.
    pub fn reports_replication(mut self, probe: crate::replication::Probe) -> Served {
        self.replication = Some(probe);
        self
    }

    /// The shipping's or replica's status now (role `None` when nothing
    /// reports one).
    pub fn replication(&self) -> crate::replication::ReplicationStatus {
        self.replication
            .as_ref()
            .map(|probe| probe())
            .unwrap_or_default()
    }

    /// Waits for [`acknowledged_by`](Self::acknowledged_by)'s hook, if any,
    /// to hold positions `first..=last`.
    pub(crate) async fn acknowledge(&self, first: u64, last: u64) -> Result<(), Unacknowledged> {
        let Some(acknowledge) = self.acknowledge.clone() else {
            return Ok(());
        };
        let outcome = tokio::task::spawn_blocking(move || acknowledge(last))
            .await
            .unwrap_or_else(|failed| Err(format!("the acknowledgement's task: {failed}")));
        outcome.map_err(|reason| Unacknowledged {
            first,
            last,
            reason,
        })
    }

    /// Whether the store is served through the wrapper.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted.is_some()
    }

    /// The engine's store, for what holds no event contents (the head,
    /// closing it). Reading events from it bypasses the wrapper.
    pub fn engine(&self) -> &Arc<gesta::Store> {
        &self.store
    }

    /// The store for a console beside the server, plain or through the
    /// same wrapper.
    pub fn console(&self) -> gesta_console::ConsoleStore {
        match &self.encrypted {
            Some(e) => e.clone().into(),
            None => (*self.store).clone().into(),
        }
    }

    /// The store as the `EventStore` contract: the wrapper when the store
    /// is encrypted.
    pub(crate) fn events(&self) -> &dyn EventStore {
        match &self.encrypted {
            Some(e) => &**e,
            None => &*self.store,
        }
    }

    /// Appends a batch. It is handed over when this is called, and
    /// commits or fails as a whole even if the future is dropped: a plain
    /// store's to its committer; the wrapper's (which may write the key
    /// file, and holds a forget off while it runs) to the blocking pool.
    pub(crate) fn append(
        &self,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> impl Future<Output = gesta::Result<Appended>> + Send + 'static {
        match &self.encrypted {
            None => Either::Left(self.store.append_async(events, options)),
            Some(e) => {
                let e = e.clone();
                // The set's `Arc` goes with the task: while it is queued or
                // running the store is in use, so a tenant set cannot close
                // it and give the key file a second wrapper meanwhile (its
                // key file writes would drop each other's new keys).
                let held = self.store.clone();
                let task = tokio::task::spawn_blocking(move || {
                    let appended = e.append_with(events, options);
                    drop(held);
                    appended
                });
                Either::Right(async move {
                    task.await.unwrap_or_else(|failed| {
                        Err(gesta::Error::OutcomeUnknown {
                            path: Default::default(),
                            source: std::io::Error::other(format!("the append's task: {failed}")),
                        })
                    })
                })
            }
        }
    }

    /// Destroys `subject`'s key and redacts its events
    /// ([`Encrypted::forget`]); `None` when the store is not encrypted.
    pub(crate) fn forget(&self, subject: &str) -> Option<gesta::Result<gesta::Redacted>> {
        self.encrypted.as_ref().map(|e| e.forget(subject))
    }
}
