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

/// Touches every line `bytes[start..end]` lies in: the byte at `start`,
/// then the first byte of each line after it. The lines are memory's, not
/// the slice's: a slice may start anywhere in one, and stepping a line at a
/// time from `start` would miss the last line of a stretch as often as not.
pub fn touch_lines(bytes: &[u8], start: usize, end: usize) {
    let end = end.min(bytes.len());
    if start >= end {
        return;
    }
    touch(line_starts(bytes.as_ptr() as usize, start, end).map(|at| (bytes, at)));
}

/// The offsets `touch_lines` reads in a slice at address `base`: `start`,
/// then each offset before `end` whose address starts a line.
fn line_starts(base: usize, start: usize, end: usize) -> impl Iterator<Item = usize> {
    let next = start + LINE - base.wrapping_add(start) % LINE;
    std::iter::once(start).chain((next..end).step_by(LINE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line a stretch lies in is touched once, wherever the slice
    /// starts in a line and however long the stretch is.
    #[test]
    fn every_line_of_a_stretch_is_touched_once() {
        for base in [0usize, 1, 28, 63, 64, 4096 + 37] {
            for start in 0..130 {
                for end in start + 1..start + 300 {
                    let lines: Vec<usize> = line_starts(base, start, end)
                        .map(|at| (base + at) / LINE)
                        .collect();
                    let wanted: Vec<usize> =
                        ((base + start) / LINE..=(base + end - 1) / LINE).collect();
                    assert_eq!(lines, wanted, "base {base} start {start} end {end}");
                }
            }
        }
    }
}
