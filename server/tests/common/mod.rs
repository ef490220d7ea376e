//! A server on a free loopback port over a temporary store, and a client.
#![allow(dead_code)]

use std::net::SocketAddr;

use gesta_server::ServeConfig;
use gesta_server::proto::v1;
use gesta_server::proto::v1::dcb_client::DcbClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub struct Running {
    pub addr: SocketAddr,
    pub store: gesta::Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), gesta_server::ServeError>>>,
    pub dir: tempfile::TempDir,
}

impl Running {
    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.stop_in_place().await;
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    async fn stop_in_place(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.store.close().unwrap();
    }
}

pub async fn start() -> Running {
    start_in(tempfile::tempdir().unwrap(), ServeConfig::default()).await
}

pub async fn start_with(config: ServeConfig) -> Running {
    start_in(tempfile::tempdir().unwrap(), config).await
}

pub async fn start_in(dir: tempfile::TempDir, config: ServeConfig) -> Running {
    let store = gesta::Store::open(dir.path()).unwrap();
    start_served(dir, store.into(), config).await
}

/// A server over `served` (a store in `dir`, plain or encrypted).
pub async fn start_served(
    dir: tempfile::TempDir,
    served: gesta_server::Served,
    mut config: ServeConfig,
) -> Running {
    let store = (**served.engine()).clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    config.listen = addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(gesta_server::serve_on(
        listener,
        served,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        store,
        stop: Some(stop),
        task: Some(task),
        dir,
    }
}

pub async fn client(addr: SocketAddr) -> DcbClient<Channel> {
    DcbClient::connect(format!("http://{addr}")).await.unwrap()
}

pub fn event(event_type: &str, tags: &[&str]) -> v1::Event {
    v1::Event {
        event_type: event_type.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        data: format!("{{\"type\":\"{event_type}\"}}").into_bytes().into(),
        uuid: String::new(),
        metadata: vec![],
    }
}

pub fn query(types: &[&str], tags: &[&str]) -> v1::Query {
    v1::Query {
        items: vec![v1::QueryItem {
            types: types.iter().map(|t| t.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }],
    }
}

pub async fn append(
    client: &mut DcbClient<Channel>,
    events: Vec<v1::Event>,
    condition: Option<v1::AppendCondition>,
) -> Result<u64, tonic::Status> {
    client
        .append(v1::AppendRequest {
            events,
            condition,
            tracking_info: None,
        })
        .await
        .map(|r| r.into_inner().position)
}

/// Every response of a read, as (positions, head) pairs.
pub async fn read_all(
    client: &mut DcbClient<Channel>,
    request: v1::ReadRequest,
) -> Vec<(Vec<u64>, Option<u64>)> {
    let mut stream = client.read(request).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        out.push((r.events.iter().map(|e| e.position).collect(), r.head));
    }
    out
}

/// The ErrorResponse in a status's details.
pub fn details(status: &tonic::Status) -> v1::ErrorResponse {
    use prost::Message;
    v1::ErrorResponse::decode(status.details()).expect("ErrorResponse details")
}
