//! Crypto-shredding leaves no byte behind: an event naming a subject
//! carries a unique secret in its data and metadata. Every file under the
//! store's directory (the key file included; compressed segments
//! decompressed) is searched byte for byte: the secret is never there — it
//! was sealed before it reached the store — while its ciphertext and the
//! subject's key are. After `forget` the key is in no file, the event
//! reads empty at once, and after `compact` its ciphertext is in no file
//! either. On SQLite, the secret is never in the database's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gesta::encryption::{Encrypted, EncryptionOptions, KEY_FILE_NAME};
use gesta::{Compression, EventStore, NewEvent, Options, Query, ReadOptions, Store};
use gesta_tests::files::{files, holders};

const SECRET: &[u8] = b"secret-91c4e07b-forget-me";
const META_SECRET: &[u8] = b"meta-secret-3d6a2f85";

fn filler(i: u64) -> NewEvent {
    NewEvent::new("Filler", format!("filler event {i} {}", "x".repeat(200))).tag("kind:filler")
}

/// The one key a key file naming one subject holds (see docs/FORMAT.md:
/// a 16-byte header, the prefix `subject:` with its length, then kind,
/// subject length, subject, time, key).
fn only_key(key_file: &Path, subject: &str) -> Vec<u8> {
    let bytes = std::fs::read(key_file).unwrap();
    let entry = 16 + 2 + "subject:".len();
    let at = entry + 1 + 2 + subject.len() + 8;
    assert_eq!(bytes[entry], 1, "a live key");
    assert_eq!(
        &bytes[entry + 3..entry + 3 + subject.len()],
        subject.as_bytes()
    );
    bytes[at..at + 32].to_vec()
}

fn run(options: impl Fn() -> Options, before: u64, after: u64) -> Vec<PathBuf> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let open = || {
        Encrypted::open(
            Store::open_with(dir, options()).unwrap(),
            EncryptionOptions::in_dir(dir),
        )
        .unwrap()
    };
    let store = open();
    for i in 0..before {
        store.append(vec![filler(i)]).unwrap();
    }
    let at = store
        .append(vec![
            NewEvent::new("Registered", SECRET)
                .tag("subject:alice")
                .metadata(META_SECRET)
                .id(7),
        ])
        .unwrap()
        .first;
    for i in 0..after {
        store.append(vec![filler(1000 + i)]).unwrap();
    }
    let read = store.event_by_id(7).unwrap().unwrap();
    assert_eq!(
        (read.data.as_ref(), read.metadata.as_ref()),
        (SECRET, META_SECRET)
    );

    // Never written in clear; the ciphertext and the key are there.
    assert_eq!(holders(dir, SECRET), Vec::<PathBuf>::new());
    assert_eq!(holders(dir, META_SECRET), Vec::<PathBuf>::new());
    let sealed = store.inner().event_by_id(7).unwrap().unwrap();
    assert!(
        !holders(dir, &sealed.data).is_empty(),
        "the search finds ciphertext"
    );
    let key = only_key(&dir.join(KEY_FILE_NAME), "alice");
    assert_eq!(holders(dir, &key), vec![dir.join(KEY_FILE_NAME)]);

    // Forget: the key leaves every file at once, reads are empty at once.
    let redacted = store.forget("alice").unwrap();
    assert_eq!((redacted.targeted, redacted.redacted), (1, 1));
    assert_eq!(holders(dir, &key), Vec::<PathBuf>::new());
    let gone = store
        .read_last(&Query::tag("subject:alice"))
        .unwrap()
        .unwrap();
    assert_eq!(gone.position, at);
    assert!(gone.data.is_empty() && gone.metadata.is_empty());

    // Compact: the ciphertext leaves every file too.
    store.inner().compact().unwrap();
    for needle in [&sealed.data[..], &sealed.metadata[..], SECRET, META_SECRET] {
        assert_eq!(holders(dir, needle), Vec::<PathBuf>::new());
    }
    let count = store
        .read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .count() as u64;
    assert_eq!(count, before + 1 + after);
    store.into_inner().close().unwrap();
    let report = gesta::inspect::verify(dir, &mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:#?}", report.findings);
    let store = open();
    let gone = store.event_by_id(7).unwrap().unwrap();
    assert!(gone.data.is_empty() && gone.metadata.is_empty());
    assert_eq!(holders(dir, &sealed.data), Vec::<PathBuf>::new());
    files(dir)
}

#[test]
fn a_forgotten_subject_in_the_active_segment_leaves_no_byte() {
    run(Options::default, 5, 5);
}

fn has_ext(files: &[PathBuf], ext: &str) -> bool {
    files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == ext))
}

#[test]
fn a_forgotten_subject_in_a_sealed_segment_leaves_no_byte() {
    let files = run(|| Options::default().segment_size(16 << 10), 20, 200);
    assert!(has_ext(&files, "off"), "no sealed segment: {files:?}");
}

#[test]
fn a_forgotten_subject_in_a_compressed_segment_leaves_no_byte() {
    let files = run(
        || {
            let mut o = Options::default().segment_size(16 << 10);
            o.compression = Some(Compression {
                level: 1,
                block_size: 4096,
                dictionary_size: 0,
            });
            o
        },
        20,
        200,
    );
    assert!(has_ext(&files, "zseg"), "no compressed segment: {files:?}");
}

#[test]
fn sqlite_never_holds_a_subject_secret_in_clear() {
    use gesta_sqlite::{SqliteOptions, SqliteStore};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("events.db");
    let store = Encrypted::open(
        SqliteStore::open(&db, SqliteOptions::default()).unwrap(),
        EncryptionOptions::new(tmp.path().join("keys")),
    )
    .unwrap();
    store
        .append(vec![
            NewEvent::new("Registered", SECRET)
                .tag("subject:alice")
                .metadata(META_SECRET),
        ])
        .unwrap();
    assert_eq!(
        store.read_last(&Query::all()).unwrap().unwrap().data,
        SECRET
    );
    assert_eq!(holders(tmp.path(), SECRET), Vec::<PathBuf>::new());
    assert_eq!(holders(tmp.path(), META_SECRET), Vec::<PathBuf>::new());
    store.forget("alice").unwrap();
    assert!(
        store
            .read_last(&Query::all())
            .unwrap()
            .unwrap()
            .data
            .is_empty()
    );
    drop(store);
    assert_eq!(holders(tmp.path(), SECRET), Vec::<PathBuf>::new());
}

/// The key file goes through the I/O seam and nothing else: on a file
/// system that scrambles every byte and shortens reads, the store and its
/// key file round-trip through a reopen and a forget, while the bytes on
/// the real disk are not even the key file's magic.
#[test]
fn the_key_file_is_read_and_written_through_the_seam_only() {
    use gesta::io::{StdFs, obfuscated::ObfuscatedFs};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fs = Arc::new(ObfuscatedFs::new(StdFs));
    let open = || {
        let store = Store::open_with(dir, Options::default().fs(fs.clone())).unwrap();
        Encrypted::open(store, EncryptionOptions::in_dir(dir).fs(fs.clone())).unwrap()
    };
    let s = open();
    s.append(vec![
        NewEvent::new("Registered", SECRET).tag("subject:alice"),
        NewEvent::new("Registered", "bob's").tag("subject:bob"),
    ])
    .unwrap();
    s.into_inner().close().unwrap();
    let raw = std::fs::read(dir.join(KEY_FILE_NAME)).unwrap();
    assert_ne!(
        &raw[..8],
        b"GESTAKEY",
        "the key file was written around the seam"
    );
    let s = open();
    assert_eq!(
        s.read_last(&Query::tag("subject:alice"))
            .unwrap()
            .unwrap()
            .data,
        SECRET
    );
    s.forget("alice").unwrap();
    s.into_inner().close().unwrap();
    let s = open();
    assert!(
        s.read_last(&Query::tag("subject:alice"))
            .unwrap()
            .unwrap()
            .data
            .is_empty()
    );
    assert_eq!(
        s.read_last(&Query::tag("subject:bob"))
            .unwrap()
            .unwrap()
            .data,
        "bob's"
    );
}

/// A subscription delivers a forgotten subject's events without their data
/// from the moment `forget` returns, even the batches it fetched before:
/// events are opened as they are handed out, not when fetched. On
/// `MemoryStore` and on the engine, plain and durable.
#[test]
fn a_subscription_hands_out_nothing_of_a_subject_forgotten_meanwhile() {
    fn check<S: EventStore>(store: &Encrypted<S>, sub: &mut gesta::Subscription) {
        let email = r#"{"email":"alice@example.com"}"#;
        for data in [r#"{"n":1}"#, email] {
            store
                .append(vec![NewEvent::new("E", data).tag("subject:alice")])
                .unwrap();
        }
        let first = sub.recv().unwrap();
        assert_eq!(first[0].position, 1);
        store.forget("alice").unwrap();
        let second = sub.recv().unwrap();
        assert_eq!(second[0].position, 2);
        assert!(
            second[0].data.is_empty(),
            "delivered after forget: {:?}",
            String::from_utf8_lossy(&second[0].data)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let memory = Encrypted::open(
        gesta::MemoryStore::new(),
        EncryptionOptions::new(dir.path().join("memory-keys")),
    )
    .unwrap();
    let mut sub = memory.subscribe(&Query::all(), 0).unwrap();
    check(&memory, &mut sub);
    let engine_dir = dir.path().join("store");
    let engine = Encrypted::open(
        Store::open(&engine_dir).unwrap(),
        EncryptionOptions::in_dir(&engine_dir),
    )
    .unwrap();
    let mut durable = engine.subscribe_durable("mailer", &Query::all()).unwrap();
    check(&engine, &mut durable);
}

/// The key file is readable by its owner only; and a store that names
/// subjects but has lost its key file is refused on open (a new file would
/// make their events unreadable and give them new keys without a word),
/// while a store naming none opens and creates one.
#[test]
fn the_key_file_is_private_and_never_silently_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let keys = store_dir.join(KEY_FILE_NAME);
    let store = Encrypted::open(
        Store::open(&store_dir).unwrap(),
        EncryptionOptions::in_dir(&store_dir),
    )
    .unwrap();
    store
        .append(vec![NewEvent::new("E", "{}").tag("subject:alice")])
        .unwrap();
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file's mode is {mode:o}");
    let inner = store.into_inner();
    std::fs::remove_file(&keys).unwrap();
    let reopened = Encrypted::open(inner.clone(), EncryptionOptions::in_dir(&store_dir));
    assert!(
        matches!(&reopened, Err(gesta::Error::Corruption { reason, .. }) if reason.contains("missing")),
        "{:?}",
        reopened.map(|_| ())
    );
    assert!(!keys.exists(), "a key file was made");
    // A store that names no subject opens and gets one.
    let plain_dir = dir.path().join("plain");
    let plain = Store::open(&plain_dir).unwrap();
    plain
        .append(vec![NewEvent::new("E", "{}").tag("other:x")])
        .unwrap();
    Encrypted::open(plain, EncryptionOptions::in_dir(&plain_dir)).unwrap();
    assert!(plain_dir.join(KEY_FILE_NAME).is_file());
}

/// A store whose key file is lost stays encrypted to every door: the mark
/// the wrapper leaves beside the key file makes `is_encrypted` true and
/// the wrapper refuse to start a new key file — also for a store that
/// names no subject yet, where the store's tags cannot tell. Without the
/// mark, the doors opened such a store plain and stored a subject's next
/// events in clear. A store of an older version (a key file, no mark) is
/// marked at its next open; a backup carries the mark; the read-only
/// opener refuses too.
#[test]
fn a_lost_key_file_leaves_the_store_marked_encrypted() {
    use gesta::encryption::{ENCRYPTED_MARK_NAME, Opener, is_encrypted};
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let (keys, mark) = (
        store_dir.join(KEY_FILE_NAME),
        store_dir.join(ENCRYPTED_MARK_NAME),
    );
    let store = Encrypted::open(
        Store::open(&store_dir).unwrap(),
        EncryptionOptions::in_dir(&store_dir),
    )
    .unwrap();
    assert!(keys.is_file() && mark.is_file());
    store
        .append(vec![NewEvent::new("E", "{}").tag("other:x")])
        .unwrap();
    let backup = dir.path().join("backup");
    store.inner().backup(&backup).unwrap();
    assert!(backup.join(ENCRYPTED_MARK_NAME).is_file());
    let inner = store.into_inner();

    std::fs::remove_file(&keys).unwrap();
    assert!(is_encrypted(&store_dir));
    let refused = |opened: gesta::Result<()>| {
        assert!(
            matches!(&opened, Err(gesta::Error::Corruption { reason, .. })
                if reason.contains("missing") && reason.contains(ENCRYPTED_MARK_NAME)),
            "{opened:?}"
        );
    };
    refused(Encrypted::open(inner.clone(), EncryptionOptions::in_dir(&store_dir)).map(|_| ()));
    refused(Opener::load(EncryptionOptions::in_dir(&store_dir)).map(|_| ()));
    assert!(!keys.exists(), "a key file was made");

    // An older version's store: a key file and no mark.
    let old_dir = dir.path().join("old");
    let old = Store::open(&old_dir).unwrap();
    Encrypted::open(old.clone(), EncryptionOptions::in_dir(&old_dir)).unwrap();
    std::fs::remove_file(old_dir.join(ENCRYPTED_MARK_NAME)).unwrap();
    Encrypted::open(old, EncryptionOptions::in_dir(&old_dir)).unwrap();
    assert!(old_dir.join(ENCRYPTED_MARK_NAME).is_file());

    // A key file of its own, outside a store directory, leaves no mark.
    let own = dir.path().join("own");
    Encrypted::open(
        gesta::MemoryStore::new(),
        EncryptionOptions::new(own.join("keys")),
    )
    .unwrap();
    assert!(!own.join(ENCRYPTED_MARK_NAME).exists());
}
