//! Crash exploration of crypto-shredding: the key file's replacement (a
//! forget's tombstone, its "redacted" mark, a new subject's key) and the
//! redaction between them, with the machine going down after every
//! state-changing operation in turn, each crash dropping what was not
//! synced or tearing it. After every crash the store and its key file
//! reopen (the key file is the old one or the new one, never torn), and:
//!
//! - a subject whose `forget` returned stays forgotten, and its events read
//!   empty — their redaction finished by the reopen if the crash cut it off;
//! - a subject whose forget did not return is either still readable or
//!   forgotten — never an error, never garbage;
//! - an event whose append returned reads in clear: its new key was
//!   durable before the append was sent;
//! - a subject nothing touched reads as before.

use std::sync::Arc;

use gesta::encryption::{Encrypted, EncryptionOptions, SubjectState};
use gesta::io::fault::{CrashMode, FaultFs};
use gesta::{EventStore, NewEvent, Options, Store};

const DIR: &str = "/store";

fn open(fs: &FaultFs) -> gesta::Result<Encrypted<Store>> {
    let store = Store::open_with(DIR, Options::default().fs(Arc::new(fs.clone())))?;
    Encrypted::open(
        store,
        EncryptionOptions::in_dir(DIR).fs(Arc::new(fs.clone())),
    )
}

fn event(subject: &str, id: u128) -> NewEvent {
    NewEvent::new("Registered", format!("{subject}'s address"))
        .tag(format!("subject:{subject}"))
        .metadata(format!("{subject}'s ip"))
        .id(id)
}

/// Reads the event with `id`: `Some(true)` in clear, `Some(false)` empty,
/// `None` absent; panics on an error or on garbage.
fn state_of(s: &Encrypted<Store>, subject: &str, id: u128) -> Option<bool> {
    let e = s
        .event_by_id(id)
        .unwrap_or_else(|e| panic!("reading {subject}'s event: {e}"))?;
    if e.data.is_empty() && e.metadata.is_empty() {
        return Some(false);
    }
    assert_eq!(e.data, format!("{subject}'s address"));
    assert_eq!(e.metadata, format!("{subject}'s ip"));
    Some(true)
}

fn explore(mode: CrashMode) -> u64 {
    for n in 0.. {
        let fs = FaultFs::new();
        let s = open(&fs).unwrap();
        s.append(vec![event("alice", 1)]).unwrap();
        s.append(vec![event("bob", 2)]).unwrap();
        fs.crash_after(n);
        let forgot = s.forget("alice").is_ok();
        let appended = s.append(vec![event("carol", 3)]).is_ok();
        let went_down = fs.is_down();
        drop(s);
        fs.crash(mode);
        fs.clear_faults();

        let s = open(&fs).unwrap_or_else(|e| panic!("crash after {n} ops ({mode:?}): {e}"));
        let ctx =
            format!("crash after {n} ops ({mode:?}), forget ok {forgot}, append ok {appended}");
        assert_eq!(state_of(&s, "bob", 2), Some(true), "{ctx}");
        match s.subject("alice") {
            Some(SubjectState::Forgotten { redacted, .. }) => {
                assert!(redacted, "{ctx}: the reopen finishes the redaction");
                assert_eq!(state_of(&s, "alice", 1), Some(false), "{ctx}");
                let inner = s.inner().event_by_id(1).unwrap().unwrap();
                assert!(inner.data.is_empty(), "{ctx}: ciphertext not redacted");
            }
            Some(SubjectState::Live { .. }) => {
                assert!(!forgot, "{ctx}: a forgotten subject came back");
                assert_eq!(state_of(&s, "alice", 1), Some(true), "{ctx}");
            }
            None => panic!("{ctx}: alice's key is lost"),
        }
        match state_of(&s, "carol", 3) {
            Some(true) => assert!(matches!(
                s.subject("carol"),
                Some(SubjectState::Live { .. })
            )),
            Some(false) => panic!("{ctx}: carol's event reads empty"),
            None => assert!(!appended, "{ctx}: an acknowledged append is lost"),
        }
        // The store goes on: forgetting and appending work after the crash.
        if matches!(s.subject("alice"), Some(SubjectState::Live { .. })) {
            s.forget("alice").unwrap();
        }
        s.append(vec![event("dave", 4)]).unwrap();
        assert_eq!(state_of(&s, "dave", 4), Some(true), "{ctx}");
        drop(s);
        if !went_down {
            return n;
        }
    }
    unreachable!()
}

#[test]
fn key_file_replacement_survives_a_crash_at_every_step_dropping_unsynced_writes() {
    let points = explore(CrashMode::DropUnsynced);
    eprintln!("{points} crash points explored");
    assert!(points > 10, "only {points} crash points");
}

#[test]
fn key_file_replacement_survives_a_crash_at_every_step_tearing_unsynced_writes() {
    for seed in 1..=4 {
        let points = explore(CrashMode::Torn { seed });
        eprintln!("seed {seed}: {points} crash points explored");
    }
}
