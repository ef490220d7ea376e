//! The commands that reach an encrypted store's events besides `append`,
//! `read`, `get` and `forget` (tests/forget.rs): `read --follow` opens
//! them while another process appends (new subjects included), `export`
//! writes them opened and `import` seals them again, `serve` (and its
//! console) serves them opened, and `backup` never copies the keys: it
//! warns, the copy stays encrypted without them, and the store's key file
//! restores it — a forget made after the backup reaching it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::Command as Cmd;
use gesta::encryption::{Encrypted, EncryptionOptions};
use gesta::{EventStore, NewEvent};

const SECRET1: &str = "u1-secret-2b7d91";
const SECRET2: &str = "u2-secret-c40e5a";
const SECRET3: &str = "u3-secret-f9a613";

fn gesta() -> Cmd {
    Cmd::cargo_bin("gesta").expect("the gesta binary is built")
}

fn ok(args: &[&str], stdin: &str) -> String {
    let out = gesta().args(args).write_stdin(stdin).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).expect("utf-8 output")
}

fn anywhere(dir: &Path, needle: &[u8]) -> bool {
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                return true;
            }
        }
    }
    false
}

/// A child process killed if a failing test leaves it running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An encrypted store with u1's event and one in clear.
fn encrypted(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    let dir = tmp.path().join("s");
    let events = format!(
        "{{\"type\":\"Registered\",\"tags\":[\"subject:u1\"],\"data\":\"{SECRET1}\"}}\n\
         {{\"type\":\"Opened\",\"tags\":[\"shop\"],\"data\":\"public\"}}\n"
    );
    ok(&["append", dir.to_str().unwrap(), "--encrypt"], &events);
    dir
}

#[test]
fn read_follow_opens_what_another_process_seals_new_subjects_included() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = encrypted(&tmp);
    let d = dir.to_str().unwrap();
    let store = Encrypted::open(
        gesta::Store::open(&dir).unwrap(),
        EncryptionOptions::in_dir(&dir),
    )
    .unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_gesta"))
            .args(["read", d, "--follow", "--limit", "4", "--poll-ms", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Each new subject replaces the key file before its event is written.
    store
        .append(vec![
            NewEvent::new("Registered", format!("\"{SECRET2}\"")).tag("subject:u2"),
        ])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    store
        .append(vec![
            NewEvent::new("Registered", format!("\"{SECRET3}\"")).tag("subject:u3"),
        ])
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gesta read --follow did not stop after --limit events"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(SECRET1), "{out}{err}");
    assert!(lines[1].contains("public"), "{out}");
    assert!(lines[2].contains(SECRET2), "{out}{err}");
    assert!(lines[3].contains(SECRET3), "{out}{err}");
    store.into_inner().close().unwrap();
}

#[test]
fn tag_refuses_a_subject_tag_on_an_encrypted_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = encrypted(&tmp);
    let d = dir.to_str().unwrap();
    gesta()
        .args(["tag", d, "--add", "subject:u9", "--position", "2"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("names a subject"));
    // Any other tag is added as before.
    gesta()
        .args(["tag", d, "--add", "vip", "--position", "2"])
        .assert()
        .success();
    assert!(ok(&["read", d, "--tag", "vip"], "").contains("public"));
    // Every event still opens.
    assert_eq!(ok(&["read", d], "").lines().count(), 2);
}

#[test]
fn export_writes_opened_events_and_import_encrypt_seals_them_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = encrypted(&tmp);
    let d = dir.to_str().unwrap();
    ok(
        &["append", d],
        &format!("{{\"type\":\"Registered\",\"tags\":[\"subject:u2\"],\"data\":\"{SECRET2}\"}}\n"),
    );
    ok(&["forget", d, "u2", "--yes"], "");
    let exported = ok(&["export", d], "");
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), 3, "{exported}");
    assert!(lines[0].contains(SECRET1), "{exported}");
    assert!(lines[1].contains("public"), "{exported}");
    assert!(!lines[2].contains(SECRET2) && lines[2].contains("subject:u2"));
    assert!(!lines[2].contains("data_base64"), "{exported}");

    // Imported with --encrypt: sealed again, read opened.
    let copy = tmp.path().join("copy");
    let c = copy.to_str().unwrap();
    gesta()
        .args(["import", c, "--encrypt"])
        .write_stdin(exported.as_str())
        .assert()
        .success();
    assert!(copy.join("KEYS").is_file());
    assert!(!anywhere(&copy, SECRET1.as_bytes()), "stored in clear");
    assert!(ok(&["read", c, "--tag", "subject:u1"], "").contains(SECRET1));
    // Into an encrypted store without the flag: sealed too.
    let lines: String =
        format!("{{\"type\":\"Registered\",\"tags\":[\"subject:u3\"],\"data\":\"{SECRET3}\"}}\n");
    gesta()
        .args(["import", c])
        .write_stdin(lines.as_str())
        .assert()
        .success();
    assert!(!anywhere(&copy, SECRET3.as_bytes()), "stored in clear");
    assert!(ok(&["export", c], "").contains(SECRET3));

    // A store without keys imports as before: in clear.
    let plain = tmp.path().join("plain");
    let p = plain.to_str().unwrap();
    gesta()
        .args(["import", p])
        .write_stdin(lines.as_str())
        .assert()
        .success();
    assert!(!plain.join("KEYS").exists());
    assert!(anywhere(&plain, SECRET3.as_bytes()));
}

#[test]
fn backup_leaves_the_keys_out_warns_and_the_store_key_file_restores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = encrypted(&tmp);
    let d = dir.to_str().unwrap();
    ok(
        &["append", d],
        &format!("{{\"type\":\"Registered\",\"tags\":[\"subject:u2\"],\"data\":\"{SECRET2}\"}}\n"),
    );
    let backup = tmp.path().join("backup");
    let b = backup.to_str().unwrap();
    let out = gesta().args(["backup", d, b]).assert().success();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("warning") && stderr.contains("KEYS") && stderr.contains("forget"),
        "{stderr}"
    );
    // The copy's key file holds no key: the copy is still encrypted, and
    // its subjects' events do not open (never shown as ciphertext).
    assert!(backup.join("KEYS").is_file());
    gesta()
        .args(["read", b, "--tag", "subject:u1"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("cannot decrypt"));
    assert!(ok(&["read", b, "--tag", "shop"], "").contains("public"));
    gesta().args(["verify", b]).assert().success();

    // Forgotten after the backup, restored with the store's key file: u2
    // stays forgotten in the copy too, u1 opens.
    ok(&["forget", d, "u2", "--yes"], "");
    std::fs::copy(dir.join("KEYS"), backup.join("KEYS")).unwrap();
    let read = ok(&["read", b], "");
    assert!(read.contains(SECRET1), "{read}");
    assert!(!read.contains(SECRET2), "{read}");
    assert_eq!(read.lines().count(), 3);

    // A plain store's backup: no key file, no warning.
    let plain = tmp.path().join("plain");
    let p = plain.to_str().unwrap();
    ok(&["append", p], "{\"type\":\"T\"}\n");
    let out = gesta()
        .args([
            "backup",
            p,
            tmp.path().join("plain-backup").to_str().unwrap(),
        ])
        .assert()
        .success();
    assert!(out.get_output().stderr.is_empty());
    assert!(!tmp.path().join("plain-backup").join("KEYS").exists());
    let help = ok(&["backup", "--help"], "");
    assert!(
        help.contains("KEYS") && help.contains("never copied"),
        "{help}"
    );
}

#[test]
fn serve_serves_an_encrypted_store_opened_through_its_console() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = encrypted(&tmp);
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
    let mut lines = String::new();
    let mut line = String::new();
    while !line.contains("console on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{lines}");
        lines.push_str(&line);
    }
    assert!(lines.contains("(encrypted)"), "{lines}");
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
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(SECRET1), "{response}");
    // The gRPC port (and its signal handler) comes up after the console:
    // wait for it before SIGTERM.
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
}

/// An encrypted store that names no subject yet, whose key file is then
/// lost: every door still treats it as encrypted (its mark says so), so
/// `append` refuses rather than store a subject's event in clear, `read`
/// refuses rather than start new keys, and `verify` names the missing key
/// file. Putting the file back restores it.
#[test]
fn a_lost_key_file_is_refused_by_every_door_and_named_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    ok(
        &["append", d, "--encrypt"],
        "{\"type\":\"Opened\",\"tags\":[\"shop:1\"],\"data\":\"{}\"}\n",
    );
    let keys = dir.join("KEYS");
    let saved = std::fs::read(&keys).unwrap();
    std::fs::remove_file(&keys).unwrap();
    let subject =
        format!("{{\"type\":\"Registered\",\"tags\":[\"subject:u9\"],\"data\":\"{SECRET3}\"}}\n");
    let refused = gesta()
        .args(["append", d])
        .write_stdin(subject.clone())
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("key file is missing"), "{stderr}");
    assert!(
        !anywhere(&dir, SECRET3.as_bytes()),
        "the secret is in clear"
    );
    assert!(!keys.exists(), "a new key file was made");
    gesta().args(["read", d]).assert().failure();
    let verified = gesta().args(["verify", d]).assert().failure();
    let out = String::from_utf8_lossy(&verified.get_output().stdout).into_owned();
    assert!(out.contains("key file") && out.contains("missing"), "{out}");

    std::fs::write(&keys, saved).unwrap();
    ok(&["append", d], &subject);
    assert!(
        !anywhere(&dir, SECRET3.as_bytes()),
        "the secret is in clear"
    );
    ok(&["verify", d], "");
}
