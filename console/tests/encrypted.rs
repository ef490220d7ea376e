//! The console over an encrypted store (crypto-shredding): it shows
//! subjects' events opened — queries, single events, the live view — seals
//! what it appends, and shows a forgotten subject's events empty; a store
//! whose directory holds the key file is opened through the wrapper
//! without asking.

use std::sync::Arc;
use std::time::Duration;

use gesta::encryption::{Encrypted, EncryptionOptions};
use gesta::{EventStore, NewEvent, Query, Store};
use gesta_console::{ConsoleConfig, ConsoleStore};
use serde_json::Value;

const SECRET: &str = "alice-9f2c@example.org";
const ID: &str = "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69";

struct Console {
    _dir: tempfile::TempDir,
    store: Arc<Encrypted<Store>>,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let store = Encrypted::open(
        Store::open(dir.path()).unwrap(),
        EncryptionOptions::in_dir(dir.path()),
    )
    .unwrap();
    store
        .append(vec![
            NewEvent::new("Registered", format!(r#"{{"email":"{SECRET}"}}"#))
                .tag("subject:alice")
                .id(0x0b6c3a526f3e4d2a9a8e1f2d3c4b5a69),
            NewEvent::new("Opened", r#"{"n":1}"#).tag("shop"),
        ])
        .unwrap();
    let store = Arc::new(store);
    // Opened again from its directory, as `gesta console DIR` does, the
    // same store would be encrypted too.
    assert!(dir.path().join("KEYS").is_file());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_key: Some("k".into()),
        allow_writes: true,
        ..ConsoleConfig::default()
    };
    let served = ConsoleStore::from(store.clone());
    assert!(served.is_encrypted());
    tokio::spawn(async move {
        gesta_console::serve(
            served,
            config,
            async move {
                let _ = rx.await;
            },
            move |addr| {
                let _ = addr_tx.send(addr);
            },
        )
        .await
        .unwrap();
    });
    Console {
        _dir: dir,
        store,
        addr: addr_rx.await.unwrap(),
        stop: Some(tx),
    }
}

impl Console {
    async fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer k\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, "").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_store_is_shown_opened_and_forgotten_subjects_empty() {
    let c = start().await;
    assert_eq!(c.get("/api/info").await["encrypted"], true);
    // What the engine holds is ciphertext; the console shows plaintext.
    let stored = c.store.inner().read_last(&Query::tag("subject:alice"));
    assert!(!String::from_utf8_lossy(&stored.unwrap().unwrap().data).contains(SECRET));
    let page = c.get("/api/events").await;
    assert_eq!(page["events"][0]["data"]["email"], SECRET, "{page}");
    assert_eq!(page["events"][1]["data"]["n"], 1);
    assert_eq!(c.get("/api/events/1").await["data"]["email"], SECRET);
    assert_eq!(
        c.get(&format!("/api/ids/{ID}")).await["data"]["email"],
        SECRET
    );

    // An append through the console is sealed.
    let event = r#"{"type":"Moved","tags":["subject:alice"],"data":{"city":"Lyon-4e1d"}}"#;
    let (status, body) = c.call("POST", "/api/append", event).await;
    assert_eq!(status, 200, "{body}");
    let stored = c.store.inner().read_last(&Query::all()).unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored.data).contains("Lyon-4e1d"));
    assert_eq!(c.get("/api/events/3").await["data"]["city"], "Lyon-4e1d");

    // The live view delivers opened events.
    {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let mut s = tokio::net::TcpStream::connect(c.addr).await.unwrap();
        s.write_all(
            b"GET /api/live?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer k\r\n\r\n",
        )
        .await
        .unwrap();
        let mut lines = BufReader::new(s).lines();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("data: {\"position\":1") {
                    return line;
                }
            }
            String::new()
        })
        .await
        .unwrap();
        assert!(found.contains(SECRET), "{found}");
    }

    // Forgotten, the subject's events show empty at once.
    c.store.forget("alice").unwrap();
    let page = c.get("/api/events").await;
    let first = &page["events"][0];
    assert_eq!(first["type"], "Registered");
    assert!(!first.to_string().contains(SECRET), "{first}");
    assert!(
        !c.get("/api/events/3")
            .await
            .to_string()
            .contains("Lyon-4e1d")
    );
    assert_eq!(page["events"][1]["data"]["n"], 1);
}
