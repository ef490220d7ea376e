//! The crypto-shredding cases: what [`Encrypted`] promises (the
//! `gesta::encryption` contract), checked on the stores of any harness
//! wrapped in an [`EncryptedHarness`] — sealed round trips through every
//! read path, `forget` at once and after a reopen, refused reuse and bad
//! input, idempotent retries, and tampered ciphertext as a typed error.
//! [`encryption_tests!`](crate::encryption_tests) expands to one `#[test]`
//! per case.

use std::ops::ControlFlow;
use std::time::Duration;

use gesta::encryption::{Encrypted, OVERHEAD, SubjectState};
use gesta::lifecycle::{Operation, Target};
use gesta::{Error, EventStore, NewEvent, Query, ReadOptions, RecordedEvent};

use crate::conformance::Harness;
use crate::encrypted_harness::EncryptedHarness;

/// Calls `$callback!` with the harness and every case, so that the test
/// macro and any runner share one list.
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_encryption_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback!(($($args)*)
            sealed_round_trip,
            forget_empties_at_once_and_for_good,
            forgotten_subject_is_refused,
            bad_input_changes_nothing,
            retries_stay_idempotent,
            tampered_ciphertext_is_a_typed_error,
        );
    };
}

/// Expands to one `#[test]` per crypto-shredding case, each on an
/// [`EncryptedHarness`] made by evaluating `$harness`.
#[macro_export]
macro_rules! encryption_tests {
    ($harness:expr) => {
        $crate::__gesta_encryption_cases!(__gesta_encryption_tests!($harness));
    };
}

/// The per-case test functions of [`encryption_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __gesta_encryption_tests {
    (($harness:expr) $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let mut harness = $harness;
                $crate::encryption::$case(&mut harness);
            }
        )*
    };
}

fn all<S: EventStore>(s: &S) -> Vec<RecordedEvent> {
    s.read(&Query::all(), ReadOptions::forwards())
        .unwrap()
        .collect::<gesta::Result<_>>()
        .unwrap()
}

/// Three events: alice's (data and metadata), bob's (data only, in a
/// stream, with an id) and one naming nobody.
fn fixture<S: EventStore>(s: &Encrypted<S>) -> Vec<NewEvent> {
    let events = vec![
        NewEvent::new("Registered", "alice@example.org")
            .tag("subject:alice")
            .tag("kind:user")
            .metadata("ip=10.0.0.1")
            .id(0xA1),
        NewEvent::new("Registered", "bob@example.org")
            .tag("subject:bob")
            .stream("users")
            .id(0xB1),
        NewEvent::new("Opened", "public").tag("kind:shop"),
    ];
    s.append(events.clone()).unwrap();
    events
}

fn same_shape(got: &RecordedEvent, want: &NewEvent) {
    assert_eq!(got.event_type, want.event_type);
    assert_eq!(got.tags, want.tags);
    assert_eq!(got.id, want.id);
    assert_eq!(got.stream, want.stream);
}

fn same(got: &RecordedEvent, want: &NewEvent) {
    same_shape(got, want);
    assert_eq!(got.data, want.data, "data at {}", got.position);
    assert_eq!(got.metadata, want.metadata, "metadata at {}", got.position);
}

/// Every read path returns the plaintext; the inner store holds
/// ciphertext of the plaintext's length plus the envelope, and the event
/// naming nobody as it was.
pub fn sealed_round_trip<H: Harness>(h: &mut EncryptedHarness<H>) {
    let s = h.create();
    let want = fixture(&s);
    let got = all(&s);
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(&want) {
        same(g, w);
    }
    same(
        &s.read_last(&Query::tag("subject:alice")).unwrap().unwrap(),
        &want[0],
    );
    same(&s.event_by_id(0xB1).unwrap().unwrap(), &want[1]);
    let stream: Vec<_> = s
        .read_stream("users", ReadOptions::forwards())
        .unwrap()
        .collect::<gesta::Result<_>>()
        .unwrap();
    same(&stream[0], &want[1]);
    same(&s.read_stream_last("users").unwrap().unwrap(), &want[1]);
    let mut lent = Vec::new();
    s.read_each(&Query::all(), ReadOptions::forwards(), &mut |e| {
        lent.push(e.data.to_vec());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(lent[0], b"alice@example.org");

    let inner = all(s.inner());
    assert_eq!(inner[0].data.len(), want[0].data.len() + OVERHEAD);
    assert_eq!(inner[0].metadata.len(), want[0].metadata.len() + OVERHEAD);
    assert!(!inner[0].data.windows(5).any(|w| w == b"alice"));
    same_shape(&inner[0], &want[0]);
    same(&inner[2], &want[2]);
    assert!(matches!(
        s.subject("alice"),
        Some(SubjectState::Live { .. })
    ));

    // Subscriptions (where the store has them) open the events too.
    match s.subscribe(&Query::all(), 0) {
        Ok(mut sub) => {
            let batch = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            same(&batch[0], &want[0]);
        }
        Err(Error::Unsupported { .. }) => {}
        Err(e) => panic!("subscribe: {e}"),
    }
    match s.subscribe_durable("reader", &Query::tag("subject:bob")) {
        Ok(mut sub) => {
            let batch = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            same(&batch[0], &want[1]);
        }
        Err(Error::Unsupported { .. }) => {}
        Err(e) => panic!("subscribe_durable: {e}"),
    }
    // And so does the store reopened on the same key file.
    let s = h.reopen(s);
    for (g, w) in all(&s).iter().zip(&want) {
        same(g, w);
    }
}

/// `forget` empties the subject's events at once — every read path —
/// leaves the others alone, records the redaction in the audit trail, and
/// holds after a reopen.
pub fn forget_empties_at_once_and_for_good<H: Harness>(h: &mut EncryptedHarness<H>) {
    let s = h.create();
    let want = fixture(&s);
    s.append(vec![
        NewEvent::new("Moved", "alice moved to Paris")
            .tag("subject:alice")
            .metadata("m"),
    ])
    .unwrap();
    let head = s.head().unwrap();
    let redacted = s.forget("alice").unwrap();
    assert_eq!((redacted.targeted, redacted.redacted), (2, 2));
    assert_eq!(s.head().unwrap(), head, "forget consumes no position");
    let check = |s: &Encrypted<H::Store>| {
        let got = all(s);
        for p in [0, 3] {
            assert!(got[p].data.is_empty() && got[p].metadata.is_empty());
        }
        same_shape(&got[0], &want[0]);
        same(&got[1], &want[1]);
        same(&got[2], &want[2]);
        let by_id = s.event_by_id(0xA1).unwrap().unwrap();
        assert!(by_id.data.is_empty() && by_id.metadata.is_empty());
        // The inner store holds no ciphertext for them either.
        let inner = all(s.inner());
        assert!(inner[0].data.is_empty() && inner[3].data.is_empty());
        assert!(matches!(
            s.subject("alice"),
            Some(SubjectState::Forgotten { redacted: true, .. })
        ));
    };
    check(&s);
    match s.audit_log(0, 100) {
        Ok(trail) => match &trail.last().expect("an audit entry").operation {
            Operation::Redact { target, result } => {
                assert_eq!(target, &Target::Query(Query::tag("subject:alice")));
                assert_eq!(result.redacted, 2);
            }
            other => panic!("the last audit entry is {other:?}"),
        },
        Err(Error::Unsupported { .. }) => {}
        Err(e) => panic!("audit_log: {e}"),
    }
    let s = h.reopen(s);
    check(&s);
    // Forgetting again completes nothing new and changes nothing.
    let again = s.forget("alice").unwrap();
    assert_eq!((again.targeted, again.redacted), (2, 0));
    check(&s);
}

/// A forgotten subject cannot be named again, retries included.
pub fn forgotten_subject_is_refused<H: Harness>(h: &mut EncryptedHarness<H>) {
    let s = h.create();
    let retry = vec![NewEvent::new("Seen", "x").tag("subject:carol").id(0xC1)];
    s.append(retry.clone()).unwrap();
    s.forget("carol").unwrap();
    let head = s.head().unwrap();
    for batch in [
        retry,
        vec![NewEvent::new("Seen", "again").tag("subject:carol")],
        vec![
            NewEvent::new("Seen", "fine").tag("subject:dave"),
            NewEvent::new("Seen", "no").tag("subject:carol"),
        ],
    ] {
        match s.append(batch) {
            Err(Error::SubjectForgotten { subject }) => assert_eq!(subject, "carol"),
            other => panic!("expected SubjectForgotten, got {other:?}"),
        }
    }
    assert_eq!(s.head().unwrap(), head);
    let s = h.reopen(s);
    assert!(matches!(
        s.append(vec![NewEvent::new("Seen", "x").tag("subject:carol")]),
        Err(Error::SubjectForgotten { .. })
    ));
}

/// Bad input is refused with `InvalidInput` and changes nothing: two
/// subjects on one event, an empty subject, a subject tag added after the
/// fact, forgetting a subject never named, opening the key file with
/// another subject prefix.
pub fn bad_input_changes_nothing<H: Harness>(h: &mut EncryptedHarness<H>) {
    let s = h.create();
    fixture(&s);
    let head = s.head().unwrap();
    let trail = s.audit_log(0, 100).ok();
    let invalid = |r: gesta::Result<()>, what: &str| match r {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    invalid(
        s.append(vec![
            NewEvent::new("Paid", "1")
                .tag("subject:erin")
                .tag("subject:frank"),
        ])
        .map(drop),
        "two subjects",
    );
    invalid(
        s.append(vec![NewEvent::new("Paid", "1").tag("subject:")])
            .map(drop),
        "empty subject",
    );
    invalid(
        s.add_tags(&Target::Positions(vec![3]), &["subject:gina".into()])
            .map(drop),
        "retroactive subject tag",
    );
    invalid(s.forget("nobody").map(drop), "unknown subject");
    invalid(s.forget("").map(drop), "empty subject");
    assert_eq!(s.head().unwrap(), head);
    assert_eq!(s.audit_log(0, 100).ok(), trail);
    for subject in ["erin", "frank", "gina", "nobody"] {
        assert_eq!(s.subject(subject), None, "{subject} got a key");
    }
    // The key file keeps its prefix: another rule is refused.
    let other = gesta::encryption::EncryptionOptions::new(s.key_file()).subject_prefix("user:");
    invalid(
        Encrypted::open(gesta::MemoryStore::new(), other).map(drop),
        "another subject prefix",
    );
}

/// A batch with ids re-sent through the wrapper is answered with its
/// original positions and appends nothing, before and after a reopen; a
/// retry with other data is a conflict.
pub fn retries_stay_idempotent<H: Harness>(h: &mut EncryptedHarness<H>) {
    let s = h.create();
    let batch = vec![
        NewEvent::new("A", "one")
            .tag("subject:hal")
            .id(1)
            .metadata("m"),
        NewEvent::new("B", "two").id(2),
        NewEvent::new("C", "three").tag("subject:ivy").id(3),
    ];
    let first = s.append(batch.clone()).unwrap();
    assert_eq!(s.append(batch.clone()).unwrap(), first);
    let s = h.reopen(s);
    assert_eq!(s.append(batch.clone()).unwrap(), first);
    assert_eq!(s.head().unwrap(), first.last);
    let mut changed = batch;
    changed[0].data = "other".into();
    assert!(matches!(
        s.append(changed),
        Err(Error::DuplicateEventId { .. })
    ));
}

/// A sealed value that was changed, or moved to another event, is
/// `Undecryptable` naming the position — never garbage data.
pub fn tampered_ciphertext_is_a_typed_error<H: Harness>(h: &mut EncryptedHarness<H>) {
    let s = h.create();
    fixture(&s);
    let sealed = all(s.inner())[0].clone();
    let mut flipped = sealed.data.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    // Around the wrapper, as a damaged disk or a hostile writer would.
    let inner = s.inner();
    let at = inner
        .append(vec![
            NewEvent::new("Registered", flipped)
                .tag("subject:alice")
                .id(0xA1 + 100),
            // Alice's intact ciphertext moved to another event.
            NewEvent::new("Registered", sealed.data.clone()).tag("subject:alice"),
            // A subject the key file never named.
            NewEvent::new("Registered", "plain").tag("subject:zed"),
        ])
        .unwrap();
    for p in at.first..=at.last {
        match s
            .read(&Query::all(), ReadOptions::forwards().start(p - 1).limit(1))
            .unwrap()
            .next()
        {
            Some(Err(Error::Undecryptable { position, .. })) => assert_eq!(position, p),
            other => panic!("position {p}: expected Undecryptable, got {other:?}"),
        }
    }
    // The events before are still readable.
    assert_eq!(
        s.read_last(&Query::tag("kind:shop")).unwrap().unwrap().data,
        "public"
    );
}
