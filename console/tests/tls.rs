//! A console off loopback: refused without TLS or a key; with both, it
//! speaks HTTPS and still wants the key.

use std::sync::Arc;

use gesta::{NewEvent, Store};
use gesta_console::{ConsoleConfig, ConsoleError, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_console_needs_tls_and_a_key_and_then_serves_https() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    store.append(vec![NewEvent::new("A", "{}")]).unwrap();
    let anywhere = ConsoleConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..ConsoleConfig::default()
    };
    let refused = gesta_console::serve(store.clone(), anywhere.clone(), async {}, |_| {}).await;
    assert!(
        matches!(refused, Err(ConsoleError::Config(_))),
        "{refused:?}"
    );

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let config = ConsoleConfig {
        tls: Some(TlsFiles {
            cert: cert_pem,
            key: key_pem,
        }),
        api_key: Some("k3y".into()),
        ..anywhere
    };
    let beside = gesta_console::Beside::start(store.clone(), config)
        .await
        .unwrap();
    let port = beside.addr.port();

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let call = |key: Option<&'static str>| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let name = "localhost".try_into().unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
            tls.write_all(
                format!(
                    "GET /api/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let mut response = Vec::new();
            // A peer closing without close_notify is fine here.
            let _ = tls.read_to_end(&mut response).await;
            String::from_utf8_lossy(&response).into_owned()
        }
    };
    let without = call(None).await;
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    let with = call(Some("k3y")).await;
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    assert!(with.contains("\"head\":1"), "{with}");
    beside.stop().await.unwrap();
    store.close().unwrap();
}
