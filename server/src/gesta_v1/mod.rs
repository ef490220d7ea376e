//! The `gesta.v1.Gesta` service: what a Gesta store offers beyond UmaDB's
//! protocol (streams and expected revisions, event ids, lookups by id and
//! time, listings of streams, event types and tags, durable subscriptions
//! with server-side cursors, snapshots, retroactive tags, redaction and the
//! audit trail), on the same port and behind the same TLS and API key as
//! `umadb.v1.DCB`.
//!
//! `convert` (protocol ↔ engine, errors ↔ statuses with typed details, for
//! the service and the client), `service` (the RPCs), `wire` (the events
//! of its streamed responses, encoded straight from borrowed events),
//! `durable` (the durable subscriptions open on this server), `backup`
//! (where the `Backup` RPC may write).

pub(crate) mod backup;
pub(crate) mod convert;
mod durable;
mod service;
mod wire;

pub(crate) use service::Gesta;

/// The service's full name, as the health service reports it.
pub const SERVICE_NAME: &str = "gesta.v1.Gesta";

#[cfg(test)]
mod tests {
    /// The generated code heads itself with the hash of the .proto it was
    /// generated from; an edit of the .proto without regenerating fails
    /// here.
    #[test]
    fn gesta_proto_is_generated() {
        let proto = include_bytes!("../../proto/gesta.proto");
        let generated = include_str!("../proto/gesta.v1.rs");
        let hash = proto.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let first = generated.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("(fnv1a64 {hash:016x})")),
            "proto/gesta.proto changed since src/proto/gesta.v1.rs was generated \
             ({first:?}, the .proto hashes to {hash:016x}): run server/proto/generate.sh"
        );
    }
}
