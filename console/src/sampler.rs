//! The store's state sampled at a fixed interval while the console runs —
//! the head and the bytes on disk — kept in a bounded ring for the page's
//! charts of appends per second and disk use over time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Sample {
    /// When, in milliseconds since the Unix epoch.
    pub t: u64,
    /// The head then.
    pub head: u64,
    /// The bytes the store's files took then.
    pub bytes: u64,
}

/// The samples kept, oldest first; shared between the sampler and the
/// state route.
#[derive(Clone, Debug)]
pub(crate) struct Samples {
    ring: Arc<Mutex<VecDeque<Sample>>>,
    kept: usize,
}

impl Samples {
    pub(crate) fn new(kept: usize) -> Samples {
        Samples {
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(kept))),
            kept,
        }
    }

    pub(crate) fn push(&self, sample: Sample) {
        // A panic while holding the lock leaves the ring usable as it is.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == self.kept {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Every sample kept, oldest first.
    pub(crate) fn all(&self) -> Vec<Sample> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().copied().collect()
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Samples `store` every `every` into `samples`, forever (the console
/// aborts it when it stops). A walk that fails is skipped: the chart shows
/// a gap rather than the console failing.
pub(crate) async fn run(store: gesta::Store, samples: Samples, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let dir = store.path().to_owned();
        let head = store.head();
        let measured = tokio::task::spawn_blocking(move || crate::disk::measure(&dir)).await;
        if let Ok(Ok(disk)) = measured {
            samples.push(Sample {
                t: now_millis(),
                head,
                bytes: disk.bytes_on_disk,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let s = Samples::new(2);
        for head in 1..=3 {
            s.push(Sample {
                t: head,
                head,
                bytes: 0,
            });
        }
        let heads: Vec<u64> = s.all().iter().map(|s| s.head).collect();
        assert_eq!(heads, [2, 3]);
    }
}
