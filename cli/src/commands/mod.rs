//! One module per subcommand.

pub mod append;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod compact;
pub mod console;
pub mod demo;
pub mod encrypted;
pub mod export;
pub mod forget;
pub mod get;
pub mod list;
pub mod read;
pub mod redact;
pub mod remove;
pub mod restore;
pub mod retention;
pub mod serve;
pub mod snapshot;
pub mod stats;
pub mod tag;
pub mod verify;

use std::io::{self, BufRead};

use gesta::NewEvent;

use crate::failure::Failure;
use gesta_json as json;

/// Reads event lines, skipping blank ones, and hands out batches of up to
/// `batch` events with the line numbers of their first and last events.
pub struct LineBatches<R> {
    input: R,
    batch: usize,
    line_no: u64,
    buf: String,
    /// Bytes read so far.
    pub bytes: u64,
}

/// A batch of parsed events and the input lines it came from.
pub struct Batch {
    pub events: Vec<NewEvent>,
    pub first_line: u64,
    pub last_line: u64,
}

impl Batch {
    /// "line 7" or "lines 7–12", for messages.
    pub fn lines(&self) -> String {
        if self.first_line == self.last_line {
            format!("line {}", self.first_line)
        } else {
            format!("lines {}–{}", self.first_line, self.last_line)
        }
    }
}

impl<R: BufRead> LineBatches<R> {
    pub fn new(input: R, batch: usize) -> Self {
        LineBatches {
            input,
            batch,
            line_no: 0,
            buf: String::new(),
            bytes: 0,
        }
    }

    /// The next batch, `None` at the end of input.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, Failure> {
        let mut events = Vec::with_capacity(self.batch.min(4096));
        let mut first_line = 0;
        while events.len() < self.batch {
            self.buf.clear();
            let n = self
                .input
                .read_line(&mut self.buf)
                .map_err(|e| Failure::new(format!("reading line {}: {e}", self.line_no + 1)))?;
            if n == 0 {
                break;
            }
            self.bytes += n as u64;
            self.line_no += 1;
            let line = self.buf.trim();
            if line.is_empty() {
                continue;
            }
            let event = json::parse_event(line)
                .map_err(|e| Failure::new(format!("line {}{e}", self.line_no)))?;
            gesta::validation::check_batch(std::slice::from_ref(&event))
                .map_err(|e| Failure::new(format!("line {}: {e}", self.line_no)))?;
            if events.is_empty() {
                first_line = self.line_no;
            }
            events.push(event);
        }
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            events,
            first_line,
            last_line: self.line_no,
        }))
    }
}

/// Whether an output error is the reader going away (`| head`), which ends
/// the output but is not a failure.
/// Writes `text` to standard output; a reader that went away (a closed
/// pipe) is no failure, as for the commands that stream.
pub fn print_out(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if !closed_pipe(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}
