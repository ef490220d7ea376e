//! `gesta append --encrypt`, `read`, `get` and `forget` as a user runs
//! them: an encrypted store seals a subject's events (the secret is in no
//! file), reads open them without a flag, `forget` makes them read empty
//! at once and refuses the subject afterwards, and bad calls change
//! nothing.

use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

const SECRET: &str = "secret-e1b0c9-shred-me";

fn gesta() -> Command {
    Command::cargo_bin("gesta").expect("the gesta binary is built")
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

#[test]
fn append_encrypt_read_forget_compact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    let events = format!(
        "{{\"type\":\"Registered\",\"tags\":[\"subject:u7\"],\"data\":{{\"email\":\"{SECRET}\"}},\"id\":\"0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69\"}}\n\
         {{\"type\":\"Opened\",\"tags\":[\"shop:1\"],\"data\":\"public\"}}\n"
    );
    ok(&["append", d, "--encrypt"], &events);
    assert!(dir.join("KEYS").is_file());
    assert!(
        !anywhere(&dir, SECRET.as_bytes()),
        "the secret reached a file"
    );
    // Reads open the event without a flag; so does get.
    assert!(ok(&["read", d, "--tag", "subject:u7"], "").contains(SECRET));
    assert!(
        ok(
            &["get", d, "--id", "0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"],
            ""
        )
        .contains(SECRET)
    );
    // Later appends seal without the flag.
    ok(
        &["append", d],
        "{\"type\":\"Moved\",\"tags\":[\"subject:u7\"],\"data\":\"u7 moved\"}\n",
    );
    assert!(!anywhere(&dir, b"u7 moved"));

    gesta()
        .args(["forget", d, "u7"])
        .assert()
        .code(2)
        .stderr(contains("--yes"));
    assert!(ok(&["read", d, "--tag", "subject:u7"], "").contains(SECRET));
    assert_eq!(
        ok(&["forget", d, "u7", "--yes"], ""),
        "forgot u7: targeted 2 events, redacted 2\n"
    );
    let after = ok(&["read", d], "");
    assert!(!after.contains(SECRET) && !after.contains("u7 moved"));
    assert!(after.contains("public"));
    assert_eq!(after.lines().count(), 3);
    gesta()
        .args(["append", d])
        .write_stdin("{\"type\":\"Back\",\"tags\":[\"subject:u7\"]}\n")
        .assert()
        .code(1)
        .stderr(contains("forgotten"));
    gesta()
        .args(["forget", d, "nobody", "--yes"])
        .assert()
        .code(1)
        .stderr(contains("unknown subject"));
    ok(&["compact", d], "");
    assert!(!anywhere(&dir, SECRET.as_bytes()));
    assert_eq!(
        ok(&["forget", d, "u7", "--yes", "--json"], ""),
        "{\"subject\":\"u7\",\"targeted\":2,\"redacted\":0}\n"
    );
}

#[test]
fn forget_refuses_a_store_that_is_not_encrypted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let d = dir.to_str().unwrap();
    ok(
        &["append", d],
        "{\"type\":\"Registered\",\"tags\":[\"subject:u7\"],\"data\":\"plain\"}\n",
    );
    gesta()
        .args(["forget", d, "u7", "--yes"])
        .assert()
        .code(1)
        .stderr(contains("not encrypted"));
    assert!(!dir.join("KEYS").exists());
    assert!(ok(&["read", d], "").contains("plain"));
}
