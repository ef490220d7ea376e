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
/// With [`cut_at_bytes`](Self::cut_at_bytes) (an import's), a batch is
/// also cut before an event that would take its events' bytes past the
/// bound (a batch of one event is never cut), so that large events never
/// make a batch the store refuses as too large; `gesta append` keeps the
/// batches its user asked for, whose atomicity a condition may count on.
/// The cuts depend on the input and the bounds only: the same file cut
/// the same way is what makes an import of events with ids idempotent
/// batch by batch.
pub struct LineBatches<R> {
    input: R,
    batch: usize,
    line_no: u64,
    buf: String,
    /// Bytes read so far.
    pub bytes: u64,
    /// An event read that did not fit the last batch, with its line.
    held: Option<(NewEvent, u64)>,
    /// The most bytes of events a batch takes ([`event_bytes`]).
    max_bytes: u64,
}

/// The most bytes of events (data, metadata and names, as
/// [`event_bytes`] counts them) an import's batch takes: half the
/// store's limit on a batch ([`gesta::event::MAX_BATCH_LEN`]), which
/// leaves room for the encoding's framing and for sealing on an encrypted
/// store.
pub const BATCH_BYTES: u64 = gesta::event::MAX_BATCH_LEN as u64 / 2;

/// What an event takes of a batch, for [`BATCH_BYTES`]: its data,
/// metadata and names, and 64 bytes of framing (sealing included).
fn event_bytes(e: &NewEvent) -> u64 {
    let names = e.event_type.len()
        + e.tags.iter().map(String::len).sum::<usize>()
        + e.stream.as_ref().map_or(0, String::len);
    (e.data.len() + e.metadata.len() + names + 64) as u64
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
            held: None,
            max_bytes: u64::MAX,
        }
    }

    /// Cuts batches at `max_bytes` of events too ([`BATCH_BYTES`]).
    pub fn cut_at_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The next batch, `None` at the end of input.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, Failure> {
        let mut events = Vec::with_capacity(self.batch.min(4096));
        let mut first_line = 0;
        let mut last_line = 0;
        let mut taken = 0u64;
        if let Some((event, line)) = self.held.take() {
            taken = event_bytes(&event);
            (first_line, last_line) = (line, line);
            events.push(event);
        }
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
            let size = event_bytes(&event);
            if !events.is_empty() && taken.saturating_add(size) > self.max_bytes {
                self.held = Some((event, self.line_no));
                break;
            }
            if events.is_empty() {
                first_line = self.line_no;
            }
            taken += size;
            last_line = self.line_no;
            events.push(event);
        }
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            events,
            first_line,
            last_line,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Large events are cut into batches the store accepts, the same way
    /// every time, and every line lands in one batch, in order.
    #[test]
    fn batches_are_cut_by_bytes_as_well_as_by_lines() {
        let big = "x".repeat(12 << 20);
        let mut input = String::new();
        for i in 0..5 {
            input.push_str(&format!("{{\"type\":\"Big{i}\",\"data\":\"{big}\"}}\n\n"));
        }
        input.push_str("{\"type\":\"Small\",\"data\":\"s\"}\n");
        let mut lines = LineBatches::new(input.as_bytes(), 1000).cut_at_bytes(BATCH_BYTES);
        let mut cuts = Vec::new();
        while let Some(batch) = lines.next_batch().unwrap() {
            gesta::validation::check_batch(&batch.events).unwrap();
            let types: Vec<String> = batch.events.iter().map(|e| e.event_type.clone()).collect();
            cuts.push((batch.first_line, batch.last_line, types));
        }
        assert_eq!(
            cuts,
            [
                (1, 3, vec!["Big0".to_owned(), "Big1".to_owned()]),
                (5, 7, vec!["Big2".to_owned(), "Big3".to_owned()]),
                (9, 11, vec!["Big4".to_owned(), "Small".to_owned()]),
            ]
        );
        // By lines, as before, when the events are small.
        let small = "{\"type\":\"A\",\"data\":\"a\"}\n".repeat(5);
        let mut lines = LineBatches::new(small.as_bytes(), 2);
        let mut sizes = Vec::new();
        while let Some(batch) = lines.next_batch().unwrap() {
            sizes.push(batch.events.len());
        }
        assert_eq!(sizes, [2, 2, 1]);
    }
}
