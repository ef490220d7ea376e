//! What the browser tests share: a store seeded with known events, the
//! console run as its own process (`gesta-console`) on that store, and a
//! headless Chromium driven over WebDriver by Debian's `chromedriver`.
//!
//! Without `chromium` and `chromedriver` the tests install them by running
//! the repository's `.ci/browser.sh` (as the PostgreSQL suites' script
//! installs PostgreSQL), and fail, saying how to install them, if that
//! cannot be done — unless `GESTA_BROWSER_TESTS=skip`.
//! `GESTA_SCREENSHOTS=DIR` (relative to the workspace root) saves the
//! screenshots the tests take there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// The variable that lets the tests skip when no browser is installed.
pub const OPT_OUT: &str = "GESTA_BROWSER_TESTS";

/// An executable on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs the repository's `.ci/browser.sh` once per test process, which
/// installs Debian's chromium and chromium-driver if they are missing (as
/// `.ci/postgres.sh` installs PostgreSQL); whether it succeeded.
fn install_browser() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/browser.sh");
        eprintln!(
            "chromium or chromedriver is missing: running {}",
            script.display()
        );
        Command::new("bash")
            .arg(&script)
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// The browser and its driver — installed by `.ci/browser.sh` if they are
/// missing — or `None` (after saying so) when [`OPT_OUT`] is `skip` and
/// they are missing; a panic that says how to install them when they
/// cannot be installed.
pub fn browser() -> Option<(PathBuf, PathBuf)> {
    let found = || match (on_path("chromium"), on_path("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => None,
    };
    if let Some(found) = found() {
        return Some(found);
    }
    if std::env::var(OPT_OUT).as_deref() == Ok("skip") {
        eprintln!("skipping: chromium or chromedriver is not installed and {OPT_OUT}=skip");
        return None;
    }
    match install_browser().then(found).flatten() {
        Some(found) => Some(found),
        None => panic!(
            "the console's browser tests need Debian's chromium and chromium-driver on the PATH, \
             and .ci/browser.sh could not install them (it needs root or a password-less sudo): \
             install them (apt-get install -y chromium chromium-driver), or set {OPT_OUT}=skip \
             to skip these tests"
        ),
    }
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process leading its own process group, the whole group killed
/// when dropped: chromedriver and the browsers it started, even when a
/// test fails before it could end its session.
pub struct Group(Child);

impl Group {
    fn spawn(command: &mut Command) -> std::io::Result<Group> {
        use std::os::unix::process::CommandExt;
        command.process_group(0).spawn().map(Group)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// A free loopback port (free when asked; the driver binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running console process.
pub struct Console {
    pub url: String,
    pub addr: SocketAddr,
    process: Process,
}

impl Console {
    /// Runs `gesta-console DIR --addr 127.0.0.1:0 ARGS…` and waits for the
    /// line that names its URL.
    pub fn start(dir: &Path, args: &[&str]) -> Console {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gesta-console"))
            .arg(dir)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("gesta-console starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("gesta-console prints its URL");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("an address");
        Console {
            url,
            addr,
            process: Process(child),
        }
    }

    /// Kills the console (the store's lock goes with the process).
    pub fn kill(self) {
        drop(self.process);
    }

    /// An HTTP request from this process, as any other client would send
    /// it: the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).expect("the console accepts");
        let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("the request is sent");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("a response");
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

/// A headless Chromium session and the driver serving it.
pub struct Browser {
    pub client: Client,
    _driver: Group,
}

impl Browser {
    pub async fn start(chromium: &Path, driver: &Path) -> Browser {
        let port = free_port();
        let driver = Group::spawn(
            Command::new(driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,860",
                         "--force-device-scale-factor=1", "--hide-scrollbars"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Browser {
            client,
            _driver: driver,
        }
    }

    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The texts of every element `css` selects.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
        {
            out.push(e.text().await.unwrap_or_default());
        }
        out
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the text of the input `css` selects.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        input.clear().await.expect("cleared");
        input.send_keys(text).await.expect("typed");
    }

    /// Waits (10 s at most) until `check` holds of the text of `css`.
    pub async fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text(css).await;
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {what}; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as `DIR/<name>.png` when `GESTA_SCREENSHOTS=DIR`.
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("GESTA_SCREENSHOTS") else {
            return;
        };
        // Relative to the workspace root, where the README is.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is saved");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
