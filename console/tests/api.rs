//! The console's HTTP API without a browser: answers checked against the
//! store, bad input refused with a typed 400, the key and read-only rules.

use std::time::Duration;

use gesta::{NewEvent, Query, ReadOptions, Store};
use gesta_console::ConsoleConfig;
use serde_json::Value;

/// A console on a fresh store with a few events, served on a free
/// loopback port in this process.
struct Console {
    _dir: tempfile::TempDir,
    store: Store,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Console {
    async fn start(config: ConsoleConfig) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Vec::new();
        for i in 0..30u32 {
            let course = format!("course:c{}", i % 3);
            batch.push(
                NewEvent::new(
                    if i % 2 == 0 { "Enrolled" } else { "Left" },
                    format!(r#"{{"n":{i}}}"#),
                )
                .tag(course)
                .stream(format!("student-{}", i % 5)),
            );
        }
        store.append(batch).unwrap();
        store
            .append(vec![
                NewEvent::new("Named", "not json")
                    .id(0x0b6c3a526f3e4d2a9a8e1f2d3c4b5a69)
                    .tag("course:c1"),
            ])
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let served = store.clone();
        let config = ConsoleConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        };
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
        let addr = addr_rx.await.unwrap();
        Console {
            _dir: dir,
            store,
            addr,
            stop: Some(tx),
        }
    }

    /// A request on a fresh connection: status and body.
    async fn call(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
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

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.call("GET", path, None, "").await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn positions(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_query_pages_both_ways_as_the_store_reads() {
    let c = Console::start(ConsoleConfig::default()).await;
    let q = r#"{"items":[{"types":["Enrolled"],"tags":["course:c1"]}]}"#;
    let expected: Vec<u64> = c
        .store
        .read(
            &gesta_json::parse_query(q).unwrap(),
            ReadOptions::forwards(),
        )
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect();
    assert!(expected.len() >= 4);
    let (status, page) = c
        .get(&format!("/api/events?query={}&limit=3", encoded(q)))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(positions(&page), expected[..3]);
    assert_eq!(page["more"], true);
    assert_eq!(page["query"]["items"][0]["tags"][0], "course:c1");
    // The next page, then back from its first event.
    let (_, next) = c
        .get(&format!(
            "/api/events?query={}&limit=3&after={}",
            encoded(q),
            expected[2]
        ))
        .await;
    assert_eq!(positions(&next), expected[3..expected.len().min(6)]);
    let (_, back) = c
        .get(&format!(
            "/api/events?query={}&limit=3&direction=backwards&before={}",
            encoded(q),
            expected[3]
        ))
        .await;
    let mut back = positions(&back);
    back.reverse();
    assert_eq!(back, expected[..3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_ids_positions_times_and_listings() {
    let c = Console::start(ConsoleConfig::default()).await;
    let (status, page) = c.get("/api/events?stream=student-2&after=1&limit=2").await;
    assert_eq!(status, 200, "{page}");
    let revisions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [2, 3]);
    let (status, e) = c.get("/api/ids/0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69").await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["position"], 31);
    assert_eq!(e["data_base64"], "bm90IGpzb24=");
    let (status, e) = c.get("/api/events/7").await;
    assert_eq!((status, e["position"].as_u64()), (200, Some(7)));
    assert_eq!(e["data"]["n"], 6);
    let (status, page) = c
        .get("/api/events?since=1970-01-01T00:00:00Z&limit=1")
        .await;
    assert_eq!((status, positions(&page)), (200, vec![1]));
    let (status, list) = c.get("/api/lists/tags?prefix=course:&limit=2").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["name"], "course:c0");
    assert_eq!(list["items"][0]["count"], 10);
    assert_eq!(list["items"][1]["count"], 11);
    assert_eq!(list["next"], "course:c1");
    let (_, list) = c.get("/api/lists/types?prefix=E").await;
    assert_eq!(
        list["items"],
        serde_json::json!([{"name":"Enrolled","count":15}])
    );
    let (status, state) = c.get("/api/state").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["head"], 31);
    assert_eq!(state["segments"], 1);
    assert!(state["bytes_on_disk"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_typed_400() {
    let c = Console::start(ConsoleConfig::default()).await;
    for path in [
        "/api/events?query=%7Bnope",
        "/api/events?query=%7B%22items%22%3A%5B%7B%22tags%22%3A%5B%22%22%5D%7D%5D%7D",
        "/api/events?after=99",
        "/api/events?after=x",
        "/api/events?limit=0",
        "/api/events?direction=sideways",
        "/api/events?since=yesterday",
        "/api/events?unknown=1",
        "/api/events?stream=",
        "/api/events?stream=s&query=%7B%7D",
        "/api/events/0",
        "/api/events/32",
        "/api/events/minus",
        "/api/ids/not-a-uuid",
        "/api/lists/colours",
        "/api/live?after=99",
    ] {
        let (status, body) = c.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "bad_request", "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().len() > 5,
            "{path}: {body}"
        );
    }
    let (status, body) = c.get("/api/ids/00000000-0000-0000-0000-000000000001").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_console_refuses_appends() {
    let c = Console::start(ConsoleConfig::default()).await;
    let (status, body) = c.call("POST", "/api/append", None, r#"{"type":"X"}"#).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read_only"), "{body}");
    assert_eq!(c.store.head(), 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_need_the_key() {
    let c = Console::start(ConsoleConfig {
        api_key: Some("s3cret".into()),
        allow_writes: true,
        ..ConsoleConfig::default()
    })
    .await;
    let event = r#"{"type":"Added","tags":["course:c1"],"data":{"ok":true}}"#;
    let (status, _) = c.call("POST", "/api/append", None, event).await;
    assert_eq!(status, 401);
    let (status, _) = c.call("POST", "/api/append", Some("s3cres"), event).await;
    assert_eq!(status, 401);
    let (status, _) = c.call("GET", "/api/info", None, "").await;
    assert_eq!(status, 401, "the key guards reads too");
    let (status, body) = c.call("POST", "/api/append", Some("s3cret"), event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.store.head(), 32);
    let last = c
        .store
        .read_last(&Query::tag("course:c1"))
        .unwrap()
        .unwrap();
    assert_eq!(last.event_type, "Added");
    let (status, body) = c
        .call("POST", "/api/append", Some("s3cret"), "{\"type\":\"\"}")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = c.call("POST", "/api/append", Some("s3cret"), "[1]").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("line 1"), "{body}");
    // The page itself loads without the key (it then asks for it).
    let (status, page) = c.call("GET", "/", None, "").await;
    assert_eq!(status, 200);
    assert!(page.contains("Gesta console"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_streams_new_events() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let c = Console::start(ConsoleConfig::default()).await;
    let mut s = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let q = encoded(r#"{"items":[{"tags":["course:c2"]}]}"#);
    s.write_all(format!("GET /api/live?query={q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let store = c.store.clone();
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(200));
        store
            .append(vec![
                NewEvent::new("Other", "{}").tag("course:c0"),
                NewEvent::new("Fresh", "{}").tag("course:c2"),
            ])
            .unwrap();
    });
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("data: {\"position\"") {
                return line;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(
        found.contains("\"position\":33") && found.contains("Fresh"),
        "{found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retroactive_tags_and_redaction_follow_the_write_rules() {
    let ro = Console::start(ConsoleConfig::default()).await;
    for path in ["/api/tags", "/api/redact"] {
        let (status, body) = ro
            .call("POST", path, None, r#"{"positions":[1],"tags":["x:1"]}"#)
            .await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let c = Console::start(ConsoleConfig {
        api_key: Some("k".into()),
        allow_writes: true,
        ..ConsoleConfig::default()
    })
    .await;
    let (status, body) = c
        .call(
            "POST",
            "/api/tags",
            Some("k"),
            r#"{"positions":[2,4],"tags":["vip:1"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"tagged\":2"), "{body}");
    let tagged: Vec<u64> = c
        .store
        .read(&Query::tag("vip:1"), ReadOptions::forwards())
        .unwrap()
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(tagged, [2, 4]);
    let (status, body) = c
        .call(
            "POST",
            "/api/redact",
            Some("k"),
            r#"{"query":{"items":[{"tags":["vip:1"]}]}}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"redacted\":2"), "{body}");
    let e = c.store.read_last(&Query::tag("vip:1")).unwrap().unwrap();
    assert!(e.data.is_empty());
    for bad in [
        r#"{"tags":["a"]}"#,
        r#"{"positions":[1],"query":{}}"#,
        r#"{"positions":[1]}"#,
        r#"{"positions":[999],"tags":["a"]}"#,
        r#"{"positions":[1],"tags":[""]}"#,
        r#"{"query":{"nope":1},"tags":["a"]}"#,
        "not json",
    ] {
        let (status, body) = c.call("POST", "/api/tags", Some("k"), bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = c
        .call(
            "POST",
            "/api/redact",
            Some("k"),
            r#"{"positions":[1],"tags":["a"]}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// A console over `store` without a key, on a loopback port; its address.
async fn keyless_console(store: &gesta::Store) -> std::net::SocketAddr {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let served = store.clone();
    tokio::spawn(async move {
        gesta_console::serve(
            served,
            gesta_console::ConsoleConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..gesta_console::ConsoleConfig::default()
            },
            std::future::pending(),
            move |a| {
                let _ = addr_tx.send(a);
            },
        )
        .await
        .unwrap();
    });
    addr_rx.await.unwrap()
}

/// The whole answer to `GET path` with `Host: host`, as text.
async fn get_as(addr: std::net::SocketAddr, host: String, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A console without a key answers only requests that name this machine
/// (a page of another site that rebinds its name to 127.0.0.1 would be
/// same-origin with it otherwise), and no response may be framed.
#[tokio::test]
async fn a_keyless_console_answers_this_machine_only_and_is_never_framed() {
    let dir = tempfile::tempdir().unwrap();
    let store = gesta::Store::open(dir.path()).unwrap();
    store
        .append(vec![gesta::NewEvent::new(
            "Registered",
            r#"{"email":"a@b.c"}"#,
        )])
        .unwrap();
    let addr = keyless_console(&store).await;
    let raw = |host: String, path: &'static str| get_as(addr, host, path);
    let foreign = raw(format!("attacker.example:{}", addr.port()), "/api/events").await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    assert!(!foreign.contains("a@b.c"), "{foreign}");
    for host in [
        format!("127.0.0.1:{}", addr.port()),
        format!("localhost:{}", addr.port()),
        format!("[::1]:{}", addr.port()),
    ] {
        let ours = raw(host.clone(), "/api/events").await;
        assert!(ours.starts_with("HTTP/1.1 200"), "{host}: {ours}");
        assert!(ours.contains("a@b.c"), "{host}");
    }
    let page = raw(format!("127.0.0.1:{}", addr.port()), "/").await;
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("x-frame-options: deny"), "{head}");
    assert!(head.contains("frame-ancestors 'none'"), "{head}");
}

/// A page carries at most about 8 MiB of events (at least one), and says
/// there is more: a thousand large events are never built into one reply.
#[tokio::test]
async fn a_page_of_large_events_is_cut_by_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = gesta::Store::open(dir.path()).unwrap();
    let big = format!("\"{}\"", "x".repeat(5 << 20));
    for _ in 0..3 {
        store
            .append(vec![gesta::NewEvent::new("Big", big.clone())])
            .unwrap();
    }
    let addr = keyless_console(&store).await;
    let text = get_as(addr, "127.0.0.1".into(), "/api/events?limit=10").await;
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..200.min(text.len())]
    );
    // Chunked or not, the JSON page starts the body after its framing.
    let page = &body[body.find('{').unwrap()..body.rfind('}').unwrap() + 1];
    let page: serde_json::Value = serde_json::from_str(page).unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["more"], true);
}
