//! `gesta console`: it serves a store and closes it at SIGTERM, refuses
//! what it must refuse, and says what to do about a store another process
//! holds. (The page itself is tested in a browser by gesta-console.)

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use assert_cmd::Command as Cmd;
use predicates::prelude::*;
use predicates::str::contains;

fn gesta() -> Cmd {
    Cmd::cargo_bin("gesta").expect("the gesta binary is built")
}

/// A child process killed if a failing test leaves it running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn filled(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    let dir = tmp.path().join("store");
    gesta()
        .args(["append", dir.to_str().unwrap()])
        .write_stdin("{\"type\":\"A\",\"tags\":[\"t:1\"]}\n{\"type\":\"B\"}\n")
        .assert()
        .success();
    dir
}

#[test]
fn console_serves_the_store_and_closes_it_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_gesta"))
            .args(["console", d, "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("at head 2, read-only"), "{line}");
    let url = line.split_whitespace().last().unwrap();
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"head\":2"), "{response}");
    // The console owns the store meanwhile; the command says what to do.
    gesta()
        .args(["console", d, "--addr", "127.0.0.1:0"])
        .assert()
        .code(1)
        .stderr(contains("locked").and(contains("--console")));
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.0.wait().unwrap().success());
    gesta().args(["verify", d]).assert().success();
}

#[test]
fn console_refuses_an_exposed_or_keyless_setup_and_a_missing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    gesta()
        .args(["console", d, "--addr", "0.0.0.0:0"])
        .assert()
        .code(1)
        .stderr(contains("non-loopback address needs TLS"));
    gesta()
        .args(["console", d, "--allow-writes"])
        .assert()
        .code(1)
        .stderr(contains("need an API key"));
    gesta()
        .args(["console", tmp.path().join("nothing").to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("no Gesta store"));
    gesta()
        .args(["console", "--help"])
        .assert()
        .success()
        .stdout(contains("--allow-writes"));
}

#[test]
fn serve_with_console_serves_both_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = filled(&tmp);
    let d = dir.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_gesta"))
            .args(["serve", d, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--console", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("console on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no console line");
    }
    assert!(line.contains("(read-only)"), "{line}");
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /api/events?query=%7B%22items%22%3A%5B%7B%22tags%22%3A%5B%22t%3A1%22%5D%7D%5D%7D HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"position\":1,\"type\":\"A\""),
        "{response}"
    );
    // The gRPC port opens once the console listens: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "gesta serve never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.0.wait().unwrap().success());
    gesta().args(["verify", d]).assert().success();
}
