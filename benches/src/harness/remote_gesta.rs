//! `gesta::EventStore` over the `gesta.v1.Gesta` service (feature
//! `server`), for the comparison's `--server --gesta-v1` mode:
//! [`GestaRemote`], a pool of the server crate's [`GestaClient`]s, one
//! connection each, taken in turn per call.
//!
//! Unlike the DCB adapter (`remote`), nothing is mapped or refused: the
//! protocol carries streams, event ids, expected revisions, metadata and
//! commit times, and a store's refusal comes back as the error the store
//! raised. Reads lend their events as the client lends them
//! ([`GestaClient::read_each`]); an owned read takes each response as the
//! previous one is used up. Subscriptions are not adapted.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use gesta::{
    AppendOptions, Appended, Error, EventIter, EventRef, EventStore, NewEvent, Query, ReadOptions,
    RecordedEvent, Result,
};
use gesta_server::client::{ClientError, GestaClient};
use tokio::runtime::Runtime;

use super::HarnessError;
use super::remote::Pool;

/// `gesta::EventStore` over `gesta.v1`: a pool of connections to one
/// server, taken in turn per call.
pub struct GestaRemote {
    runtime: Arc<Runtime>,
    clients: Pool<GestaClient>,
    addr: SocketAddr,
}

impl GestaRemote {
    /// Opens `connections` (at least one) separate connections to `addr`.
    pub fn connect(
        runtime: Arc<Runtime>,
        addr: SocketAddr,
        connections: usize,
    ) -> Result<GestaRemote, HarnessError> {
        let clients = Pool::connect(&runtime, addr, connections, GestaClient::new)?;
        Ok(GestaRemote {
            runtime,
            clients,
            addr,
        })
    }

    /// How many connections it has.
    pub fn connections(&self) -> usize {
        self.clients.len()
    }

    /// The next connection's client (a cheap handle onto the connection).
    fn client(&self) -> GestaClient {
        self.clients.next()
    }

    /// Runs a call on the next connection, its error as the store's.
    fn call<T, F>(&self, call: impl FnOnce(GestaClient) -> F) -> Result<T>
    where
        F: Future<Output = Result<T, ClientError>>,
    {
        self.runtime
            .block_on(call(self.client()))
            .map_err(|e| self.error(e))
    }

    /// A client's error as the store's: the store's own when the server
    /// sent one, else an I/O error naming the server.
    fn error(&self, e: ClientError) -> Error {
        match e {
            ClientError::Store(e) => e,
            other => Error::Io {
                path: PathBuf::from(format!("grpc://{}", self.addr)),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }

    /// An owned read's events, each response fetched when the previous
    /// one is used up.
    fn owned<'a>(&'a self, events: gesta_server::client::EventStream) -> EventIter<'a> {
        let mut events = Some(events);
        Box::new(std::iter::from_fn(move || {
            let next = self.runtime.block_on(events.as_mut()?.next());
            match next {
                Some(Ok(e)) => Some(Ok(e)),
                Some(Err(e)) => {
                    events = None;
                    Some(Err(self.error(e)))
                }
                None => {
                    events = None;
                    None
                }
            }
        }))
    }
}

impl EventStore for GestaRemote {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        self.call(|mut c| async move { c.append(events, options).await })
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        let events = self.call(|mut c| async move { c.read(query, options).await })?;
        Ok(self.owned(events))
    }

    fn read_each(
        &self,
        query: &Query,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.call(|mut c| async move { c.read_each(query, options, f).await })
    }

    fn head(&self) -> Result<u64> {
        self.call(|mut c| async move { c.head().await })
    }

    fn stream_revision(&self, stream: &str) -> Result<Option<u64>> {
        self.call(|mut c| async move { c.stream_revision(stream).await })
    }

    fn read_stream<'a>(&'a self, stream: &str, options: ReadOptions) -> Result<EventIter<'a>> {
        let events = self.call(|mut c| async move { c.read_stream(stream, options).await })?;
        Ok(self.owned(events))
    }

    fn read_stream_each(
        &self,
        stream: &str,
        options: ReadOptions,
        f: &mut dyn FnMut(EventRef<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.call(|mut c| async move { c.read_stream_each(stream, options, f).await })
    }

    fn read_stream_last(&self, stream: &str) -> Result<Option<RecordedEvent>> {
        self.call(|mut c| async move { c.read_stream_last(stream).await })
    }

    fn event_by_id(&self, id: u128) -> Result<Option<RecordedEvent>> {
        self.call(|mut c| async move { c.event_by_id(id).await })
    }

    fn position_at(&self, timestamp_micros: u64) -> Result<u64> {
        self.call(|mut c| async move { c.position_at(timestamp_micros).await })
    }

    fn tracking_info(&self, source: &str) -> Result<Option<u64>> {
        self.call(|mut c| async move { c.tracking_info(source).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::remote::{CLIENT_THREADS, LocalServer, SERVER_THREADS, runtime};
    use gesta::{Durability, ExpectedRevision, Options};

    fn event(i: u64, tag: &str) -> NewEvent {
        NewEvent::new(format!("T{}", i % 3), format!("{{\"i\":{i}}}"))
            .tags([tag.to_owned(), format!("n:{i}")])
            .stream(format!("s-{}", i % 3))
            .metadata(format!("m{i}"))
            .id(u128::from(i) << 64 | 7)
    }

    /// Reads, lookups and the refusals through gesta.v1 answer as the
    /// store itself does, field for field (commit times included).
    #[test]
    fn remote_answers_what_the_store_answers() {
        let dir = crate::scratch_dir("gesta-remote-gesta-test").unwrap();
        let store =
            gesta::Store::open_with(dir.path(), Options::default().durability(Durability::Sync))
                .unwrap();
        let server = LocalServer::start(runtime(SERVER_THREADS).unwrap(), store.clone()).unwrap();
        let remote = server
            .connect_gesta(&runtime(CLIENT_THREADS).unwrap(), 3)
            .unwrap();
        assert_eq!(remote.connections(), 3);
        assert_eq!(remote.head().unwrap(), 0);
        for i in 0..30 {
            let tag = if i % 2 == 0 { "even" } else { "odd" };
            remote.append(vec![event(i, tag)]).unwrap();
        }
        let batch = (30..40).map(|i| event(i, "even")).collect();
        let options = AppendOptions::new().expect("s-0", ExpectedRevision::Exact(9));
        assert_eq!(
            remote.append_with(batch, options).unwrap(),
            Appended {
                first: 31,
                last: 40
            }
        );
        assert_eq!(remote.head().unwrap(), store.head());

        let collect = |s: &dyn EventStore, q: &Query, o: ReadOptions| -> Vec<RecordedEvent> {
            s.read(q, o).unwrap().collect::<Result<_>>().unwrap()
        };
        let lent = |s: &dyn EventStore, q: &Query, o: ReadOptions| -> Vec<RecordedEvent> {
            let mut got = Vec::new();
            s.read_each(q, o, &mut |e| {
                got.push(e.to_owned());
                ControlFlow::Continue(())
            })
            .unwrap();
            got
        };
        for (q, o) in [
            (Query::all(), ReadOptions::forwards()),
            (Query::tag("even"), ReadOptions::backwards().limit(4)),
            (Query::event_type("T1"), ReadOptions::forwards().start(10)),
        ] {
            let want = collect(&store, &q, o);
            assert!(!want.is_empty());
            assert_eq!(collect(&remote, &q, o), want);
            assert_eq!(lent(&remote, &q, o), want);
        }
        let stream = |s: &dyn EventStore| -> Vec<RecordedEvent> {
            let mut got = Vec::new();
            s.read_stream_each("s-1", ReadOptions::forwards().start(2), &mut |e| {
                got.push(e.to_owned());
                ControlFlow::Continue(())
            })
            .unwrap();
            got
        };
        assert_eq!(stream(&remote), stream(&store));
        assert_eq!(
            remote.stream_revision("s-2").unwrap(),
            store.stream_revision("s-2").unwrap()
        );
        assert_eq!(
            remote.read_stream_last("s-0").unwrap(),
            EventStore::read_stream_last(&store, "s-0").unwrap()
        );
        let id = 17u128 << 64 | 7;
        assert_eq!(
            remote.event_by_id(id).unwrap(),
            EventStore::event_by_id(&store, id).unwrap()
        );
        assert_eq!(remote.event_by_id(5).unwrap(), None);
        let at = store
            .read(&Query::all(), ReadOptions::forwards().start(19).limit(1))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .timestamp_micros;
        assert_eq!(
            remote.position_at(at).unwrap(),
            EventStore::position_at(&store, at).unwrap()
        );

        // The store's refusals come back as its errors.
        let stale = AppendOptions::new().expect("s-0", ExpectedRevision::Exact(0));
        assert!(matches!(
            remote.append_with(vec![event(99, "odd")], stale),
            Err(Error::WrongExpectedRevision { .. })
        ));
        // A batch sent again appends nothing; another event under a taken
        // id is refused.
        assert_eq!(
            remote.append(vec![event(3, "odd")]).unwrap(),
            Appended { first: 4, last: 4 }
        );
        assert!(matches!(
            remote.append(vec![event(3, "even")]),
            Err(Error::DuplicateEventId { .. })
        ));
        assert_eq!(remote.head().unwrap(), 40);
        drop(remote);
        server.stop().unwrap();
    }
}
