//! The single writer: the epoch object (`EPOCH` under the prefix) and the
//! conditional writes of the checkpoint that make a fenced writer
//! harmless.
//!
//! - **Claim.** A shipper reads `EPOCH`. Absent: it creates it with
//!   `If-None-Match: *` (`PutMode::Create`) at epoch 1. Released by its
//!   last writer: it writes epoch + 1 with `If-Match` on the ETag it read
//!   (`PutMode::Update`). Held: it is refused with [`Error::Claimed`],
//!   unless it was asked to take over, when it writes epoch + 1 the same
//!   conditional way. Two claimers racing: one conditional PUT wins, the
//!   other reads again and finds the prefix held.
//! - **Fence the checkpoint.** Having claimed, the shipper reads
//!   `CHECKPOINT` and rewrites it, unchanged but for its own epoch, writer
//!   and the next sequence number, conditionally on the ETag it read — and
//!   only if the epoch it read is not above its own (a checkpoint of a
//!   later epoch means it has been taken over already: [`Error::Fenced`]).
//!   From then on the checkpoint is written only with `If-Match` on the
//!   ETag of the shipper's own last write, so the first write of another
//!   writer after that makes every later write of this one fail.
//! - **Lost replies.** A conditional write whose reply was lost (a
//!   timeout after the server applied it) fails its retry with 412; the
//!   shipper then reads the checkpoint, and if it is exactly its own
//!   write, takes it as done. If it is an earlier write of its own (a
//!   round that failed on a lost reply, though the bucket applied it), the
//!   shipper takes that as its last checkpoint and runs the round again,
//!   so it never reports a head the bucket does not hold, nor deletes a
//!   chunk the bucket's checkpoint names.
//! - **Release.** A shipper that stops cleanly writes `EPOCH` back as
//!   released (conditionally: never over a newer epoch), so the next
//!   shipper on the prefix needs no takeover.
//!
//! Every object's content differs from the one it replaces (a new epoch,
//! state or sequence), so ETags, which S3 derives from the content, differ
//! too: an `If-Match` can never match a later write by accident.

use object_store::{ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result, bucket};
use crate::location::Location;

/// The epoch object's name under the prefix.
pub const EPOCH_OBJECT: &str = "EPOCH";
/// The checkpoint object's name under the prefix.
pub const CHECKPOINT_OBJECT: &str = "CHECKPOINT";

const EPOCH_MAGIC: &str = "gesta-tier epoch 1";

/// How many times a conditional write that lost a race is tried again.
const RACES: usize = 16;

/// The epoch object's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    /// The epoch, from 1, incremented by every claim.
    pub epoch: u64,
    /// The writer that claimed it.
    pub writer: String,
    /// Whether the writer still holds it (false once released).
    pub held: bool,
}

impl EpochRecord {
    fn encode(&self) -> Vec<u8> {
        format!(
            "{EPOCH_MAGIC}\nepoch {}\nwriter {}\nstate {}\n",
            self.epoch,
            self.writer,
            if self.held { "held" } else { "released" }
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<EpochRecord> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != EPOCH_MAGIC {
            return None;
        }
        let epoch = lines.next()?.strip_prefix("epoch ")?.parse().ok()?;
        let writer = lines.next()?.strip_prefix("writer ")?.to_owned();
        let held = match lines.next()?.strip_prefix("state ")? {
            "held" => true,
            "released" => false,
            _ => return None,
        };
        Some(EpochRecord {
            epoch,
            writer,
            held,
        })
    }
}

/// An object's content and the version a conditional write names.
struct Read {
    bytes: bytes::Bytes,
    version: UpdateVersion,
}

async fn read(location: &Location, name: &str) -> Result<Option<Read>> {
    let key = location.key(name);
    match location.store().get(&key).await {
        Ok(got) => {
            let version = UpdateVersion {
                e_tag: got.meta.e_tag.clone(),
                version: got.meta.version.clone(),
            };
            let bytes = got.bytes().await.map_err(bucket(format!("read {key}")))?;
            Ok(Some(Read { bytes, version }))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(bucket(format!("read {key}"))(e)),
    }
}

/// Whether a conditional write failed its condition (or lost a race to
/// create).
fn lost_race(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }
    )
}

/// What a conditional write returned, as the version of the next one.
fn version_of(result: object_store::PutResult) -> UpdateVersion {
    UpdateVersion {
        e_tag: result.e_tag,
        version: result.version,
    }
}

/// The current epoch record, if any.
pub async fn read_epoch(location: &Location) -> Result<Option<EpochRecord>> {
    match read(location, EPOCH_OBJECT).await? {
        None => Ok(None),
        Some(r) => EpochRecord::decode(&r.bytes)
            .map(Some)
            .ok_or_else(|| Error::Corrupt {
                key: location.key(EPOCH_OBJECT).to_string(),
                reason: "not an epoch record".into(),
            }),
    }
}

/// A held epoch: what the shipper claimed, and the version of the epoch
/// object it wrote (for the release).
#[derive(Clone, Debug)]
pub struct Claim {
    /// The epoch.
    pub epoch: u64,
    /// This writer's id.
    pub writer: String,
    version: UpdateVersion,
}

/// Claims the prefix's next epoch for `writer`; see the module doc.
pub async fn claim(location: &Location, writer: &str, takeover: bool) -> Result<Claim> {
    let key = location.key(EPOCH_OBJECT);
    for _ in 0..RACES {
        let current = read(location, EPOCH_OBJECT).await?;
        let (epoch, mode) = match &current {
            None => (1, PutMode::Create),
            Some(r) => {
                let record = EpochRecord::decode(&r.bytes).ok_or_else(|| Error::Corrupt {
                    key: key.to_string(),
                    reason: "not an epoch record".into(),
                })?;
                if record.held && !takeover {
                    return Err(Error::Claimed {
                        location: location.to_string(),
                        epoch: record.epoch,
                        writer: record.writer,
                    });
                }
                (record.epoch + 1, PutMode::Update(r.version.clone()))
            }
        };
        let record = EpochRecord {
            epoch,
            writer: writer.to_owned(),
            held: true,
        };
        match location
            .store()
            .put_opts(&key, PutPayload::from(record.encode()), mode.into())
            .await
        {
            Ok(result) => {
                return Ok(Claim {
                    epoch,
                    writer: writer.to_owned(),
                    version: version_of(result),
                });
            }
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(bucket(format!("claim {key}"))(e)),
        }
    }
    Err(Error::InvalidInput(format!(
        "{location}: the epoch changed {RACES} times while claiming it; another writer is claiming it too"
    )))
}

/// Marks the epoch released, unless a later epoch replaced it (then
/// nothing is written: the prefix is someone else's).
pub async fn release(location: &Location, claim: &Claim) -> Result<()> {
    let key = location.key(EPOCH_OBJECT);
    let record = EpochRecord {
        epoch: claim.epoch,
        writer: claim.writer.clone(),
        held: false,
    };
    match location
        .store()
        .put_opts(
            &key,
            PutPayload::from(record.encode()),
            PutMode::Update(claim.version.clone()).into(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if lost_race(&e) => Ok(()),
        Err(e) => Err(bucket(format!("release {key}"))(e)),
    }
}

/// [`Error::Fenced`] if the epoch object no longer names this claim.
pub async fn check(location: &Location, claim: &Claim) -> Result<()> {
    match read_epoch(location).await? {
        Some(r) if r.epoch == claim.epoch && r.writer == claim.writer => Ok(()),
        Some(r) => Err(Error::Fenced {
            epoch: claim.epoch,
            by: r.epoch,
            writer: r.writer,
        }),
        None => Err(Error::Fenced {
            epoch: claim.epoch,
            by: 0,
            writer: "(the epoch object was deleted)".into(),
        }),
    }
}

/// Reads and checks the checkpoint, with its version.
async fn read_checkpoint(location: &Location) -> Result<Option<(Checkpoint, UpdateVersion)>> {
    match read(location, CHECKPOINT_OBJECT).await? {
        None => Ok(None),
        Some(r) => {
            let checkpoint = Checkpoint::decode(&r.bytes).map_err(|reason| Error::Corrupt {
                key: location.key(CHECKPOINT_OBJECT).to_string(),
                reason,
            })?;
            Ok(Some((checkpoint, r.version)))
        }
    }
}

/// The checkpoint, checked (for restore).
pub async fn load_checkpoint(location: &Location) -> Result<Checkpoint> {
    read_checkpoint(location)
        .await?
        .map(|(c, _)| c)
        .ok_or_else(|| Error::NoCheckpoint {
            location: location.to_string(),
        })
}

/// The checkpoint chain as this writer holds it: the last checkpoint it
/// wrote and that write's version.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The last checkpoint written (by this writer, or inherited and
    /// rewritten under its epoch by [`fence_checkpoint`]).
    pub checkpoint: Checkpoint,
    version: Option<UpdateVersion>,
}

/// Takes the checkpoint chain over for `claim`; see the module doc.
pub async fn fence_checkpoint(location: &Location, claim: &Claim) -> Result<Chain> {
    let key = location.key(CHECKPOINT_OBJECT);
    for _ in 0..RACES {
        let current = read_checkpoint(location).await?;
        let (mut checkpoint, mode) = match current {
            None => (Checkpoint::default(), PutMode::Create),
            Some((c, _)) if c.epoch > claim.epoch => {
                return Err(Error::Fenced {
                    epoch: claim.epoch,
                    by: c.epoch,
                    writer: c.writer,
                });
            }
            Some((c, version)) => (c, PutMode::Update(version)),
        };
        checkpoint.epoch = claim.epoch;
        checkpoint.writer = claim.writer.clone();
        checkpoint.sequence += 1;
        match location
            .store()
            .put_opts(&key, PutPayload::from(checkpoint.encode()), mode.into())
            .await
        {
            Ok(result) => {
                return Ok(Chain {
                    checkpoint,
                    version: Some(version_of(result)),
                });
            }
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(bucket(format!("fence {key}"))(e)),
        }
    }
    Err(Error::InvalidInput(format!(
        "{location}: the checkpoint changed {RACES} times while fencing it"
    )))
}

/// Writes `next` (of this chain's epoch and writer, and the next
/// sequence) as the checkpoint, only if the last one this writer wrote is
/// still there; [`Error::Fenced`] if another writer's is.
pub async fn publish(location: &Location, chain: &mut Chain, next: Checkpoint) -> Result<()> {
    let key = location.key(CHECKPOINT_OBJECT);
    let mode = match &chain.version {
        Some(v) => PutMode::Update(v.clone()),
        None => PutMode::Create,
    };
    match location
        .store()
        .put_opts(&key, PutPayload::from(next.encode()), mode.into())
        .await
    {
        Ok(result) => {
            chain.version = Some(version_of(result));
            chain.checkpoint = next;
            Ok(())
        }
        Err(e) if lost_race(&e) => match read_checkpoint(location).await? {
            // This very write, whose reply was lost and which the client
            // sent again.
            Some((c, version)) if c == next => {
                chain.version = Some(version);
                chain.checkpoint = next;
                Ok(())
            }
            // An earlier write of ours that the client gave up on but the
            // bucket applied (a failed round's checkpoint, with the same
            // sequence). The bucket holds it: the chain follows it, so the
            // next round builds on what the bucket restores to, and this
            // round fails, to be run again.
            Some((c, version)) if c.epoch == next.epoch && c.writer == next.writer => {
                chain.version = Some(version);
                chain.checkpoint = c;
                Err(bucket(format!(
                    "write {key} (an earlier checkpoint of this writer landed meanwhile)"
                ))(e))
            }
            Some((c, _)) => Err(Error::Fenced {
                epoch: next.epoch,
                by: c.epoch,
                writer: c.writer,
            }),
            None => Err(Error::Fenced {
                epoch: next.epoch,
                by: 0,
                writer: "(the checkpoint was deleted)".into(),
            }),
        },
        Err(e) => Err(bucket(format!("write {key}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn checkpoint(claim: &Claim, sequence: u64, head: u64) -> Checkpoint {
        Checkpoint {
            epoch: claim.epoch,
            writer: claim.writer.clone(),
            sequence,
            head,
            ..Checkpoint::default()
        }
    }

    /// A round whose checkpoint write the client gave up on, though the
    /// bucket applied it: the next round's write fails, and the chain
    /// follows what the bucket holds instead of the round's own checkpoint,
    /// which never landed.
    #[test]
    fn an_earlier_write_that_landed_after_all_is_followed_not_taken_for_this_one() {
        let rt = runtime();
        let location =
            Location::new(Arc::new(object_store::memory::InMemory::new()), "p").expect("location");
        rt.block_on(async {
            let claim = claim(&location, "w", false).await.expect("claim");
            let mut chain = fence_checkpoint(&location, &claim).await.expect("fence");
            let base = chain.checkpoint.sequence;
            publish(&location, &mut chain, checkpoint(&claim, base + 1, 10))
                .await
                .expect("first");
            // The second round's write lands, but its reply is lost: the
            // writer's chain stays as it was.
            let stale = Chain {
                checkpoint: chain.checkpoint.clone(),
                version: chain.version.clone(),
            };
            publish(&location, &mut chain, checkpoint(&claim, base + 2, 20))
                .await
                .expect("second, landed");
            let mut chain = stale;
            // The round is run again, with more events: the same sequence,
            // another checkpoint.
            let again = checkpoint(&claim, base + 2, 30);
            assert!(publish(&location, &mut chain, again).await.is_err());
            assert_eq!(chain.checkpoint.head, 20, "the chain follows the bucket");
            assert_eq!(load_checkpoint(&location).await.expect("load").head, 20);
            // The next round builds on it and lands.
            let next = checkpoint(&claim, chain.checkpoint.sequence + 1, 30);
            publish(&location, &mut chain, next).await.expect("next");
            assert_eq!(load_checkpoint(&location).await.expect("load").head, 30);

            // The very same write sent twice (the client's own retry after
            // a lost reply) is taken as done.
            let stale = Chain {
                checkpoint: chain.checkpoint.clone(),
                version: chain.version.clone(),
            };
            let twice = checkpoint(&claim, chain.checkpoint.sequence + 1, 40);
            publish(&location, &mut chain, twice.clone())
                .await
                .expect("landed");
            let mut chain = stale;
            publish(&location, &mut chain, twice)
                .await
                .expect("taken as done");
            assert_eq!(chain.checkpoint.head, 40);
        });
    }
}
