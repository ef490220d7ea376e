//! Opening a store through crypto-shredding's wrapper
//! (`gesta::encryption::Encrypted`) when it is encrypted: its directory
//! holds the key file (`KEYS`), which `gesta append --encrypt` creates and
//! which records the subject prefix. So the store remembers: `append`,
//! `read`, `get`, `export`, `import` and `forget` seal and open its
//! subjects' events without a flag, and no command writes a subject's data
//! in clear into a store that seals them. [`FollowKeys`] opens the events
//! `read --follow` reads from the log files of a store another process
//! owns.

use std::ops::Deref;

use gesta::encryption::{Encrypted, EncryptionOptions, KEY_FILE_NAME, Opener};
use gesta::{EventStore, RecordedEvent, Store};

use crate::failure::Failure;

/// Whether the store in a directory is encrypted (holds a key file).
pub use gesta::encryption::is_encrypted;

/// A store, through the wrapper when it is encrypted.
pub enum Opened {
    /// A store without a key file.
    Plain(Store),
    /// A store whose directory holds a key file.
    Encrypted(Encrypted<Store>),
}

impl Opened {
    /// `store` through the wrapper if its directory holds a key file, or
    /// if `encrypt` (which creates the key file).
    pub fn wrap(store: Store, encrypt: bool) -> Result<Opened, Failure> {
        if !encrypt && !is_encrypted(store.path()) {
            return Ok(Opened::Plain(store));
        }
        let options = EncryptionOptions::in_dir(store.path());
        match Encrypted::open(store, options) {
            Ok(s) => Ok(Opened::Encrypted(s)),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the store (waiting for its background work).
    pub fn close(self) -> Result<(), Failure> {
        match self {
            Opened::Plain(s) => s.close()?,
            Opened::Encrypted(s) => s.into_inner().close()?,
        }
        Ok(())
    }
}

impl Deref for Opened {
    type Target = dyn EventStore;

    fn deref(&self) -> &(dyn EventStore + 'static) {
        match self {
            Opened::Plain(s) => s,
            Opened::Encrypted(s) => s,
        }
    }
}

/// The keys `read --follow` opens events with: the key file as it was
/// last loaded, read only, loaded again whenever the file was replaced
/// (the owning process replaces it whole to create a subject's key or to
/// forget one) and when an event names a subject it does not know yet.
pub struct FollowKeys {
    /// The store's directory: its key file and mark are there.
    dir: std::path::PathBuf,
    opener: Option<Opener>,
    /// The file's identity when loaded: a replacement is a new file.
    loaded: Option<(u64, std::time::SystemTime, u64)>,
}

impl FollowKeys {
    /// The keys of the store in `dir`, if it is encrypted.
    pub fn new(dir: &std::path::Path) -> Result<FollowKeys, Failure> {
        let mut keys = FollowKeys {
            dir: dir.to_owned(),
            opener: None,
            loaded: None,
        };
        keys.refresh()?;
        Ok(keys)
    }

    /// Loads the key file again if it was replaced (or created) since.
    pub fn refresh(&mut self) -> Result<(), Failure> {
        use std::os::unix::fs::MetadataExt;
        let now = match std::fs::metadata(self.dir.join(KEY_FILE_NAME)) {
            Ok(m) => Some((m.ino(), m.modified()?, m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if now.is_none() && self.opener.is_none() {
            // Refused if the store's mark says a key file was there.
            Opener::load(self.options())?;
        }
        if now.is_some() && now != self.loaded {
            self.opener = Opener::load(self.options())?;
            self.loaded = now;
        }
        Ok(())
    }

    fn options(&self) -> EncryptionOptions {
        EncryptionOptions::in_dir(&self.dir)
    }

    /// `event` opened as a read through the wrapper opens it (as it is in
    /// a store that is not encrypted).
    pub fn open(&mut self, event: RecordedEvent) -> Result<RecordedEvent, Failure> {
        let Some(opener) = &self.opener else {
            return Ok(event);
        };
        match opener.open(event.clone()) {
            // A subject created after the last load: its key is in the
            // file by now (it is written before the event is appended).
            Err(gesta::Error::Undecryptable { .. }) => {
                self.loaded = None;
                self.refresh()?;
                match &self.opener {
                    Some(opener) => Ok(opener.open(event)?),
                    None => Ok(event),
                }
            }
            opened => Ok(opened?),
        }
    }
}
