//! Reading events by position: forwards or backwards, from an exclusive
//! start, with a limit, never past the head captured when the read began.

use std::collections::VecDeque;

use gesta_wal::{Backward, Forward, WalReader};

use crate::codec::decode_record;
use crate::error::Result;
use crate::event::RecordedEvent;

/// Which way a read goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forwards,
    /// Newest first.
    Backwards,
}

/// What to read.
///
/// `start` is **exclusive** in both directions: forwards yields positions
/// `> start` (`None` means from the beginning), backwards yields positions
/// `< start` (`None` means from the head).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Forwards or backwards.
    pub direction: Direction,
    /// The exclusive start position.
    pub start: Option<u64>,
    /// At most this many events (`None`: no limit).
    pub limit: Option<usize>,
}

impl ReadOptions {
    /// Everything, oldest first.
    pub fn forwards() -> ReadOptions {
        ReadOptions::default()
    }

    /// Everything, newest first.
    pub fn backwards() -> ReadOptions {
        ReadOptions {
            direction: Direction::Backwards,
            ..ReadOptions::default()
        }
    }

    /// Starts after (forwards) or before (backwards) `position`.
    pub fn start(mut self, position: u64) -> ReadOptions {
        self.start = Some(position);
        self
    }

    /// Stops after `n` events.
    pub fn limit(mut self, n: usize) -> ReadOptions {
        self.limit = Some(n);
        self
    }
}

enum Source {
    Forward(Forward),
    Backward(Backward),
    Done,
}

/// A lazy iterator over events; see [`Store::read`](crate::Store::read).
pub struct Events {
    source: Source,
    buffered: VecDeque<RecordedEvent>,
    /// Inclusive position bounds.
    lo: u64,
    hi: u64,
    remaining: usize,
}

impl Events {
    pub(crate) fn new(reader: &WalReader, head: u64, options: ReadOptions) -> Events {
        let remaining = options.limit.unwrap_or(usize::MAX);
        let (source, lo, hi) = match options.direction {
            Direction::Forwards => {
                let lo = options.start.unwrap_or(0).saturating_add(1);
                (Source::Forward(reader.forward(lo, head)), lo, head)
            }
            Direction::Backwards => {
                let hi = options
                    .start
                    .map_or(head, |s| s.saturating_sub(1).min(head));
                (Source::Backward(reader.backward(hi)), 1, hi)
            }
        };
        let empty = lo > hi || remaining == 0;
        Events {
            source: if empty { Source::Done } else { source },
            buffered: VecDeque::new(),
            lo,
            hi,
            remaining,
        }
    }

    fn refill(&mut self) -> Result<bool> {
        let record = match &mut self.source {
            Source::Forward(f) => f.next(),
            Source::Backward(b) => b.next(),
            Source::Done => None,
        };
        let Some(record) = record else {
            self.source = Source::Done;
            return Ok(false);
        };
        let record = record?;
        let mut events = Vec::with_capacity(record.meta.count as usize);
        decode_record(&record, &mut events)?;
        let (lo, hi) = (self.lo, self.hi);
        let keep = events
            .into_iter()
            .filter(|e| (lo..=hi).contains(&e.position));
        match self.source {
            Source::Backward(_) => self.buffered.extend(keep.rev()),
            _ => self.buffered.extend(keep),
        }
        Ok(true)
    }
}

impl Iterator for Events {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.buffered.pop_front() {
                self.remaining -= 1;
                return Some(Ok(e));
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.source = Source::Done;
                    self.remaining = 0;
                    return Some(Err(e));
                }
            }
        }
    }
}
