//! Merging index runs, and the policy that chooses which runs to merge.
//!
//! # Policy: size-tiered over adjacent runs
//!
//! Every run covers a closed range of positions and the MANIFEST lists them
//! in position order without gaps, so a merge always takes *adjacent* runs
//! and produces one run covering their union. Within that constraint we use
//! size tiers rather than levels:
//!
//! - A run's tier is `⌊log_F(postings / base)⌋` (0 for anything smaller than
//!   `F · base`), where `base` is the memtable bound (the size of a flushed
//!   run) and `F` the fan-in.
//! - When `F` adjacent runs share a tier, they are merged into one run,
//!   whose size is at least `F` times theirs, so its tier is higher.
//! - A run whose tier is higher than its older neighbour's is merged with it
//!   (this only happens after unusually large flushes), so tiers never
//!   increase from old to new.
//!
//! So the runs form a staircase, oldest and largest first, with at most
//! `F − 1` runs per tier: `O(F · log_F(n / base))` runs for `n` postings.
//!
//! Why tiered and not levelled: an event store's index only ever grows at
//! the new end — there are no overwrites, and the postings of removed
//! events are dropped only by an explicit full merge — so the
//! only thing levelling would buy (fewer sorted runs a key must be looked
//! up in) is already bounded by the staircase, while its cost (rewriting
//! a whole level for every small run pushed into it) is not. Tiered merging
//! writes each posting `O(log_F(n / base))` times in total; with `F = 4` and
//! 2M-posting flushes, 50M postings (10M events) take at most ~9 runs and
//! each posting is rewritten about 3 times. Lookups stay cheap regardless:
//! every run has a Bloom filter, and the view skips runs that do not hold a
//! key after one filter probe.
//!
//! [`merge_runs`] does the merge itself: a k-way merge of the runs' keys,
//! each key's lists concatenated in position order (the runs are disjoint
//! and given oldest first, so the result is ascending without sorting).
//! [`merge_runs_purging`] also drops the postings of removed events from
//! the types' and tags' lists (see `gesta_index::Hidden`).

use std::collections::BTreeMap;
use std::ops::Range;

use gesta_index::{Hidden, Key, Run, RunIter, purgeable, write_run};

/// The tier of a run of `postings` postings.
pub fn tier(postings: u64, base: u64, fan_in: u64) -> u32 {
    let base = base.max(1);
    let fan_in = fan_in.max(2);
    let mut t = 0;
    let mut bound = base.saturating_mul(fan_in);
    while postings >= bound && bound < u64::MAX {
        t += 1;
        bound = bound.saturating_mul(fan_in);
    }
    t
}

/// Chooses the next adjacent runs to merge, given their posting counts in
/// position order (oldest first), or `None` when the staircase holds.
/// Returns a range of indices of at least two runs.
pub fn plan(sizes: &[u64], base: u64, fan_in: usize) -> Option<Range<usize>> {
    let fan_in = fan_in.max(2);
    let tiers: Vec<u32> = sizes
        .iter()
        .map(|&s| tier(s, base, fan_in as u64))
        .collect();
    // A newer run in a higher tier than its older neighbour: merge the two.
    if let Some(i) = tiers.windows(2).position(|w| w[1] > w[0]) {
        return Some(i..i + 2);
    }
    // The oldest F adjacent runs of the lowest tier that has F of them.
    let mut best: Option<(u32, Range<usize>)> = None;
    let mut start = 0;
    for i in 1..=tiers.len() {
        if i == tiers.len() || tiers[i] != tiers[start] {
            if i - start >= fan_in && best.as_ref().is_none_or(|(t, _)| tiers[start] < *t) {
                best = Some((tiers[start], start..start + fan_in));
            }
            start = i;
        }
    }
    best.map(|(_, r)| r)
}

/// Merges `runs` (adjacent, in position order) into the bytes of one run
/// covering their union. Returns the bytes and the covered range.
pub fn merge_runs(runs: &[&Run]) -> (Vec<u8>, (u64, u64)) {
    let merged = merge_runs_purging(runs, None);
    (merged.bytes, merged.covers)
}

/// What [`merge_runs_purging`] made.
#[derive(Debug)]
pub struct Merged {
    /// The new run's bytes.
    pub bytes: Vec<u8>,
    /// The positions it covers.
    pub covers: (u64, u64),
    /// Per key, how many postings of hidden positions were dropped.
    pub dropped: BTreeMap<Key, u64>,
}

/// [`merge_runs`], dropping from the lists of [`purgeable`] keys (types
/// and tags) the positions `purge` hides, and a key whose list is left
/// empty. Streams' and ids' lists are kept whole: revisions count removed
/// events, and a removed event's id stays taken.
pub fn merge_runs_purging(runs: &[&Run], purge: Option<&Hidden>) -> Merged {
    let lo = runs.first().map_or(1, |r| r.covers().0);
    let hi = runs.last().map_or(0, |r| r.covers().1);
    let mut iters: Vec<std::iter::Peekable<RunIter<'_>>> =
        runs.iter().map(|r| r.iter().peekable()).collect();
    let mut out: Vec<(Key, Vec<u64>)> = Vec::new();
    let mut dropped = BTreeMap::new();
    loop {
        // The smallest key any run has next (k is small: a linear scan).
        let mut smallest: Option<Key> = None;
        for it in &mut iters {
            if let Some((k, _)) = it.peek()
                && smallest.as_ref().is_none_or(|s| k < s)
            {
                smallest = Some(k.clone());
            }
        }
        let Some(key) = smallest else { break };
        let mut list = Vec::new();
        for it in &mut iters {
            if it.peek().is_some_and(|(k, _)| *k == key)
                && let Some((_, positions)) = it.next()
            {
                list.extend(positions);
            }
        }
        if let Some(hidden) = purge.filter(|h| !h.is_empty() && purgeable(&key)) {
            let lost = hidden.purge(&mut list);
            if lost > 0 {
                dropped.insert(key.clone(), lost);
            }
            if list.is_empty() {
                continue;
            }
        }
        out.push((key, list));
    }
    Merged {
        bytes: write_run(out, (lo, hi)),
        covers: (lo, hi),
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn tiers() {
        assert_eq!(tier(0, 10, 4), 0);
        assert_eq!(tier(39, 10, 4), 0);
        assert_eq!(tier(40, 10, 4), 1);
        assert_eq!(tier(159, 10, 4), 1);
        assert_eq!(tier(160, 10, 4), 2);
        assert_eq!(tier(u64::MAX, u64::MAX, 4), 0);
        assert!(tier(u64::MAX, 1, 2) >= 63);
    }

    #[test]
    fn plan_merges_f_equal_tiers_and_fixes_inversions() {
        assert_eq!(plan(&[10, 10, 10], 10, 4), None);
        assert_eq!(plan(&[10, 10, 10, 10], 10, 4), Some(0..4));
        assert_eq!(plan(&[200, 40, 10, 10, 10, 10], 10, 4), Some(2..6));
        assert_eq!(plan(&[10, 200], 10, 4), Some(0..2));
        assert_eq!(plan(&[], 10, 4), None);
    }

    /// Simulating many flushes: the run count stays logarithmic.
    #[test]
    fn run_count_stays_logarithmic() {
        let mut sizes: Vec<u64> = Vec::new();
        let mut max_runs = 0;
        for _ in 0..10_000 {
            sizes.push(100);
            while let Some(r) = plan(&sizes, 100, 4) {
                let merged: u64 = sizes[r.clone()].iter().sum();
                sizes.splice(r, [merged]);
            }
            max_runs = max_runs.max(sizes.len());
        }
        // 10,000 flushes: log4(10,000) ≈ 6.6 tiers, at most 3 runs each.
        assert!(max_runs <= 3 * 8, "{max_runs} runs");
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn merge_concatenates_lists_in_position_order() {
        let a = write_run(
            vec![(Key::tag("a"), vec![1, 3]), (Key::tag("c"), vec![2])],
            (1, 3),
        );
        let b = write_run(
            vec![(Key::tag("a"), vec![4]), (Key::tag("b"), vec![5, 6])],
            (4, 6),
        );
        let c = write_run(vec![(Key::tag("c"), vec![9])], (7, 9));
        let runs: Vec<Run> = [a, b, c]
            .into_iter()
            .map(|b| Run::open(Bytes::from(b)).unwrap())
            .collect();
        let refs: Vec<&Run> = runs.iter().collect();
        let (bytes, covers) = merge_runs(&refs);
        assert_eq!(covers, (1, 9));
        let merged = Run::open(Bytes::from(bytes)).unwrap();
        assert_eq!(merged.covers(), (1, 9));
        let got: Vec<(Key, Vec<u64>)> = merged.iter().collect();
        assert_eq!(
            got,
            vec![
                (Key::tag("a"), vec![1, 3, 4]),
                (Key::tag("b"), vec![5, 6]),
                (Key::tag("c"), vec![2, 9]),
            ]
        );
    }
}
