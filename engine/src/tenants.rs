//! Many stores in one process: a [`TenantSet`] opens each tenant's store on
//! first use and closes the least recently used idle one when more than
//! `max_open` are open, so that the threads, open files, connections and
//! memory of a process are bounded by `max_open`, not by the number of
//! tenants. It also creates, lists and purges tenants and checks
//! per-tenant quotas before appends.
//!
//! Where a tenant's store lives is a [`TenantHome`]'s business: for the
//! engine, [`StoreDirs`] keeps it in `<root>/tenants/<name>/`, a normal store
//! directory ([`Tenants`] is the set over it); the SQL backends have their
//! own homes (a file per tenant for SQLite, a schema per tenant for
//! PostgreSQL) under the same set, so the bound, the eviction, the quotas
//! and the name rules are one piece of code for every store.
//!
//! A tenant's name is its directory's (or schema's) name and nothing
//! else: 1 to 64 bytes of `a-z`, `0-9`, `-` and `_`, starting with a letter
//! or digit ([`check_tenant_name`]), so no name can reach outside its
//! home's root, into another tenant, or into SQL text. A home may accept
//! fewer (PostgreSQL's schema names are at most 63 bytes), never more.
//!
//! Bounds, for the engine's stores: each open store runs a committer and
//! a flusher thread (and a projector once a projection is registered, and
//! a retention thread once it has a retention rule), holds its active
//! segment, index runs and memtable; with `max_open` stores open at most,
//! a process runs at most `2 × max_open` store threads, and up to
//! `4 × max_open` with projections and retention rules in every store. A
//! store handed out by [`TenantSet::get`] stays open while its `Arc` is held
//! (an in-flight call or an open subscription); when every open store is
//! held, opening one more is refused with [`TenantError::Busy`] rather than
//! exceeding the bound. The idle store that makes room is closed once the
//! new one has opened (so a store that fails to open costs no other
//! tenant its store), and outside the set's lock (its companion's last
//! round may take long; other tenants' calls go on, and a call of the
//! tenant being closed waits for the close): for that while one store
//! more than `max_open` is open, and a call that needs room meanwhile
//! waits for the close. A
//! store that failed in a way only reopening cures (the engine's poisoned
//! store: [`TenantHome::is_failed`]) is closed and reopened at the first
//! call that finds it idle.
//!
//! A set may run a [`Companion`] beside each open store
//! ([`TenantSet::with_companions`]): made right after the store opens and
//! finished right before it closes, whichever way it closes (to make room,
//! purged, or with the set). `gesta serve --tenants --ship-to` ships each
//! tenant's store to its own prefix of a bucket this way.

mod dirs;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::api::EventStore;
use crate::append::{AppendOptions, Appended};
use crate::error::Error;
use crate::event::NewEvent;
use crate::options::Options;

pub use dirs::{DirHome, DirStore, StoreDirs, TenantDirs, dir_bytes};

/// The longest tenant name, in bytes.
pub const MAX_TENANT_NAME: usize = 64;

/// How tenants' stores are opened and bounded.
#[derive(Clone, Debug)]
pub struct TenantOptions {
    /// The options each tenant's store is opened with. Default
    /// [`Options::default`].
    pub store: Options,
    /// The most stores open at once. Default 64.
    pub max_open: usize,
    /// The most events a tenant may hold; an append that would pass it is
    /// refused with [`TenantError::QuotaExceeded`]. Default none.
    pub max_events: Option<u64>,
    /// The most bytes a tenant's files may take on disk (preallocated
    /// segment space included); an append once they take it is refused
    /// with [`TenantError::QuotaExceeded`]. Default none.
    pub max_bytes: Option<u64>,
}

impl Default for TenantOptions {
    fn default() -> Self {
        TenantOptions {
            store: Options::default(),
            max_open: TenantLimits::default().max_open,
            max_events: None,
            max_bytes: None,
        }
    }
}

impl TenantOptions {
    /// The bounds and quotas of these options.
    pub fn limits(&self) -> TenantLimits {
        TenantLimits {
            max_open: self.max_open,
            max_events: self.max_events,
            max_bytes: self.max_bytes,
        }
    }
}

/// The bound on open stores and the per-tenant quotas of a [`TenantSet`],
/// whatever its stores are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantLimits {
    /// The most stores open at once (at least 1). Default 64.
    pub max_open: usize,
    /// The most events (positions, removed ones included) a tenant may
    /// hold; an append that would pass it is refused with
    /// [`TenantError::QuotaExceeded`]. Default none.
    pub max_events: Option<u64>,
    /// The most bytes a tenant's storage may take, as its home measures
    /// it ([`TenantHome::bytes`]); an append once it takes them is refused
    /// with [`TenantError::QuotaExceeded`]. Default none.
    pub max_bytes: Option<u64>,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            max_open: 64,
            max_events: None,
            max_bytes: None,
        }
    }
}

/// Why a tenant operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// The name is not a valid tenant name.
    #[error("invalid tenant name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No tenant has this name.
    #[error("no tenant named {0:?}")]
    Unknown(String),
    /// A tenant with this name exists already.
    #[error("a tenant named {0:?} exists already")]
    Exists(String),
    /// The append would take the tenant over a quota; nothing was appended.
    #[error("tenant {tenant:?} is over its quota: {what}")]
    QuotaExceeded {
        /// The tenant.
        tenant: String,
        /// Which quota, and by how much.
        what: String,
    },
    /// Every open store is in use, so no other can be opened now; retry
    /// later.
    #[error("all {0} open tenant stores are in use; retry later")]
    Busy(usize),
    /// The tenant's store is in use (a purge waits for none).
    #[error("tenant {0:?} is in use")]
    InUse(String),
    /// The companion of the tenant's store could not be made (see
    /// [`TenantSet::with_companions`]); the store was closed again.
    #[error("tenant {tenant:?}: {reason}")]
    Companion {
        /// The tenant.
        tenant: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A tenant's result.
pub type TenantResult<T> = std::result::Result<T, TenantError>;

/// Checks a tenant name; see the module documentation.
pub fn check_tenant_name(name: &str) -> TenantResult<()> {
    let invalid = |reason| {
        Err(TenantError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_TENANT_NAME {
        return invalid("it is longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return invalid("only a-z, 0-9, '-' and '_' are allowed");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("it must start with a letter or a digit");
    }
    Ok(())
}

/// Where the stores of a [`TenantSet`] live, and how one is made, opened,
/// closed, measured and removed. The set checks every name with
/// [`check_name`](TenantHome::check_name) first and calls `create` and
/// `purge` under its lock, after finding the tenant missing or present,
/// so that a home need not guard against concurrent calls of its own set.
pub trait TenantHome: Send + Sync {
    /// A tenant's store.
    type Store: Send + Sync;

    /// Checks a name: [`check_tenant_name`], and whatever narrower rule
    /// the home has (an error is [`TenantError::InvalidName`]).
    fn check_name(&self, name: &str) -> TenantResult<()> {
        check_tenant_name(name)
    }

    /// Whether the tenant exists.
    fn exists(&self, name: &str) -> TenantResult<bool>;

    /// Makes an empty tenant ([`TenantError::Exists`] if it exists).
    fn create(&self, name: &str) -> TenantResult<()>;

    /// The tenants' names, in any order; names that are not valid tenant
    /// names are dropped by the set.
    fn list(&self) -> TenantResult<Vec<String>>;

    /// Opens an existing tenant's store.
    fn open(&self, name: &str) -> TenantResult<Self::Store>;

    /// Closes a store no one holds any more (dropping it, by default).
    fn close(&self, _name: &str, _store: &Self::Store) -> TenantResult<()> {
        Ok(())
    }

    /// Removes an existing tenant, its store closed, and everything it
    /// holds, so that a crash midway leaves either the whole tenant or
    /// nothing that can be opened as it.
    fn purge(&self, name: &str) -> TenantResult<()>;

    /// The events the tenant holds, for the events quota: its head.
    fn events(&self, store: &Self::Store) -> TenantResult<u64>;

    /// The bytes the tenant's storage takes, for the bytes quota.
    fn bytes(&self, name: &str, store: &Self::Store) -> TenantResult<u64>;

    /// Whether the store has failed in a way only reopening it cures
    /// (the engine's poisoned store, after a failed write or sync): the
    /// set then closes and reopens it once no call holds it. No, by
    /// default.
    fn is_failed(&self, _store: &Self::Store) -> bool {
        false
    }
}

/// What runs beside an open tenant store and must end before the store
/// closes (a shipper, whose last round reads the store); see
/// [`TenantSet::with_companions`].
pub trait Companion: Send + Sync {
    /// Ends it, the store still open. Called once, before the set closes
    /// the store; what it reports goes to the log.
    fn finish(self: Box<Self>) -> Result<(), String>;
}

/// Makes the [`Companion`] of a tenant's store just opened: called with
/// the tenant's name and store (a companion may keep a clone of a
/// [`Store`](crate::Store), a handle; not the `Arc` the set hands out,
/// which would keep the store from ever being idle); an error closes the
/// store again and fails the call that opened it.
pub type CompanionMaker<S> =
    Arc<dyn Fn(&str, &S) -> Result<Box<dyn Companion>, String> + Send + Sync>;

struct Slot<S> {
    store: Arc<S>,
    /// The tick of its last use, for least-recently-used eviction.
    used: u64,
    companion: Option<Box<dyn Companion>>,
}

struct Open<S> {
    stores: HashMap<String, Slot<S>>,
    tick: u64,
    /// Tenants whose store was taken out to make room and is being closed
    /// outside the lock (its companion's last round may take long): a call
    /// of one waits for the close, since the store's directory is locked
    /// until then.
    closing: HashSet<String>,
}

/// A store taken out of the set being closed: its name leaves
/// [`Open::closing`] when this is dropped, the close done (or its
/// companion panicked), and the calls waiting for it go on.
struct Closing<'s, H: TenantHome> {
    set: &'s TenantSet<H>,
    name: String,
}

impl<H: TenantHome> Drop for Closing<'_, H> {
    fn drop(&mut self) {
        self.set.open.lock().closing.remove(&self.name);
        self.set.closed.notify_all();
    }
}

/// The tenants of a home; see the module documentation.
pub struct TenantSet<H: TenantHome> {
    home: H,
    limits: TenantLimits,
    open: Mutex<Open<H::Store>>,
    /// Signalled when a store in [`Open::closing`] has closed.
    closed: Condvar,
    companions: Option<CompanionMaker<H::Store>>,
}

/// The engine's tenants: stores under `<root>/tenants/`.
pub type Tenants = TenantSet<StoreDirs>;

impl<H: TenantHome + std::fmt::Debug> std::fmt::Debug for TenantSet<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSet")
            .field("home", &self.home)
            .field("open", &self.open_count())
            .finish()
    }
}

impl Tenants {
    /// The tenants under `root` (its `tenants/` directory is created if
    /// missing, and purges a crash interrupted are finished). Opens no
    /// store.
    pub fn open(root: impl AsRef<Path>, options: TenantOptions) -> TenantResult<Tenants> {
        let limits = options.limits();
        Ok(TenantSet::new(
            StoreDirs::open(root, options.store)?,
            limits,
        ))
    }
}

impl<H: TenantHome> TenantSet<H> {
    /// The tenants of `home`, bounded by `limits`. Opens no store.
    pub fn new(home: H, limits: TenantLimits) -> TenantSet<H> {
        TenantSet {
            home,
            limits: TenantLimits {
                max_open: limits.max_open.max(1),
                ..limits
            },
            open: Mutex::new(Open {
                stores: HashMap::new(),
                tick: 0,
                closing: HashSet::new(),
            }),
            closed: Condvar::new(),
            companions: None,
        }
    }

    /// Runs a companion beside each store from now on opened: `make` is
    /// called right after a tenant's store opens, and what it made is
    /// finished right before that store closes.
    pub fn with_companions(mut self, make: CompanionMaker<H::Store>) -> TenantSet<H> {
        self.companions = Some(make);
        self
    }

    /// Finishes a slot's companion, then closes its store.
    fn close_slot(&self, name: &str, slot: Slot<H::Store>) -> TenantResult<()> {
        if let Some(companion) = slot.companion
            && let Err(e) = companion.finish()
        {
            log::warn!("gesta: the companion of tenant {name:?} ended with: {e}");
        }
        self.home.close(name, &slot.store)
    }

    /// Where the stores live.
    pub fn home(&self) -> &H {
        &self.home
    }

    /// The bound and the quotas.
    pub fn limits(&self) -> TenantLimits {
        self.limits
    }

    /// Creates a tenant (its store is made on first use).
    pub fn create(&self, name: &str) -> TenantResult<()> {
        self.home.check_name(name)?;
        // Under the lock, so that a concurrent create of the same name
        // cannot also succeed.
        let _open = self.open.lock();
        if self.home.exists(name)? {
            return Err(TenantError::Exists(name.to_owned()));
        }
        self.home.create(name)
    }

    /// Every tenant's name, sorted.
    pub fn list(&self) -> TenantResult<Vec<String>> {
        let mut names = self.home.list()?;
        names.retain(|name| self.home.check_name(name).is_ok());
        names.sort();
        Ok(names)
    }

    /// The tenant's store, opened now if it is not open. Hold the `Arc`
    /// (not a clone of the store) for as long as the store is used: an
    /// open store no `Arc` holds may be closed to make room for another.
    pub fn get(&self, name: &str) -> TenantResult<Arc<H::Store>> {
        self.home.check_name(name)?;
        let mut open = self.open.lock();
        loop {
            self.wait_closed(&mut open, name);
            open.tick += 1;
            let tick = open.tick;
            if let Some(slot) = open.stores.get_mut(name) {
                slot.used = tick;
                // A failed store answers every call with its failure until
                // it is reopened: once no call holds it, it is, here.
                // Held, it is handed out as it is (its callers see the
                // failure).
                let failed = self.home.is_failed(&slot.store);
                if !failed || Arc::strong_count(&slot.store) > 1 {
                    return Ok(slot.store.clone());
                }
                if let Some(slot) = open.stores.remove(name) {
                    log::warn!("gesta: reopening tenant {name:?}, whose store failed");
                    self.close_quietly(name, slot);
                }
            }
            // One store closed to make room at a time: a full set waits
            // for it, so that no more than one store past the bound is
            // ever open.
            if open.stores.len() >= self.limits.max_open && !open.closing.is_empty() {
                self.closed.wait(&mut open);
                continue;
            }
            break;
        }
        let tick = open.tick;
        if !self.home.exists(name)? {
            return Err(TenantError::Unknown(name.to_owned()));
        }
        // The store to close to make room, chosen now (none idle: busy)
        // and closed only once this one opened, so that a tenant whose
        // store fails to open costs no other tenant its open store. For
        // that moment the set holds one store more than its bound.
        let evict = match open.stores.len() >= self.limits.max_open {
            false => None,
            true => match open
                .stores
                .iter()
                .filter(|(_, slot)| Arc::strong_count(&slot.store) == 1)
                .min_by_key(|(_, slot)| slot.used)
            {
                Some((idle, _)) => Some(idle.clone()),
                None => return Err(TenantError::Busy(open.stores.len())),
            },
        };
        let store = Arc::new(self.home.open(name)?);
        let companion = match &self.companions {
            Some(make) => match make(name, store.as_ref()) {
                Ok(companion) => Some(companion),
                Err(reason) => {
                    if let Err(e) = self.home.close(name, &store) {
                        log::warn!("gesta: closing tenant {name:?} failed: {e}");
                    }
                    return Err(TenantError::Companion {
                        tenant: name.to_owned(),
                        reason,
                    });
                }
            },
            None => None,
        };
        // Still idle: every new hold of an open store is taken under the
        // lock this holds.
        let evicted = evict.and_then(|idle| open.stores.remove_entry(&idle));
        open.stores.insert(
            name.to_owned(),
            Slot {
                store: store.clone(),
                used: tick,
                companion,
            },
        );
        // Closed outside the lock, so that the other tenants' calls do not
        // wait for its companion's last round or its index flush.
        if let Some((idle, slot)) = evicted {
            open.closing.insert(idle.clone());
            drop(open);
            let done = Closing {
                set: self,
                name: idle,
            };
            self.close_quietly(&done.name, slot);
        }
        Ok(store)
    }

    /// Waits while `name`'s store is being closed outside the lock.
    fn wait_closed(&self, open: &mut parking_lot::MutexGuard<'_, Open<H::Store>>, name: &str) {
        while open.closing.contains(name) {
            self.closed.wait(open);
        }
    }

    /// Closes a slot taken out of the set, logging a failure: appends it
    /// acknowledged are durable already, and a failure to flush its index
    /// costs only replay time at the next open.
    fn close_quietly(&self, name: &str, slot: Slot<H::Store>) {
        if let Err(e) = self.close_slot(name, slot) {
            log::warn!("gesta: closing tenant {name:?} failed: {e}");
        }
    }

    /// Refuses adding `events` events to `store`, the tenant `name`'s, if
    /// a quota forbids it.
    pub fn check_quota(&self, name: &str, store: &H::Store, events: u64) -> TenantResult<()> {
        self.check_quota_with(name, store, events, 0)
    }

    /// [`check_quota`](Self::check_quota), counting `elsewhere` bytes the
    /// tenant takes outside its store (a server's backups of it) against
    /// its byte quota too.
    pub fn check_quota_with(
        &self,
        name: &str,
        store: &H::Store,
        events: u64,
        elsewhere: u64,
    ) -> TenantResult<()> {
        if let Some(max) = self.limits.max_events {
            let after = self.home.events(store)?.saturating_add(events);
            if after > max {
                return Err(TenantError::QuotaExceeded {
                    tenant: name.to_owned(),
                    what: format!("{after} events would pass the limit of {max}"),
                });
            }
        }
        if let Some(max) = self.limits.max_bytes {
            let bytes = self.home.bytes(name, store)?.saturating_add(elsewhere);
            if bytes >= max {
                return Err(TenantError::QuotaExceeded {
                    tenant: name.to_owned(),
                    what: format!(
                        "its files{} take {bytes} bytes, the limit is {max}",
                        if elsewhere > 0 { " and backups" } else { "" }
                    ),
                });
            }
        }
        Ok(())
    }

    /// Deletes a tenant and everything its store holds. Refused while its
    /// store is in use. What its companion left elsewhere stays: a tenant
    /// shipped to a bucket keeps its prefix there, which a new tenant of
    /// the same name would find (its shipper refuses a prefix whose head
    /// is above its store's) and `gesta restore` would bring back; remove
    /// the prefix with the bucket's own tools.
    pub fn purge(&self, name: &str) -> TenantResult<()> {
        self.home.check_name(name)?;
        let mut open = self.open.lock();
        self.wait_closed(&mut open, name);
        if let Some(slot) = open.stores.get(name) {
            if Arc::strong_count(&slot.store) > 1 {
                return Err(TenantError::InUse(name.to_owned()));
            }
            if let Some(slot) = open.stores.remove(name) {
                self.close_slot(name, slot)?;
            }
        }
        if !self.home.exists(name)? {
            return Err(TenantError::Unknown(name.to_owned()));
        }
        self.home.purge(name)
    }

    /// How many tenant stores are open now.
    pub fn open_count(&self) -> usize {
        self.open.lock().stores.len()
    }

    /// Calls `f` with each tenant whose store is open now and its store,
    /// by name (for metrics: a walk over what is open, which is bounded).
    /// One store is held at a time, and the set's lock not during `f`: a
    /// walk holding every open store would leave none idle to close, and
    /// every tenant whose store is closed would be refused as busy
    /// meanwhile.
    pub fn for_each_open(&self, mut f: impl FnMut(&str, &H::Store)) {
        let mut names: Vec<String> = self.open.lock().stores.keys().cloned().collect();
        names.sort();
        for name in names {
            let store = self.open.lock().stores.get(&name).map(|s| s.store.clone());
            if let Some(store) = store {
                f(&name, &store);
            }
        }
    }

    /// Closes every open store (and waits for those being closed).
    pub fn close(&self) -> TenantResult<()> {
        let stores: Vec<_> = {
            let mut open = self.open.lock();
            while !open.closing.is_empty() {
                self.closed.wait(&mut open);
            }
            open.stores.drain().collect()
        };
        let mut first_error = Ok(());
        for (name, slot) in stores {
            // Every store is closed even if one fails.
            if let Err(e) = self.close_slot(&name, slot)
                && first_error.is_ok()
            {
                first_error = Err(e);
            }
        }
        first_error
    }
}

impl<H: TenantHome> TenantSet<H>
where
    H::Store: EventStore,
{
    /// Appends to the tenant's store after checking its quotas.
    /// Concurrent appends to one tenant are checked against the same
    /// state, so together they may pass a quota by what they carry.
    pub fn append(
        &self,
        name: &str,
        events: Vec<NewEvent>,
        options: AppendOptions,
    ) -> TenantResult<Appended> {
        let store = self.get(name)?;
        self.check_append_quota(name, &store, &events)?;
        Ok(store.append_with(events, options)?)
    }

    /// [`check_quota`](Self::check_quota) for an append of `events`, but
    /// an append that names an event id the store holds passes: the store
    /// adds nothing for it (it is a retry of a committed batch, answered
    /// with its positions, or a reuse of an id, refused), so refusing it
    /// as over quota would tell a client whose earlier answer was lost
    /// that its committed events are not in the store.
    pub fn check_append_quota(
        &self,
        name: &str,
        store: &H::Store,
        events: &[NewEvent],
    ) -> TenantResult<()> {
        match self.check_quota(name, store, events.len() as u64) {
            Err(TenantError::QuotaExceeded { .. }) if holds_an_id(store, events)? => Ok(()),
            checked => checked,
        }
    }
}

/// Whether `store` holds an event with the id of one of `events`.
fn holds_an_id(store: &impl EventStore, events: &[NewEvent]) -> TenantResult<bool> {
    for id in events.iter().filter_map(|e| e.id) {
        if store.event_by_id_with(id, &mut |_| {})? {
            return Ok(true);
        }
    }
    Ok(false)
}
