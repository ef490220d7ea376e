//! Crypto-shredding: [`Encrypted`], a wrapper around any [`EventStore`]
//! that seals the events naming a subject with that subject's key, and
//! [`Encrypted::forget`], which destroys the key — so the subject's data is
//! unreadable at once, on every store, without waiting for a rewrite — and
//! then redacts the subject's events, so that the next compaction removes
//! their ciphertext too. Built with the `encryption` feature.
//!
//! ```
//! use gesta::encryption::{Encrypted, EncryptionOptions};
//! use gesta::{EventStore, MemoryStore, NewEvent, Query};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Encrypted::open(MemoryStore::new(), EncryptionOptions::new(dir.path().join("KEYS")))?;
//! store.append(vec![NewEvent::new("Registered", r#"{"email":"a@b.c"}"#).tag("subject:alice")])?;
//! assert_eq!(store.read_last(&Query::tag("subject:alice"))?.unwrap().data, r#"{"email":"a@b.c"}"#);
//! // The inner store holds ciphertext only.
//! assert_ne!(store.inner().read_last(&Query::all())?.unwrap().data, r#"{"email":"a@b.c"}"#);
//!
//! store.forget("alice")?;
//! let event = store.read_last(&Query::tag("subject:alice"))?.unwrap();
//! assert!(event.data.is_empty() && event.event_type == "Registered");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The contract
//!
//! - **Subjects.** A tag that starts with the subject prefix names a
//!   subject: with `subject:` (the default), `subject:alice` names
//!   `alice`. The key file records its prefix when it is created (at the
//!   wrapper's first open, so the store remembers it is encrypted); a
//!   later open with another prefix is refused
//!   ([`EncryptionOptions::subject_prefix`]). An event carrying one such
//!   tag is sealed with the subject's key. An event may name **one**
//!   subject at most: a batch with an event carrying two subject tags is
//!   refused ([`Error::InvalidInput`], nothing appended), as is an empty
//!   subject name — sealing one event for two people would have to decide
//!   whose forget makes it unreadable, and the safe answer (either) needs
//!   nested sealing that is not built; split such an event, or name the
//!   subject it is about.
//! - **What is sealed:** the event's data and its metadata, each on its
//!   own, when not empty (an empty field stays empty: there is nothing to
//!   hide, and it reads the same before and after a forget). **What stays
//!   in clear:** the type, the tags (the subject tag too — so the subject's
//!   name is no secret: use a pseudonymous id, never an email), the
//!   stream, the id, the position, the revision and the commit time. So
//!   queries, DCB conditions, expected revisions, listings and idempotent
//!   retries work exactly as on the inner store. Snapshots, tracking info
//!   and durable cursors are passed through unsealed.
//! - **Keys** are AES-256 keys, created on a subject's first use and made
//!   durable in the key file (its own file, replaced atomically: see
//!   [`EncryptionOptions`]) **before** the append that uses them is sent to
//!   the inner store: a committed event's key is never lost to a crash. A
//!   batch that names several new subjects replaces the file once.
//! - **The cipher** is AES-256-GCM-SIV. Each sealed field is bound to the
//!   subject, the event's type and id and the field, so a sealed value
//!   moved to another event or field fails to open. **The nonce** of an
//!   event with an id is derived from the id: a retried batch seals to the
//!   same bytes, which the inner store's idempotency check needs (it
//!   compares a retry's content with what it holds). A fixed nonce per id
//!   would break an AEAD such as AES-GCM or ChaCha20-Poly1305 outright if
//!   the same id were ever sealed with other content; GCM-SIV's worst case
//!   is that equal plaintexts under the same key and nonce seal equally —
//!   that is the trade-off. An event without an id gets a random nonce.
//! - **Reads** — by query, stream, id, subscription, durable subscription —
//!   return the plaintext. A sealed field that fails to open (changed
//!   bytes, a wrong key, a key file that does not name the subject) is
//!   [`Error::Undecryptable`] naming the position: never garbage.
//! - **`forget(subject)`** ([`Encrypted::forget`]) replaces the key by a
//!   tombstone in the key file, durably; from the moment that is done
//!   every read returns the subject's events with empty data and metadata
//!   (the shape of a redacted event: type, tags, stream, revision, id,
//!   position and time stay). It then redacts the subject's events in the
//!   inner store, by the query `tag = prefix + subject` (recorded in the
//!   inner store's audit trail as that redaction), so the next compaction
//!   removes the ciphertext; and marks the tombstone done. A crash between
//!   the steps loses nothing: the key is gone, and opening the wrapper
//!   again finishes the redaction. Forgetting a subject already forgotten
//!   runs the redaction again (changing nothing if it was done); a subject
//!   the key file never named is [`Error::InvalidInput`], changing nothing.
//!   Appends wait while a forget runs, so its redaction sees every event
//!   sealed under the key it destroyed.
//! - **A forgotten subject stays forgotten:** a new append that names it
//!   is refused with [`Error::SubjectForgotten`] — retries of batches
//!   committed before the forget included. A new key would make the
//!   subject's old ciphertext (not yet compacted away) look like
//!   tampering, and a subject who comes back is better named anew.
//! - **Retroactive subject tags are refused:** `add_tags` with a tag that
//!   starts with the prefix is [`Error::InvalidInput`] — the event was
//!   stored in clear, and a subject tag would declare it sealed.
//! - **What the key file does not do:** a key destroyed in the file may
//!   survive in a copy of the file made by hand, in the file system's free
//!   blocks, or in swap; crypto-shredding is as good as the care taken of
//!   the key file. The engine's `Store::backup` never copies a key: the
//!   backup gets a key file with the prefix and no key, and is restored
//!   by putting a copy of the store's key file in its place (so a forget
//!   made after the backup reaches it). One process at a time may use a key file. The wrapper
//!   must see every append of the store from its start: an event that
//!   names a subject but was appended around the wrapper reads as
//!   [`Error::Undecryptable`]. A key file that is missing while the store
//!   names subjects, or while its mark is there, is [`Error::Corruption`]
//!   on open, never replaced by a new one. The mark
//!   ([`ENCRYPTED_MARK_NAME`], beside a key file in a store directory:
//!   [`EncryptionOptions::in_dir`]) is written at every open that finds it
//!   missing; it keeps a store whose key file is lost encrypted to every
//!   door ([`is_encrypted`]), which would otherwise open it plain and store
//!   its subjects' new events in clear. The key file is created readable
//!   by its owner only (mode 0600).
//! - **Size:** each sealed field grows by [`OVERHEAD`] bytes (29), so a
//!   field within 29 bytes of the data limit, or a batch within the batch
//!   limit, may pass the wrapper's checks and be refused by the inner
//!   store's. The key file is rewritten whole on each key creation or
//!   forget: fine for thousands of subjects, slow for millions.
//!
//! Module map: `keys` (the key file's format and its replacement), `seal`
//! (one sealed field: envelope, nonce, binding), this module (the
//! wrapper, the subject rule, forget, and [`Opener`]: the wrapper's reads
//! for callers that read the inner store themselves).

pub(crate) mod keys;
mod seal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm_siv::Aes256GcmSiv;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use zeroize::Zeroizing;

use crate::api::{EventIter, EventStore};
use crate::append::{AppendOptions, Appended};
use crate::clock::{Clock, SystemClock};
use crate::durable::{DurableSubscription, DurableSubscriptionState};
use crate::error::{Error, Result};
use crate::event::{MAX_NAME_LEN, NewEvent, RecordedEvent};
use crate::io::FileSystem;
use crate::lifecycle::{AuditEntry, MAX_TARGETED_EVENTS, Redacted, TagsAdded, Target};
use crate::listing::{Listed, Listing};
use crate::query::Query;
use crate::read::ReadOptions;
use crate::removal::{Removed, RetentionRule};
use crate::snapshots::Snapshot;
use crate::subscription::Subscription;

use keys::{Entries, Entry, KEY_LEN, KeyFile, Mark};
use seal::{Binding, Field};

pub use seal::OVERHEAD;

/// The key file's name in a store directory, for
/// [`EncryptionOptions::in_dir`].
pub const KEY_FILE_NAME: &str = crate::names::KEY_FILE_NAME;

/// The name of the mark the wrapper leaves beside a key file it opens
/// through [`EncryptionOptions::in_dir`]: it says the store is encrypted
/// when the key file is lost ([`EncryptionOptions::mark`]).
pub const ENCRYPTED_MARK_NAME: &str = crate::names::ENCRYPTED_MARK_NAME;

/// Whether the store in `dir` is encrypted: it holds the key file in its
/// default place ([`EncryptionOptions::in_dir`]), or the mark that it had
/// one. Every door that opens a store by its directory (the command, the
/// server, the console) opens it through [`Encrypted`] when it is, and so
/// refuses a store whose key file is lost rather than open it plain.
pub fn is_encrypted(dir: &Path) -> bool {
    dir.join(KEY_FILE_NAME).is_file() || dir.join(ENCRYPTED_MARK_NAME).is_file()
}

/// The subject prefix unless configured otherwise.
pub const DEFAULT_SUBJECT_PREFIX: &str = "subject:";

/// How [`Encrypted`] finds its keys and recognises subjects.
#[derive(Clone, Debug)]
pub struct EncryptionOptions {
    /// The key file. Its directory is created if missing; the file is
    /// created on the first subject's first use. For the engine's store,
    /// [`in_dir`](Self::in_dir) puts it in the store's directory; for the
    /// SQL stores, give a path of your own (not inside the database).
    pub key_file: PathBuf,
    /// Tags that start with it name a subject. The key file records the
    /// prefix it was created with: `None` (the default) takes the file's,
    /// or [`DEFAULT_SUBJECT_PREFIX`] for a new file; a prefix given must
    /// be the file's ([`Error::InvalidInput`] otherwise), since events
    /// sealed under one rule cannot be read under another.
    pub subject_prefix: Option<String>,
    /// A file that says the key file exists, kept when the key file is
    /// lost: written (durably, after the key file) at every open that
    /// finds it missing, and while it is there a missing key file is
    /// [`Error::Corruption`] instead of a new one. `None` (the default of
    /// [`new`](Self::new)): no mark, for a key file outside a store
    /// directory (the SQL stores'), where the store's own tags are the
    /// only sign of a lost key file. [`in_dir`](Self::in_dir) sets it to
    /// [`ENCRYPTED_MARK_NAME`] beside the key file.
    pub mark: Option<PathBuf>,
    /// The file system the key file is on. Default: the real one.
    pub fs: Arc<dyn FileSystem>,
    /// When keys are created and subjects forgotten (kept in the key
    /// file). Default: the system clock.
    pub clock: Arc<dyn Clock>,
}

impl EncryptionOptions {
    /// Keys in `key_file`, subjects named by `subject:` tags.
    pub fn new(key_file: impl Into<PathBuf>) -> EncryptionOptions {
        EncryptionOptions {
            key_file: key_file.into(),
            subject_prefix: None,
            mark: None,
            fs: Arc::new(crate::io::StdFs),
            clock: Arc::new(SystemClock),
        }
    }

    /// Keys in the file [`KEY_FILE_NAME`] of directory `dir` (a store's),
    /// marked by [`ENCRYPTED_MARK_NAME`] there.
    pub fn in_dir(dir: impl AsRef<Path>) -> EncryptionOptions {
        let mut options = EncryptionOptions::new(dir.as_ref().join(KEY_FILE_NAME));
        options.mark = Some(dir.as_ref().join(ENCRYPTED_MARK_NAME));
        options
    }

    /// Sets the subject prefix.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> EncryptionOptions {
        self.subject_prefix = Some(prefix.into());
        self
    }

    /// Sets the file system of the key file.
    pub fn fs(mut self, fs: Arc<dyn FileSystem>) -> EncryptionOptions {
        self.fs = fs;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> EncryptionOptions {
        self.clock = clock;
        self
    }
}

/// What the key file says of a subject ([`Encrypted::subject`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectState {
    /// The subject has a key, created at this time (microseconds since
    /// the Unix epoch).
    Live {
        /// When the key was created.
        since: u64,
    },
    /// The subject was forgotten at this time; `redacted` says whether its
    /// events' redaction in the inner store completed.
    Forgotten {
        /// When the key was destroyed.
        since: u64,
        /// Whether the redaction step finished too.
        redacted: bool,
    },
}

/// Fills `buf` from the operating system's generator (keys, and the nonces
/// of events without an id).
fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Io {
        path: PathBuf::from("<random>"),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The keys in memory, and the key file they are kept in.
struct KeyRing {
    prefix: String,
    file: KeyFile,
    clock: Arc<dyn Clock>,
    /// What the key file holds (or, after a failed replacement, what it
    /// was asked to hold: a key is dropped from memory even when the
    /// tombstone did not reach the disk).
    state: RwLock<Ring>,
    /// Serialises replacements of the key file, so readers never wait for
    /// an fsync.
    writer: Mutex<()>,
}

#[derive(Default)]
struct Ring {
    entries: Entries,
    /// The cipher of each live key, built once (AES key expansion is not
    /// free).
    ciphers: HashMap<String, Arc<Aes256GcmSiv>>,
}

impl Ring {
    fn from_entries(entries: Entries) -> Ring {
        let ciphers = entries
            .iter()
            .filter_map(|(s, e)| match e {
                Entry::Live { key, .. } => Some((s.clone(), Arc::new(seal::cipher(key)))),
                Entry::Forgotten { .. } => None,
            })
            .collect();
        Ring { entries, ciphers }
    }
}

/// How an event stands towards its subject.
enum Sealing<'a> {
    /// It names no subject.
    Clear,
    /// It names this subject.
    Subject(&'a str),
}

impl KeyRing {
    /// The subject an event's tags name, checked: one at most, not empty.
    fn sealing<'t>(&self, tags: &'t [String]) -> Result<Sealing<'t>, String> {
        let mut found = tags.iter().filter_map(|t| t.strip_prefix(&self.prefix));
        match (found.next(), found.next()) {
            (None, _) => Ok(Sealing::Clear),
            (Some(""), _) => Err(format!("the tag {:?} names an empty subject", self.prefix)),
            (Some(a), Some(b)) => Err(format!(
                "the event names two subjects, {a:?} and {b:?}; an event may name one"
            )),
            (Some(s), None) => Ok(Sealing::Subject(s)),
        }
    }

    fn check_subject(&self, subject: &str) -> Result<()> {
        if subject.is_empty() || subject.len() + self.prefix.len() > MAX_NAME_LEN {
            return Err(Error::invalid(format!(
                "a subject is 1 to {} bytes (a tag of at most {MAX_NAME_LEN} with the prefix {:?})",
                MAX_NAME_LEN - self.prefix.len(),
                self.prefix
            )));
        }
        Ok(())
    }

    /// The ciphers of `subjects`, creating (durably, in one replacement of
    /// the key file) the keys of those never seen; a forgotten subject is
    /// refused.
    fn ciphers_for(&self, subjects: &[&str]) -> Result<HashMap<String, Arc<Aes256GcmSiv>>> {
        let missing = |ring: &Ring| -> Result<Vec<String>> {
            let mut missing = Vec::new();
            for &s in subjects {
                match ring.entries.get(s) {
                    Some(Entry::Forgotten { .. }) => {
                        return Err(Error::SubjectForgotten { subject: s.into() });
                    }
                    Some(Entry::Live { .. }) => {}
                    None => missing.push(s.to_owned()),
                }
            }
            Ok(missing)
        };
        let pick = |ring: &Ring| -> HashMap<String, Arc<Aes256GcmSiv>> {
            subjects
                .iter()
                .filter_map(|&s| ring.ciphers.get(s).map(|c| (s.to_owned(), c.clone())))
                .collect()
        };
        {
            let ring = self.state.read();
            if missing(&ring)?.is_empty() {
                return Ok(pick(&ring));
            }
        }
        let _writer = self.writer.lock();
        // Another append may have created them meanwhile.
        let mut entries = self.state.read().entries.clone();
        let now = self.clock.now_micros();
        let created = missing(&Ring {
            entries: entries.clone(),
            ciphers: HashMap::new(),
        })?;
        for subject in created {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            random(key.as_mut())?;
            entries.insert(
                subject,
                Entry::Live {
                    key: Arc::new(key),
                    since: now,
                },
            );
        }
        // Durable before any event sealed with the new keys can commit.
        self.file.store(&entries)?;
        let mut ring = self.state.write();
        *ring = Ring::from_entries(entries);
        Ok(pick(&ring))
    }

    /// Replaces the subject's key by a tombstone: in memory first (so the
    /// key is never used again by this process, whatever the disk does),
    /// then durably in the key file. A subject already forgotten keeps its
    /// tombstone (rewritten, so a replacement that failed before is made
    /// good); an unknown one is refused, changing nothing.
    fn destroy(&self, subject: &str) -> Result<()> {
        let _writer = self.writer.lock();
        let entries = {
            let mut ring = self.state.write();
            let since = self.clock.now_micros();
            match ring.entries.get(subject) {
                None => {
                    return Err(Error::invalid(format!(
                        "unknown subject {subject:?}: the key file names no such subject"
                    )));
                }
                Some(Entry::Forgotten { .. }) => {}
                Some(Entry::Live { .. }) => {
                    ring.entries.insert(
                        subject.to_owned(),
                        Entry::Forgotten {
                            since,
                            redacted: false,
                        },
                    );
                    ring.ciphers.remove(subject);
                }
            }
            ring.entries.clone()
        };
        self.file.store(&entries)
    }

    /// Records that the subject's events are redacted in the inner store.
    fn mark_redacted(&self, subject: &str) -> Result<()> {
        let _writer = self.writer.lock();
        let entries = {
            let mut ring = self.state.write();
            if let Some(Entry::Forgotten { redacted, .. }) = ring.entries.get_mut(subject) {
                if *redacted {
                    return Ok(());
                }
                *redacted = true;
            }
            ring.entries.clone()
        };
        self.file.store(&entries)
    }

    /// `event` with its data and metadata opened: as stored when it names
    /// no subject or its fields are empty (never sealed, or redacted);
    /// emptied when its subject was forgotten.
    fn open_event(&self, mut event: RecordedEvent) -> Result<RecordedEvent> {
        if event.data.is_empty() && event.metadata.is_empty() {
            return Ok(event);
        }
        let undecryptable = |subject: &str, reason: &'static str| Error::Undecryptable {
            position: event.position,
            subject: subject.to_owned(),
            reason,
        };
        let subject = match self.sealing(&event.tags) {
            Ok(Sealing::Clear) => return Ok(event),
            Ok(Sealing::Subject(s)) => s,
            Err(_) => return Err(undecryptable("", "the event names no single subject")),
        };
        let cipher = {
            let ring = self.state.read();
            match ring.entries.get(subject) {
                None => {
                    return Err(undecryptable(
                        subject,
                        "the key file names no such subject (another key file?)",
                    ));
                }
                Some(Entry::Forgotten { .. }) => None,
                Some(Entry::Live { .. }) => ring.ciphers.get(subject).cloned(),
            }
        };
        let Some(cipher) = cipher else {
            event.data = Bytes::new();
            event.metadata = Bytes::new();
            return Ok(event);
        };
        let binding = Binding {
            subject,
            event_type: &event.event_type,
            id: event.id,
        };
        let open = |field: Field, sealed: &Bytes| -> Result<Bytes> {
            if sealed.is_empty() {
                return Ok(Bytes::new());
            }
            seal::open(&cipher, &binding, field, sealed)
                .map(Bytes::from)
                .map_err(|reason| undecryptable(subject, reason))
        };
        let data = open(Field::Data, &event.data)?;
        let metadata = open(Field::Metadata, &event.metadata)?;
        event.data = data;
        event.metadata = metadata;
        Ok(event)
    }
}

/// Any [`EventStore`] with crypto-shredding; see the [module
/// documentation](self) for the contract. It implements [`EventStore`]
/// itself, forwarding everything to the inner store and sealing and
/// opening what needs it; [`inner`](Self::inner) reaches the store's own
/// methods (the engine's `compact`, say).
pub struct Encrypted<S> {
    inner: S,
    ring: Arc<KeyRing>,
    /// Appends hold it shared, [`forget`](Self::forget) exclusively: the
    /// redaction of a forget then sees every event sealed under the key it
    /// destroyed, and no append can seal under it afterwards.
    gate: RwLock<()>,
}

impl<S> std::fmt::Debug for Encrypted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypted")
            .field("key_file", &self.ring.file.path)
            .field("subject_prefix", &self.ring.prefix)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore> Encrypted<S> {
    /// `inner` through the key file of `options`; finishes any forget that
    /// a crash interrupted before its redaction completed. A damaged key
    /// file is [`Error::Corruption`].
    pub fn open(inner: S, options: EncryptionOptions) -> Result<Encrypted<S>> {
        let mut file = KeyFile {
            fs: options.fs,
            path: options.key_file,
            prefix: String::new(),
        };
        let mark = options.mark.map(|path| Mark {
            fs: file.fs.clone(),
            path,
        });
        let (prefix, entries) = match (file.load()?, options.subject_prefix) {
            (Some((found, _)), Some(given)) if found != given => {
                return Err(Error::invalid(format!(
                    "the key file {} names subjects by the prefix {found:?}, not {given:?}",
                    file.path.display()
                )));
            }
            (Some(loaded), _) => loaded,
            (None, given) => {
                let prefix = given.unwrap_or_else(|| DEFAULT_SUBJECT_PREFIX.to_owned());
                if prefix.is_empty() || prefix.len() >= MAX_NAME_LEN {
                    return Err(Error::invalid(format!(
                        "the subject prefix is 1 to {} bytes",
                        MAX_NAME_LEN - 1
                    )));
                }
                if let Some(mark) = &mark
                    && mark.exists()?
                {
                    return Err(mark.lost(&file.path));
                }
                // A store that already names subjects had a key file: its
                // sealed events would read as tampered with, and a subject
                // appended to again would get a new key without a word.
                let named = inner.list(crate::Listing::Tags, &prefix, None, 1)?;
                if let Some(tag) = named.first() {
                    return Err(Error::Corruption {
                        file: file.path.clone(),
                        offset: 0,
                        reason: format!(
                            "the key file is missing, but the store holds events of subjects \
                             (tagged {:?}, …): their keys are in it. Put the key file back (a \
                             backup's holds no key); a new one would make their events \
                             unreadable",
                            tag.name
                        ),
                    });
                }
                // Created at once, so that the store remembers it is
                // encrypted (and under which prefix) from the first open.
                file.prefix = prefix.clone();
                file.store(&Entries::new())?;
                (prefix, Entries::new())
            }
        };
        file.prefix = prefix.clone();
        // After the key file, so that a crash between the two never
        // leaves a mark without one (which would refuse every open).
        if let Some(mark) = &mark {
            mark.ensure()?;
        }
        let pending: Vec<String> = entries
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Entry::Forgotten {
                        redacted: false,
                        ..
                    }
                )
            })
            .map(|(s, _)| s.clone())
            .collect();
        let store = Encrypted {
            inner,
            ring: Arc::new(KeyRing {
                prefix,
                file,
                clock: options.clock,
                state: RwLock::new(Ring::from_entries(entries)),
                writer: Mutex::new(()),
            }),
            gate: RwLock::new(()),
        };
        for subject in pending {
            store.redact_subject(&subject)?;
            store.ring.mark_redacted(&subject)?;
        }
        Ok(store)
    }

    /// The store inside, for its own methods. Appending to it directly
    /// stores in clear what the wrapper would seal.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The store inside, the wrapper closed.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The key file.
    pub fn key_file(&self) -> &Path {
        &self.ring.file.path
    }

    /// The subject prefix.
    pub fn subject_prefix(&self) -> &str {
        &self.ring.prefix
    }

    /// What the key file says of `subject` (`None`: it never named it).
    pub fn subject(&self, subject: &str) -> Option<SubjectState> {
        self.ring
            .state
            .read()
            .entries
            .get(subject)
            .map(|e| match e {
                Entry::Live { since, .. } => SubjectState::Live { since: *since },
                Entry::Forgotten { since, redacted } => SubjectState::Forgotten {
                    since: *since,
                    redacted: *redacted,
                },
            })
    }

    /// Destroys `subject`'s key durably — its events read with empty data
    /// and metadata from then on — then redacts its events in the inner
    /// store, so compaction removes their ciphertext; returns what the
    /// redaction did. See the [module documentation](self) for the
    /// contract, crashes and retries included.
    pub fn forget(&self, subject: &str) -> Result<Redacted> {
        self.ring.check_subject(subject)?;
        let _gate = self.gate.write();
        self.ring.destroy(subject)?;
        let redacted = self.redact_subject(subject)?;
        self.ring.mark_redacted(subject)?;
        Ok(redacted)
    }

    /// Redacts every event tagged with `subject` in the inner store: by
    /// the query (one audit entry that names the subject tag) unless there
    /// are more events than one operation may target.
    fn redact_subject(&self, subject: &str) -> Result<Redacted> {
        let query = Query::tag(format!("{}{subject}", self.ring.prefix));
        let mut positions = Vec::new();
        for e in self.inner.read(&query, ReadOptions::forwards())? {
            positions.push(e?.position);
        }
        if positions.len() <= MAX_TARGETED_EVENTS {
            return self.inner.redact(&Target::Query(query));
        }
        let mut total = Redacted::default();
        for chunk in positions.chunks(MAX_TARGETED_EVENTS) {
            let r = self.inner.redact(&Target::Positions(chunk.to_vec()))?;
            total.targeted += r.targeted;
            total.redacted += r.redacted;
        }
        Ok(total)
    }

    /// The batch sealed: each event that names a subject gets its data and
    /// metadata sealed with the subject's key (created if new).
    fn seal_batch(&self, events: Vec<NewEvent>) -> Result<Vec<NewEvent>> {
        let mut subjects = Vec::with_capacity(events.len());
        for e in &events {
            match self.ring.sealing(&e.tags).map_err(Error::invalid)? {
                Sealing::Clear => subjects.push(None),
                Sealing::Subject(s) => {
                    self.ring.check_subject(s)?;
                    subjects.push(Some(s.to_owned()));
                }
            }
        }
        let mut distinct: Vec<&str> = subjects.iter().flatten().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return Ok(events);
        }
        let ciphers = self.ring.ciphers_for(&distinct)?;
        let mut sealed = Vec::with_capacity(events.len());
        for (mut e, subject) in events.into_iter().zip(&subjects) {
            if let Some(subject) = subject {
                let cipher = ciphers
                    .get(subject)
                    .ok_or_else(|| Error::SubjectForgotten {
                        subject: subject.clone(),
                    })?;
                let nonce = seal::nonce_for(e.id)?;
                let binding = Binding {
                    subject,
                    event_type: &e.event_type,
                    id: e.id,
                };
                let seal = |field, plain: &Bytes| {
                    if plain.is_empty() {
                        Bytes::new()
                    } else {
                        Bytes::from(seal::seal(cipher, &nonce, &binding, field, plain))
                    }
                };
                let data = seal(Field::Data, &e.data);
                let metadata = seal(Field::Metadata, &e.metadata);
                e.data = data;
                e.metadata = metadata;
            }
            sealed.push(e);
        }
        Ok(sealed)
    }

    fn map_event(&self) -> Arc<dyn Fn(RecordedEvent) -> Result<RecordedEvent> + Send + Sync> {
        let ring = self.ring.clone();
        Arc::new(move |e| ring.open_event(e))
    }

    /// What every read through the wrapper does to an event of the inner
    /// store, for a caller that must read the inner store itself: a read
    /// whose iterator outlives a borrow of the wrapper (a server streams
    /// it from another thread). It shares the wrapper's keys, so a
    /// [`forget`](Self::forget) empties the subject's events in it at once.
    pub fn opener(&self) -> Opener {
        Opener {
            ring: self.ring.clone(),
        }
    }
}

/// Opens the events of an encrypted store as a read through [`Encrypted`]
/// does ([`Encrypted::opener`]), or as the key file said when it was
/// loaded ([`Opener::load`]). Cheap to clone.
#[derive(Clone)]
pub struct Opener {
    ring: Arc<KeyRing>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("key_file", &self.ring.file.path)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// The keys in the key file of `options` as it is now, read only:
    /// for a reader outside the process that owns the store (which may
    /// create keys and forget subjects meanwhile: load again to see
    /// that). `None` when there is no key file; but a key file missing
    /// beside its mark ([`EncryptionOptions::mark`]) is
    /// [`Error::Corruption`], as is a damaged one. It opens the file read
    /// only, never writes it or the mark, and never finishes an
    /// interrupted forget.
    pub fn load(options: EncryptionOptions) -> Result<Option<Opener>> {
        let mut file = KeyFile {
            fs: options.fs,
            path: options.key_file,
            prefix: String::new(),
        };
        let Some((prefix, entries)) = file.load()? else {
            if let Some(path) = options.mark {
                let mark = Mark { fs: file.fs, path };
                if mark.exists()? {
                    return Err(mark.lost(&file.path));
                }
            }
            return Ok(None);
        };
        file.prefix = prefix.clone();
        Ok(Some(Opener {
            ring: Arc::new(KeyRing {
                prefix,
                file,
                clock: options.clock,
                state: RwLock::new(Ring::from_entries(entries)),
                writer: Mutex::new(()),
            }),
        }))
    }

    /// `event` as a read through the wrapper returns it: opened, emptied
    /// if its subject was forgotten, as stored if it names none;
    /// [`Error::Undecryptable`] if a sealed field fails to open.
    pub fn open(&self, event: RecordedEvent) -> Result<RecordedEvent> {
        self.ring.open_event(event)
    }

    /// The subject prefix.
    pub fn subject_prefix(&self) -> &str {
        &self.ring.prefix
    }
}

impl<S: EventStore> EventStore for Encrypted<S> {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        // The plaintext against the limits, so that the errors are the
        // inner store's own (the sealed batch is checked again inside).
        crate::validation::check_append(&events, &options)?;
        let _gate = self.gate.read();
        let sealed = self.seal_batch(events)?;
        self.inner.append_with(sealed, options)
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        let ring = &self.ring;
        Ok(Box::new(
            self.inner
                .read(query, options)?
                .map(move |e| e.and_then(|e| ring.open_event(e))),
        ))
    }

    fn read_last(&self, query: &Query) -> Result<Option<RecordedEvent>> {
        self.inner
            .read_last(query)?
            .map(|e| self.ring.open_event(e))
            .transpose()
    }

    fn head(&self) -> Result<u64> {
        self.inner.head()
    }

    fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        self.inner.stream_revision(stream)
    }

    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        let ring = &self.ring;
        Ok(Box::new(
            self.inner
                .read_stream(stream, options)?
                .map(move |e| e.and_then(|e| ring.open_event(e))),
        ))
    }

    fn read_stream_last(&self, stream: &str) -> Result<Option<RecordedEvent>> {
        self.inner
            .read_stream_last(stream)?
            .map(|e| self.ring.open_event(e))
            .transpose()
    }

    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        self.inner.position_at(timestamp_micros)
    }

    fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        self.inner
            .event_by_id(id)?
            .map(|e| self.ring.open_event(e))
            .transpose()
    }

    fn list(
        &self,
        what: Listing,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Listed>> {
        self.inner.list(what, prefix, after, limit)
    }

    fn subscribe(&self, query: &Query, after: u64) -> Result<Subscription> {
        let mut sub = self.inner.subscribe(query, after)?;
        sub.map_events(self.map_event())?;
        Ok(sub)
    }

    fn save_snapshot(&self, key: &str, position: u64, state: &[u8]) -> Result<()> {
        self.inner.save_snapshot(key, position, state)
    }

    fn load_snapshot(&self, key: &str, at_or_before: u64) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(key, at_or_before)
    }

    fn list_snapshots(&self, key: &str) -> Result<Vec<u64>> {
        self.inner.list_snapshots(key)
    }

    fn delete_snapshot(&self, key: &str, position: u64) -> Result<bool> {
        self.inner.delete_snapshot(key, position)
    }

    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        self.inner.tracking_info(source)
    }

    fn add_tags(&self, target: &Target, tags: &[String]) -> Result<TagsAdded> {
        if let Some(t) = tags.iter().find(|t| t.starts_with(&self.ring.prefix)) {
            return Err(Error::invalid(format!(
                "the tag {t:?} names a subject: subject tags cannot be added after the fact (the events were stored in clear)"
            )));
        }
        self.inner.add_tags(target, tags)
    }

    fn redact(&self, target: &Target) -> Result<Redacted> {
        self.inner.redact(target)
    }

    fn remove(&self, target: &Target) -> Result<Removed> {
        self.inner.remove(target)
    }

    fn delete_stream(&self, stream: &str) -> Result<Removed> {
        self.inner.delete_stream(stream)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<Removed> {
        self.inner.truncate_stream(stream, before)
    }

    fn set_retention(&self, rule: &RetentionRule) -> Result<()> {
        self.inner.set_retention(rule)
    }

    fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        self.inner.retention_rules()
    }

    fn enforce_retention(&self) -> Result<Removed> {
        self.inner.enforce_retention()
    }

    fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.inner.audit_log(after, limit)
    }

    fn subscribe_durable(&self, name: &str, query: &Query) -> Result<DurableSubscription> {
        let mut sub = self.inner.subscribe_durable(name, query)?;
        sub.map_events(self.map_event())?;
        Ok(sub)
    }

    fn durable_subscriptions(&self) -> Result<Vec<DurableSubscriptionState>> {
        self.inner.durable_subscriptions()
    }

    fn delete_durable_subscription(&self, name: &str) -> Result<bool> {
        self.inner.delete_durable_subscription(name)
    }
}
