//! Which store a call reaches. A server serves one store, or — started
//! over a [`gesta::tenants::Tenants`] root with a key file — many: then
//! every call's API key names exactly one tenant (the key check puts it in
//! the request's extensions) and the call reaches that tenant's store and
//! no other. Nothing in a request names a tenant, so no caller can choose
//! another's.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use gesta::encryption::{Encrypted, EncryptionOptions, is_encrypted};
use gesta::tenants::{TenantError, Tenants, check_tenant_name};
use tonic::{Request, Status};

use crate::ServeError;
use crate::served::Served;
use crate::wording::Wording;

/// The tenant of a call, from its API key.
#[derive(Clone, Debug)]
pub(crate) struct Tenant(pub(crate) Arc<str>);

/// The API keys of the tenants: each key names exactly one tenant.
#[derive(Clone, Debug, Default)]
pub struct TenantKeys {
    keys: HashMap<String, String>,
}

impl TenantKeys {
    /// Reads a key file: one `TENANT KEY` pair per line, blank lines and
    /// lines starting with `#` ignored. A tenant may have several keys; a
    /// key may name only one tenant.
    pub fn read(path: &Path) -> Result<TenantKeys, ServeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))?;
        TenantKeys::parse(&text).map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses a key file's text; see [`read`](Self::read).
    pub fn parse(text: &str) -> Result<TenantKeys, String> {
        let mut keys = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(tenant), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {}: expected TENANT KEY", i + 1));
            };
            check_tenant_name(tenant).map_err(|e| format!("line {}: {e}", i + 1))?;
            if keys.insert(key.to_owned(), tenant.to_owned()).is_some() {
                return Err(format!("line {}: a key names two tenants", i + 1));
            }
        }
        if keys.is_empty() {
            return Err("no keys".into());
        }
        Ok(TenantKeys { keys })
    }

    /// Adds a key of `tenant`.
    pub fn insert(&mut self, tenant: &str, key: &str) -> Result<(), String> {
        check_tenant_name(tenant).map_err(|e| e.to_string())?;
        if key.is_empty() {
            return Err("an empty key".into());
        }
        if self.keys.contains_key(key) {
            return Err("a key names two tenants".into());
        }
        self.keys.insert(key.to_owned(), tenant.to_owned());
        Ok(())
    }

    /// `(authorization header value, tenant)` pairs, for the key check.
    pub(crate) fn bearers(&self) -> Vec<(Vec<u8>, Arc<str>)> {
        self.keys
            .iter()
            .map(|(key, tenant)| {
                (
                    format!("Bearer {key}").into_bytes(),
                    Arc::from(tenant.as_str()),
                )
            })
            .collect()
    }
}

/// How a server of tenants serves them, beyond its [`ServeConfig`](crate::ServeConfig).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct TenantServing {
    /// Serve every tenant encrypted (crypto-shredding: each tenant's key
    /// file is created in its directory on first use). A tenant whose
    /// directory holds a key file is served encrypted either way.
    pub encrypt: bool,
}

impl TenantServing {
    /// Sets [`encrypt`](Self::encrypt).
    pub fn encrypt(mut self, encrypt: bool) -> TenantServing {
        self.encrypt = encrypt;
        self
    }
}

/// The store or stores a server serves.
#[derive(Clone)]
pub(crate) enum Reach {
    One(Served),
    Tenants(Arc<TenantStores>),
}

/// The store or stores a server serves, as one service reaches them:
/// refusals are said in `W`'s protocol.
pub(crate) struct Stores<W> {
    reach: Reach,
    wording: PhantomData<fn() -> W>,
}

impl<W> Clone for Stores<W> {
    fn clone(&self) -> Self {
        Stores {
            reach: self.reach.clone(),
            wording: PhantomData,
        }
    }
}

/// The tenants a server serves, and the crypto-shredding wrapper of each
/// encrypted tenant's open store.
pub(crate) struct TenantStores {
    pub(crate) tenants: Arc<Tenants>,
    /// Whether every tenant is served encrypted (its key file created on
    /// first use), not only those whose directory holds one.
    encrypt: bool,
    /// One wrapper per open store: made when the tenant's store is first
    /// served after it opened, and replaced once the set has closed that
    /// store (which it does only when no call holds it) and opened it
    /// again. So a key file never has two wrappers in use, which could
    /// each write it without the other's new keys.
    wrappers: Mutex<HashMap<Arc<str>, Wrapper>>,
}

/// A tenant's wrapper, and the store instance it wraps.
struct Wrapper {
    store: Weak<gesta::Store>,
    encrypted: Arc<Encrypted<gesta::Store>>,
}

impl TenantStores {
    pub(crate) fn new(tenants: Arc<Tenants>, serving: TenantServing) -> TenantStores {
        TenantStores {
            tenants,
            encrypt: serving.encrypt,
            wrappers: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's store as the server serves it: opened if it is not
    /// open, through its wrapper when its directory holds a key file.
    /// Blocking: opening a store reads its log.
    fn serve(&self, tenant: &Arc<str>) -> Result<Served, TenantError> {
        let store = self.tenants.get(tenant)?;
        let mut wrappers = self
            .wrappers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The wrappers of stores the set has closed (opening this one may
        // just have closed another) and no call holds: each keeps its
        // store's files open until dropped, so the bound on open stores
        // would not hold for encrypted tenants.
        wrappers.retain(|_, w| w.store.strong_count() > 0);
        if !self.encrypt && !is_encrypted(store.path()) {
            return Ok(Served::plain(store));
        }
        let current = wrappers.get(tenant).filter(|w| {
            w.store
                .upgrade()
                .is_some_and(|wrapped| Arc::ptr_eq(&wrapped, &store))
        });
        let encrypted = match current {
            Some(w) => w.encrypted.clone(),
            None => {
                let options = EncryptionOptions::in_dir(store.path());
                let encrypted = Arc::new(
                    Encrypted::open((*store).clone(), options).map_err(TenantError::Store)?,
                );
                wrappers.insert(
                    tenant.clone(),
                    Wrapper {
                        store: Arc::downgrade(&store),
                        encrypted: encrypted.clone(),
                    },
                );
                encrypted
            }
        };
        Ok(Served::tenant_encrypted(store, encrypted))
    }
}

impl<W: Wording> Stores<W> {
    /// `reach`, refusing in `W`'s words.
    pub(crate) fn new(reach: Reach) -> Stores<W> {
        Stores {
            reach,
            wording: PhantomData,
        }
    }

    /// The store `request` reaches, held for as long as the [`Served`]
    /// lives (a tenant's store is not closed under a call). Opening a
    /// tenant's store reads its log, so it runs on the blocking pool. A
    /// tenant's store that is encrypted (its directory holds a key file)
    /// is served through its wrapper, as one store is.
    pub(crate) fn get<T>(
        &self,
        request: &Request<T>,
    ) -> impl Future<Output = Result<Served, Status>> + Send + 'static {
        let picked = match &self.reach {
            Reach::One(store) => Ok(Pick::One(store.clone())),
            Reach::Tenants(tenants) => {
                tenant::<T, W>(request).map(|tenant| Pick::Tenant(tenants.clone(), tenant))
            }
        };
        async move {
            match picked? {
                Pick::One(store) => Ok(store),
                Pick::Tenant(tenants, tenant) => {
                    tokio::task::spawn_blocking(move || tenants.serve(&tenant.0))
                        .await
                        .map_err(|e| W::internal(format!("the call's task failed: {e}")))?
                        .map_err(W::tenant)
                }
            }
        }
    }

    /// Refuses an append of `events` events if the tenant's quota forbids it.
    pub(crate) fn check_quota<T>(
        &self,
        request: &Request<T>,
        store: &gesta::Store,
        events: usize,
    ) -> impl Future<Output = Result<(), Status>> + Send + 'static {
        let check = self.quota_check(request, store, (), move |tenants, name, store, ()| {
            tenants.check_quota(name, store, events as u64)
        });
        async move { check.await?.0 }
    }

    /// Refuses an append of `events` if the tenant's quota forbids it;
    /// one that names an event id the store holds adds nothing and passes
    /// ([`TenantSet::check_append_quota`](gesta::tenants::TenantSet::check_append_quota)).
    /// The outer error is a call that reaches no tenant; the inner one the
    /// refusal. The events are handed back, to be appended.
    pub(crate) fn check_append_quota<T>(
        &self,
        request: &Request<T>,
        store: &gesta::Store,
        events: Vec<gesta::NewEvent>,
    ) -> impl Future<Output = Result<Checked<Vec<gesta::NewEvent>>, Status>> + Send + 'static {
        self.quota_check(request, store, events, |tenants, name, store, events| {
            tenants.check_append_quota(name, store, events)
        })
    }

    /// Refuses a backup of a tenant whose store and backups so far
    /// (`backups`, its backup directory) take its byte quota: the
    /// backups share the disk, and a tenant could otherwise fill it with
    /// copies of itself.
    pub(crate) fn check_backup_quota<T>(
        &self,
        request: &Request<T>,
        store: &gesta::Store,
        backups: &Path,
    ) -> impl Future<Output = Result<(), Status>> + Send + 'static {
        let backups = backups.to_path_buf();
        let check = self.quota_check(request, store, (), move |tenants, name, store, ()| {
            let elsewhere = gesta::tenants::dir_bytes(&backups);
            tenants.check_quota_with(name, store, 0, elsewhere)
        });
        async move { check.await?.0 }
    }

    /// Runs `check` for the tenant `request` is a call of, handing
    /// `carry` through; a server of one store, or of tenants without
    /// quotas, passes. A check walks the tenant's directory (and its
    /// backups) for a byte quota, and looks a refused batch's ids up in
    /// the store: file system work, run on the blocking pool rather than
    /// on the async worker every other call shares.
    fn quota_check<T, C, F>(
        &self,
        request: &Request<T>,
        store: &gesta::Store,
        carry: C,
        check: F,
    ) -> impl Future<Output = Result<Checked<C>, Status>> + Send + 'static
    where
        C: Send + 'static,
        F: FnOnce(&Tenants, &str, &gesta::Store, &C) -> gesta::tenants::TenantResult<()>
            + Send
            + 'static,
    {
        let picked = match &self.reach {
            Reach::Tenants(t) if has_quota(&t.tenants) => {
                Some(tenant::<T, W>(request).map(|n| (t.tenants.clone(), n.0, store.clone())))
            }
            _ => None,
        };
        async move {
            let Some(picked) = picked else {
                return Ok((Ok(()), carry));
            };
            let (tenants, name, store) = picked?;
            tokio::task::spawn_blocking(move || {
                let checked = check(&tenants, &name, &store, &carry).map_err(W::tenant);
                (checked, carry)
            })
            .await
            .map_err(|e| W::internal(format!("the quota check's task failed: {e}")))
        }
    }

    /// The tenant `request` is a call of; `None` when the server serves
    /// one store.
    pub(crate) fn tenant_of<T>(&self, request: &Request<T>) -> Result<Option<Arc<str>>, Status> {
        match &self.reach {
            Reach::One(_) => Ok(None),
            Reach::Tenants(_) => Ok(Some(tenant::<T, W>(request)?.0)),
        }
    }

    /// The name a durable subscription is registered under on this server:
    /// per tenant, so that tenants' names never meet.
    pub(crate) fn scope<T>(&self, request: &Request<T>) -> Result<Arc<str>, Status> {
        Ok(self.tenant_of(request)?.unwrap_or_else(|| Arc::from("")))
    }
}

/// A quota check's refusal, if any, and what it was handed through.
pub(crate) type Checked<C> = (Result<(), Status>, C);

/// Whether `tenants` have a quota to check at all.
fn has_quota(tenants: &Tenants) -> bool {
    let limits = tenants.limits();
    limits.max_events.is_some() || limits.max_bytes.is_some()
}

/// What [`Stores::get`] opens.
enum Pick {
    One(Served),
    Tenant(Arc<TenantStores>, Tenant),
}

fn tenant<T, W: Wording>(request: &Request<T>) -> Result<Tenant, Status> {
    request
        .extensions()
        .get::<Tenant>()
        .cloned()
        .ok_or_else(W::unauthenticated)
}
