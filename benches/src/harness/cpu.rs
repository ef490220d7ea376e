//! The CPU time a client and a server take during a workload, from
//! `/proc` (Linux), for the server mode's share-of-CPU table.
//!
//! A server in a child process is measured by its process; the client is
//! this process. A server in this process is the threads named
//! [`SERVER_THREAD_NAMES`] (its runtime, the store's committer and
//! flusher); the client is the rest of this process. Times come in clock
//! ticks of 10 ms (USER_HZ is 100 on Linux), so only workloads of a second
//! or more give figures to read.

use std::path::Path;
use std::time::Instant;

use super::remote::SERVER_THREADS;

/// The threads of an in-process server: its runtime (workers and blocking
/// pool) and the store's own threads.
pub const SERVER_THREAD_NAMES: [&str; 4] = [
    SERVER_THREADS,
    "gesta-committer",
    "gesta-flusher",
    "gesta-projector",
];

const TICKS_PER_SECOND: f64 = 100.0;

/// The name and user + system CPU seconds of a `/proc/.../stat` file.
fn stat(path: &Path) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    // After the name: state (field 3), …, utime (14), stime (15).
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

/// CPU seconds so far: this process, its server threads, and a server
/// child process.
#[derive(Clone, Debug)]
pub struct Sample {
    at: Instant,
    process: f64,
    /// Each server thread's CPU seconds, by thread id.
    server_threads: std::collections::BTreeMap<u64, f64>,
    child: Option<f64>,
}

impl Sample {
    /// Now, with the server in `child` if it is a process of its own.
    pub fn take(child: Option<u32>) -> Sample {
        let mut server_threads = std::collections::BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
                if let (Some(tid), Some((name, secs))) = (tid, stat(&task.path().join("stat")))
                    && SERVER_THREAD_NAMES.contains(&name.as_str())
                {
                    server_threads.insert(tid, secs);
                }
            }
        }
        Sample {
            at: Instant::now(),
            process: stat(Path::new("/proc/self/stat")).map_or(0.0, |(_, s)| s),
            server_threads,
            child: child
                .and_then(|pid| stat(&Path::new("/proc").join(pid.to_string()).join("stat")))
                .map(|(_, s)| s),
        }
    }

    /// What was spent from `earlier` to this sample.
    pub fn since(&self, earlier: &Sample) -> Cpu {
        let process = self.process - earlier.process;
        let (client, server) = match (self.child, earlier.child) {
            (Some(now), Some(then)) => (process, now - then),
            _ => {
                // Threads that started since count whole; a thread that
                // ended in between is lost (and counted as the client's):
                // the server's runtime keeps its threads for the run.
                let server: f64 = self
                    .server_threads
                    .iter()
                    .map(|(tid, now)| now - earlier.server_threads.get(tid).unwrap_or(&0.0))
                    .sum();
                ((process - server).max(0.0), server)
            }
        };
        Cpu {
            wall_s: self.at.duration_since(earlier.at).as_secs_f64(),
            client_s: client,
            server_s: server,
        }
    }
}

/// CPU seconds a client and a server spent over a stretch of wall time.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Cpu {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// The client's CPU seconds (the workload's threads and the client's
    /// runtime).
    pub client_s: f64,
    /// The server's CPU seconds.
    pub server_s: f64,
}

impl Cpu {
    /// The client's share of the CPU both took.
    pub fn client_share(&self) -> Option<f64> {
        let total = self.client_s + self.server_s;
        (total > 0.0).then(|| self.client_s / total)
    }

    /// Cores kept busy on average (client and server together).
    pub fn cores_busy(&self) -> f64 {
        (self.client_s + self.server_s) / self.wall_s.max(1e-9)
    }
}
