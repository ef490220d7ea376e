//! Cache-line touches: loads whose values are thrown away, issued in a
//! tight loop so that their misses are in flight together, ahead of the
//! reads that need the lines. Only hints: an offset out of range touches
//! nothing.

use std::hint::black_box;

/// A cache line, the unit a touch brings in.
pub const LINE: usize = 64;

/// Reads one byte of each of `spots` in a tight loop, so that the loads'
/// misses are in flight together.
pub fn touch<'a>(spots: impl Iterator<Item = (&'a [u8], usize)>) {
    let mut sum = 0u8;
    for (bytes, at) in spots {
        sum ^= bytes.get(at).copied().unwrap_or(0);
    }
    black_box(sum);
}

/// Touches every line of `bytes[start..end]`.
pub fn touch_lines(bytes: &[u8], start: usize, end: usize) {
    let end = end.min(bytes.len());
    touch((start..end).step_by(LINE).map(|at| (bytes, at)));
}
