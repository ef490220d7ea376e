//! Gesta behind its gRPC server, for the comparison's `--server` mode
//! (feature `server`): [`LocalServer`], a `gesta-server` on a loopback port
//! of this process over one store, and [`RemoteStore`], `gesta::EventStore`
//! over the generated client of the `umadb.v1.DCB` service with a pool of
//! client connections.
//!
//! The trait's methods are blocking and the workloads call them from plain
//! threads, so each call is a `block_on` on the client's multi-thread tokio
//! runtime; the server runs on a runtime of its own (threads named
//! [`SERVER_THREADS`]), as it would in a process of its own, so that the
//! CPU each side takes can be told apart. Each of the pool's `Channel`s is
//! one HTTP/2 connection of its own (a separate `Endpoint::connect`); calls
//! take them in turn. [`UmaServer`] runs UmaDB's own server as a child
//! process for the same client.
//!
//! What the protocol cannot carry, the adapter maps or refuses, as the
//! UmaDB adapter does: an event's stream travels as a metadata entry (kept,
//! not indexed, so the server assigns no stream revisions); its metadata
//! bytes as another entry, read as (lossy) UTF-8; event ids, expected
//! stream revisions and `stream_revision` are refused (a protocol UUID is
//! no uniqueness constraint, and the protocol has no streams). Commit
//! timestamps do not travel (0). Subscriptions are not adapted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gesta::{
    AppendOptions, Appended, Direction, Error, EventIter, EventStore, NewEvent, Query, ReadOptions,
    RecordedEvent, Result,
};
use gesta_server::RAW_METADATA_KEY;
use gesta_server::proto::v1;
use gesta_server::proto::v1::dcb_client::DcbClient;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::HarnessError;

/// The metadata entry holding an event's stream.
const STREAM_KEY: &str = "gesta.stream";
/// The largest message the client accepts, as the server's default.
const MAX_MESSAGE_BYTES: usize = 32 << 20;

/// The name of the threads of the in-process server's runtime (at most
/// 15 bytes, all of it in `/proc`).
pub const SERVER_THREADS: &str = "gesta-bench-srv";
/// The name of the threads of the client's runtime.
pub const CLIENT_THREADS: &str = "gesta-bench-cli";

/// A multi-thread runtime whose threads are named `name`: one for the
/// in-process server, one for the clients. One worker thread per core.
pub fn runtime(name: &str) -> std::io::Result<Arc<Runtime>> {
    runtime_with(name, 0)
}

/// [`runtime`] with `workers` worker threads (0: one per core), built as
/// `gesta serve --worker-threads` builds the server's.
pub fn runtime_with(name: &str, workers: usize) -> std::io::Result<Arc<Runtime>> {
    gesta_server::command::runtime_builder(
        workers,
        gesta_server::ServeConfig::default().max_open_streams,
    )
    .thread_name(name)
    // Blocking threads (a server's reads) stay for the run, so that
    // the CPU they took can be read from them.
    .thread_keep_alive(std::time::Duration::from_secs(3600))
    .build()
    .map(Arc::new)
}

/// A `gesta-server` serving one store on `127.0.0.1` (a free port) on the
/// shared runtime, until [`LocalServer::stop`].
pub struct LocalServer {
    runtime: Arc<Runtime>,
    addr: SocketAddr,
    store: gesta::Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::result::Result<(), gesta_server::ServeError>>>,
}

impl LocalServer {
    /// Binds a loopback port and serves `store` on it with the default
    /// server configuration.
    pub fn start(runtime: Arc<Runtime>, store: gesta::Store) -> Result<LocalServer, HarnessError> {
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let config = gesta_server::ServeConfig {
            listen: addr,
            // Every call of a workload has returned before it stops: a
            // server still busy after this long is a fault, not a wait.
            shutdown_grace: std::time::Duration::from_secs(10),
            ..gesta_server::ServeConfig::default()
        };
        let task = runtime.spawn(gesta_server::serve_on(
            listener,
            store.clone(),
            config,
            async {
                let _ = stopped.await;
            },
        ));
        Ok(LocalServer {
            runtime,
            addr,
            store,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client on `runtime` with `connections` connections to it.
    pub fn connect(
        &self,
        runtime: &Arc<Runtime>,
        connections: usize,
    ) -> Result<RemoteStore, HarnessError> {
        RemoteStore::connect(Arc::clone(runtime), self.addr, connections)
    }

    /// A client of its `gesta.v1` service on `runtime`, with
    /// `connections` connections to it.
    pub fn connect_gesta(
        &self,
        runtime: &Arc<Runtime>,
        connections: usize,
    ) -> Result<super::remote_gesta::GestaRemote, HarnessError> {
        super::remote_gesta::GestaRemote::connect(Arc::clone(runtime), self.addr, connections)
    }

    /// Stops the server gracefully (the calls in flight are answered), then
    /// closes the store.
    pub fn stop(mut self) -> Result<(), HarnessError> {
        self.shut_down()?;
        self.store.clone().close()?;
        Ok(())
    }

    fn shut_down(&mut self) -> Result<(), HarnessError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            self.runtime.block_on(task)??;
        }
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // A workload that failed part-way still stops its server.
        let _ = self.shut_down();
    }
}

/// UmaDB's own server (`umadb --listen ADDR --db-path FILE`, from the
/// `umadb` package on PyPI; see `.ci/umadb-server.sh`) as a child process
/// on a free loopback port, until [`UmaServer::stop`] or drop.
pub struct UmaServer {
    child: std::process::Child,
    addr: SocketAddr,
}

impl UmaServer {
    /// Starts `command` over the database file `dir/uma.db` (its output
    /// goes to `dir/umadb.log`) and waits until it answers `Head`.
    pub fn start(
        command: &std::path::Path,
        dir: &std::path::Path,
        runtime: &Arc<Runtime>,
    ) -> Result<UmaServer, HarnessError> {
        std::fs::create_dir_all(dir)?;
        // A free port: bound, read and released (nothing else here takes
        // ports in between).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(dir.join("umadb.log"))?;
        let child = std::process::Command::new(command)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--db-path")
            .arg(dir.join("uma.db"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start UmaDB's server {}: {e}", command.display()))?;
        let mut server = UmaServer { child, addr };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!(
                    "UmaDB's server exited ({status}); see {}",
                    dir.join("umadb.log").display()
                )
                .into());
            }
            let ready = RemoteStore::connect(Arc::clone(runtime), addr, 1)
                .ok()
                .is_some_and(|c| c.head().is_ok());
            if ready {
                return Ok(server);
            }
            if std::time::Instant::now() > deadline {
                server.kill();
                return Err("UmaDB's server did not answer within 30 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client on `runtime` with `connections` connections to it.
    pub fn connect(
        &self,
        runtime: &Arc<Runtime>,
        connections: usize,
    ) -> Result<RemoteStore, HarnessError> {
        RemoteStore::connect(Arc::clone(runtime), self.addr, connections)
    }

    /// Stops the server. Its appends are durable when answered (it syncs
    /// each commit), and its files are thrown away after each workload,
    /// so it is killed rather than asked.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for UmaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `gesta::EventStore` over gRPC: a pool of connections to one server,
/// taken in turn per call.
pub struct RemoteStore {
    runtime: Arc<Runtime>,
    clients: Pool<DcbClient<Channel>>,
    addr: SocketAddr,
}

impl RemoteStore {
    /// Opens `connections` (at least one) separate connections to `addr`.
    pub fn connect(
        runtime: Arc<Runtime>,
        addr: SocketAddr,
        connections: usize,
    ) -> Result<RemoteStore, HarnessError> {
        let clients = Pool::connect(&runtime, addr, connections, |channel| {
            DcbClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
        })?;
        Ok(RemoteStore {
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
    fn client(&self) -> DcbClient<Channel> {
        self.clients.next()
    }

    fn error(&self, status: Status) -> Error {
        from_status(self.addr, status)
    }

    /// The first event after `after` matching `query`: the position a
    /// failed condition names (the status carries it only as text).
    fn first_match(&self, query: &Query, after: Option<u64>) -> u64 {
        let mut options = ReadOptions::forwards().limit(1);
        options.start = after;
        self.read(query, options)
            .ok()
            .and_then(|mut r| r.next())
            .and_then(|e| e.ok())
            .map_or(0, |e| e.position)
    }
}

/// Clients of one server, each on a connection of its own, taken in turn.
pub(super) struct Pool<C> {
    clients: Vec<C>,
    next: AtomicUsize,
}

impl<C: Clone> Pool<C> {
    /// `connections` (at least one) clients of the server at `addr`, made
    /// by `client`.
    pub(super) fn connect(
        runtime: &Runtime,
        addr: SocketAddr,
        connections: usize,
        client: impl Fn(Channel) -> C,
    ) -> Result<Pool<C>, HarnessError> {
        if connections == 0 {
            return Err("a remote store needs at least one connection".into());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
        let clients = runtime.block_on(async {
            let mut clients = Vec::with_capacity(connections);
            for _ in 0..connections {
                // One `connect` per client: a cloned Channel would share its
                // connection.
                clients.push(client(endpoint.connect().await?));
            }
            Ok::<_, tonic::transport::Error>(clients)
        })?;
        Ok(Pool {
            clients,
            next: AtomicUsize::new(0),
        })
    }

    /// How many connections it has.
    pub(super) fn len(&self) -> usize {
        self.clients.len()
    }

    /// The next connection's client (a cheap handle onto the connection).
    pub(super) fn next(&self) -> C {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        self.clients[i].clone()
    }
}

fn from_status(addr: SocketAddr, status: Status) -> Error {
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => Error::InvalidInput {
            reason: status.message().to_owned(),
        },
        _ => Error::Io {
            path: PathBuf::from(format!("grpc://{addr}")),
            source: std::io::Error::other(format!("{:?}: {}", status.code(), status.message())),
        },
    }
}

fn refused(what: &str) -> Error {
    Error::InvalidInput {
        reason: format!("the DCB protocol cannot carry {what}"),
    }
}

fn to_query(query: &Query) -> Option<v1::Query> {
    // No query is the protocol's "everything".
    (!query.items.is_empty()).then(|| v1::Query {
        items: query
            .items
            .iter()
            .map(|i| v1::QueryItem {
                types: i.types.clone(),
                tags: i.tags.clone(),
            })
            .collect(),
    })
}

fn to_event(e: NewEvent) -> Result<v1::Event> {
    if e.id.is_some() {
        return Err(refused(
            "event ids (a UUID there is no uniqueness constraint)",
        ));
    }
    let mut metadata = Vec::new();
    if let Some(stream) = e.stream {
        metadata.push(v1::MetadataEntry {
            key: STREAM_KEY.to_owned(),
            value: stream,
        });
    }
    if !e.metadata.is_empty() {
        metadata.push(v1::MetadataEntry {
            key: RAW_METADATA_KEY.to_owned(),
            value: String::from_utf8_lossy(&e.metadata).into_owned(),
        });
    }
    Ok(v1::Event {
        event_type: e.event_type,
        tags: e.tags,
        data: e.data,
        uuid: String::new(),
        metadata,
    })
}

fn to_recorded(e: v1::SequencedEvent) -> RecordedEvent {
    let event = e.event.unwrap_or_default();
    let mut stream = None;
    let mut metadata = Vec::new();
    for entry in event.metadata {
        match entry.key.as_str() {
            STREAM_KEY => stream = Some(entry.value),
            RAW_METADATA_KEY => metadata = entry.value.into_bytes(),
            _ => {}
        }
    }
    RecordedEvent {
        position: e.position,
        event_type: event.event_type,
        tags: event.tags,
        data: event.data,
        metadata: metadata.into(),
        id: None,
        stream,
        revision: None,
        timestamp_micros: 0,
    }
}

/// The events of a `Read` call, each response fetched when the previous
/// one is used up.
struct Responses {
    runtime: Arc<Runtime>,
    stream: Option<tonic::Streaming<v1::ReadResponse>>,
    buffered: VecDeque<v1::SequencedEvent>,
    addr: SocketAddr,
}

impl Iterator for Responses {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buffered.pop_front() {
                return Some(Ok(to_recorded(e)));
            }
            let stream = self.stream.as_mut()?;
            match self.runtime.block_on(stream.message()) {
                Ok(Some(response)) => self.buffered.extend(response.events),
                Ok(None) => self.stream = None,
                Err(status) => {
                    self.stream = None;
                    return Some(Err(from_status(self.addr, status)));
                }
            }
        }
    }
}

impl EventStore for RemoteStore {
    fn append_with(&self, events: Vec<NewEvent>, options: AppendOptions) -> Result<Appended> {
        gesta::validation::check_batch(&events)?;
        if !options.expected.is_empty() {
            return Err(refused("expected stream revisions"));
        }
        let n = events.len() as u64;
        let events = events
            .into_iter()
            .map(to_event)
            .collect::<Result<Vec<_>>>()?;
        let condition = options.condition.map(|c| v1::AppendCondition {
            fail_if_events_match: to_query(&c.fail_if_events_match),
            after: c.after,
        });
        let checked = condition.clone();
        let request = v1::AppendRequest {
            events,
            condition,
            tracking_info: options
                .tracking
                .map(|(source, position)| v1::TrackingInfo { source, position }),
        };
        let mut client = self.client();
        match self.runtime.block_on(client.append(request)) {
            Ok(response) => {
                let last = response.into_inner().position;
                Ok(Appended {
                    first: last + 1 - n,
                    last,
                })
            }
            // A failed condition; a stale tracking position is the same
            // code, told apart by whether the condition matches.
            Err(status) if status.code() == Code::FailedPrecondition => {
                let position = checked.and_then(|c| {
                    let query = c.fail_if_events_match.map_or_else(Query::all, |q| {
                        Query::from_items(
                            q.items
                                .into_iter()
                                .map(|i| gesta::QueryItem::new().types(i.types).tags(i.tags)),
                        )
                    });
                    Some(self.first_match(&query, c.after)).filter(|&p| p > 0)
                });
                match position {
                    Some(position) => Err(Error::ConditionFailed { position }),
                    None => Err(self.error(status)),
                }
            }
            Err(status) => Err(self.error(status)),
        }
    }

    fn read<'a>(&'a self, query: &Query, options: ReadOptions) -> Result<EventIter<'a>> {
        gesta::validation::check_query(query)?;
        let backwards = options.direction == Direction::Backwards;
        // The engine's start is exclusive, the protocol's inclusive.
        let start = match (options.start, backwards) {
            (None, _) => None,
            (Some(s), false) => Some(s.saturating_add(1)),
            (Some(0 | 1), true) => return Ok(Box::new(std::iter::empty())),
            (Some(s), true) => Some(s - 1),
        };
        let limit = match options.limit {
            Some(0) => return Ok(Box::new(std::iter::empty())),
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        let request = v1::ReadRequest {
            query: to_query(query),
            start,
            backwards: Some(backwards),
            limit,
            ..Default::default()
        };
        let mut client = self.client();
        let stream = self
            .runtime
            .block_on(client.read(request))
            .map_err(|s| self.error(s))?
            .into_inner();
        Ok(Box::new(Responses {
            runtime: Arc::clone(&self.runtime),
            stream: Some(stream),
            buffered: VecDeque::new(),
            addr: self.addr,
        }))
    }

    fn head(&self) -> Result<u64> {
        let mut client = self.client();
        let response = self
            .runtime
            .block_on(client.head(v1::HeadRequest {}))
            .map_err(|s| self.error(s))?;
        Ok(response.into_inner().position.unwrap_or(0))
    }

    fn stream_revision(&self, _stream: &str) -> Result<Option<u64>> {
        Err(Error::Unsupported {
            what: "stream revisions over the DCB protocol",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gesta::{Durability, Options};

    fn event(i: u64, tag: &str) -> NewEvent {
        NewEvent::new("Tested", format!("{{\"i\":{i}}}"))
            .tags([tag.to_owned(), format!("n:{i}")])
            .stream(format!("s-{}", i % 3))
            .metadata(format!("m{i}"))
    }

    /// Every mapped field and read option gives through gRPC what the
    /// reference store gives for the same appends.
    #[test]
    fn remote_reads_and_appends_match_the_reference() {
        let dir = crate::scratch_dir("gesta-remote-test").unwrap();
        let store =
            gesta::Store::open_with(dir.path(), Options::default().durability(Durability::Sync))
                .unwrap();
        let server = LocalServer::start(runtime(SERVER_THREADS).unwrap(), store).unwrap();
        let remote = server
            .connect(&runtime(CLIENT_THREADS).unwrap(), 3)
            .unwrap();
        let reference = gesta::MemoryStore::new();
        assert_eq!(remote.connections(), 3);
        assert_eq!(remote.head().unwrap(), 0);

        for i in 0..10 {
            let tag = if i % 2 == 0 { "even:x" } else { "odd:x" };
            let a = remote.append(vec![event(i, tag)]).unwrap();
            assert_eq!((a.first, a.last), (i + 1, i + 1));
            reference.append(vec![event(i, tag)]).unwrap();
        }
        let batch = || vec![event(10, "even:x"), event(11, "odd:x")];
        let a = remote.append(batch()).unwrap();
        assert_eq!((a.first, a.last), (11, 12));
        reference.append(batch()).unwrap();
        assert_eq!(remote.head().unwrap(), 12);

        let even = Query::tag("even:x");
        let mut cases = vec![
            (Query::all(), ReadOptions::forwards()),
            (even.clone(), ReadOptions::forwards()),
            (even.clone(), ReadOptions::backwards()),
            (even.clone(), ReadOptions::forwards().limit(2)),
            (even.clone(), ReadOptions::backwards().limit(2)),
            (Query::all(), ReadOptions::forwards().limit(0)),
        ];
        for start in [0, 1, 4, 5, 12, 13] {
            for mut o in [ReadOptions::forwards(), ReadOptions::backwards()] {
                o.start = Some(start);
                cases.push((even.clone(), o));
            }
        }
        let fields = |e: RecordedEvent| {
            (
                e.position,
                e.event_type,
                e.tags,
                e.data,
                e.metadata,
                e.stream,
            )
        };
        for (query, options) in cases {
            let expected: Vec<_> = reference
                .read(&query, options)
                .unwrap()
                .map(|e| fields(e.unwrap()))
                .collect();
            let through: Vec<_> = remote
                .read(&query, options)
                .unwrap()
                .map(|e| fields(e.unwrap()))
                .collect();
            assert_eq!(through, expected, "{query:?} {options:?}");
        }
        assert_eq!(
            remote.read_last(&even).unwrap().map(|e| e.position),
            Some(11)
        );

        // Conditions: one that holds, one that fails naming the conflict.
        let c = AppendOptions::new().fail_if(Query::tag("odd:x"), Some(12));
        assert_eq!(
            remote
                .append_with(vec![event(12, "even:x")], c)
                .unwrap()
                .last,
            13
        );
        let c = AppendOptions::new().fail_if(Query::tag("odd:x"), Some(3));
        match remote.append_with(vec![event(13, "even:x")], c) {
            Err(Error::ConditionFailed { position }) => assert_eq!(position, 4),
            other => panic!("expected a failed condition, got {other:?}"),
        }
        assert_eq!(remote.head().unwrap(), 13);

        // What the protocol cannot carry is refused, not dropped.
        let mut with_id = event(20, "even:x");
        with_id.id = Some(7);
        assert!(matches!(
            remote.append(vec![with_id]),
            Err(Error::InvalidInput { .. })
        ));
        let expecting = AppendOptions::new().expect("s-0", gesta::ExpectedRevision::Any);
        assert!(matches!(
            remote.append_with(vec![event(21, "even:x")], expecting),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            remote.stream_revision("s-0"),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            remote.append(vec![]),
            Err(Error::InvalidInput { .. })
        ));

        drop(remote);
        server.stop().unwrap();
    }
}
