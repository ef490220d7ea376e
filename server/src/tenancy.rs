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
    ) -> Result<(), Status> {
        match &self.reach {
            Reach::One(_) => Ok(()),
            Reach::Tenants(t) => t
                .tenants
                .check_quota(&tenant::<T, W>(request)?.0, store, events as u64)
                .map_err(W::tenant),
        }
    }

    /// Refuses an append of `events` if the tenant's quota forbids it;
    /// one that names an event id the store holds adds nothing and passes
    /// ([`TenantSet::check_append_quota`](gesta::tenants::TenantSet::check_append_quota)).
    /// Blocking only when refused: it then looks the ids up.
    pub(crate) fn check_append_quota<T>(
        &self,
        request: &Request<T>,
        store: &gesta::Store,
        events: &[gesta::NewEvent],
    ) -> Result<(), Status> {
        match &self.reach {
            Reach::One(_) => Ok(()),
            Reach::Tenants(t) => t
                .tenants
                .check_append_quota(&tenant::<T, W>(request)?.0, store, events)
                .map_err(W::tenant),
        }
    }

    /// Refuses a backup of a tenant whose store and backups so far
    /// (`backups`, its backup directory) take its byte quota: the
    /// backups share the disk, and a tenant could otherwise fill it with
    /// copies of itself.
    pub(crate) fn check_backup_quota<T>(
        &self,
        request: &Request<T>,
        store: &gesta::Store,
        backups: &std::path::Path,
    ) -> Result<(), Status> {
        match &self.reach {
            Reach::One(_) => Ok(()),
            Reach::Tenants(t) => {
                let elsewhere = gesta::tenants::dir_bytes(backups);
                t.tenants
                    .check_quota_with(&tenant::<T, W>(request)?.0, store, 0, elsewhere)
                    .map_err(W::tenant)
            }
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
