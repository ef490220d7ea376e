//! `gesta forget DIR SUBJECT --yes`: crypto-shredding
//! (`Encrypted::forget`): destroys a subject's key, so its events read
//! with empty data and metadata at once, and redacts them, so the next
//! compact removes their ciphertext.

use std::io::Write;

use gesta::encryption::Encrypted;
use gesta::{EventStore, lifecycle::Redacted};

use super::encrypted::{Opened, is_encrypted};
use crate::StoreDir;
use crate::failure::{Failure, open_existing};

pub const AFTER_HELP: &str = r#"Crypto-shredding, for a store that cannot wait for a rewrite. In an encrypted store (one created or
first appended to with `gesta append --encrypt`, whose directory holds the key file KEYS), an event
tagged subject:NAME has its data and metadata sealed with NAME's key (AES-256-GCM-SIV). Forgetting
NAME destroys that key, durably: from then on every read returns NAME's events with empty data and
metadata — their type, tags, stream, revision, id, position and time stay, the shape of a redacted
event. The events are then redacted too (recorded in the audit trail as a redaction of the tag
subject:NAME), so the next `gesta compact` removes their ciphertext from the files.

A forgotten subject stays forgotten: appending an event tagged with it again is refused. Forgetting a
subject already forgotten finishes its redaction if it was interrupted and changes nothing otherwise;
forgetting a subject the key file never named is refused. `gesta backup` never copies the keys (the
backup's KEYS names none), so a forget reaches backups; a copy of KEYS made by hand still holds the key:
keep such copies as carefully as the key file, or not at all. A store served with `gesta serve` is
forgotten through the server: gesta.v1 Forget (GestaClient::forget).

Forgetting cannot be undone, so the command does nothing without --yes.

Output: "forgot NAME: targeted N events, redacted M", or with --json
{"subject":"NAME","targeted":N,"redacted":M}. Without --yes the status is 2; a store without a key
file, or an unknown subject, is refused with status 1; either way nothing changes.

Examples:
  echo '{"type":"Registered","tags":["subject:u7"],"data":{"email":"a@b.c"}}' | gesta append ./events --encrypt
  gesta read ./events --tag subject:u7               # the data, opened
  gesta forget ./events u7 --yes                     # unreadable at once
  gesta compact ./events                             # and the ciphertext leaves the files"#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// The subject: the part of its tag after `subject:` (or the store's prefix).
    #[arg(value_name = "SUBJECT")]
    subject: String,
    /// Confirm: the subject's key is destroyed, for good.
    #[arg(long)]
    yes: bool,
    /// Print {"subject":…,"targeted":N,"redacted":M} instead of text.
    #[arg(long)]
    json: bool,
}

/// Forgets `subject` in `store`; writes what it did to `out`.
fn forget<S: EventStore>(
    store: &Encrypted<S>,
    subject: &str,
    json: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let Redacted { targeted, redacted } = store.forget(subject)?;
    if json {
        let subject = serde_json::to_string(subject).map_err(|e| Failure::new(e.to_string()))?;
        writeln!(
            out,
            r#"{{"subject":{subject},"targeted":{targeted},"redacted":{redacted}}}"#
        )?;
    } else {
        let s = if targeted == 1 { "" } else { "s" };
        writeln!(
            out,
            "forgot {subject}: targeted {targeted} event{s}, redacted {redacted}"
        )?;
    }
    Ok(())
}

pub fn run(args: Args) -> Result<(), Failure> {
    if !args.yes {
        return Err(Failure {
            message: "forgetting destroys the subject's key and cannot be undone: add --yes to \
                      do it (see gesta forget --help)"
                .into(),
            code: 2,
        });
    }
    let dir = &args.store.dir;
    let store = open_existing(dir)?;
    if !is_encrypted(dir) {
        store.close()?;
        return Err(Failure::new(format!(
            "{} is not encrypted (it has no key file): no subject was ever sealed, so there is \
             none to forget; `gesta redact` erases data by query",
            dir.display()
        )));
    }
    let Opened::Encrypted(store) = Opened::wrap(store, true)? else {
        return Err(Failure::new("the store did not open encrypted".to_owned()));
    };
    let mut line = Vec::with_capacity(64);
    let done = forget(&store, &args.subject, args.json, &mut line);
    store.into_inner().close()?;
    done?;
    super::tag::print(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::encryption::EncryptionOptions;
    use gesta::{MemoryStore, NewEvent, Query};

    #[test]
    fn forgets_and_prints_what_it_did() {
        let keys = tempfile::tempdir().unwrap();
        let store = Encrypted::open(
            MemoryStore::new(),
            EncryptionOptions::new(keys.path().join("k")),
        )
        .unwrap();
        store
            .append(vec![
                NewEvent::new("A", "secret").tag("subject:u7"),
                NewEvent::new("B", "more").tag("subject:u7"),
            ])
            .unwrap();
        let mut out = Vec::new();
        forget(&store, "u7", false, &mut out).unwrap();
        forget(&store, "u7", true, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "forgot u7: targeted 2 events, redacted 2\n{\"subject\":\"u7\",\"targeted\":2,\"redacted\":0}\n"
        );
        let e = store.read_last(&Query::tag("subject:u7")).unwrap().unwrap();
        assert!(e.data.is_empty());
        let mut out = Vec::new();
        let err = forget(&store, "nobody", false, &mut out).unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.contains("unknown subject"), "{}", err.message);
        assert!(out.is_empty());
    }
}
