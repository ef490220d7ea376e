//! The Bloom filter over a run's keys, which lets a point lookup (an event id
//! above all) skip a run without touching its key directory.
//!
//! It is blocked: each key selects one 64-byte block (a cache line) and sets
//! [`PROBES`] bits inside it, so a lookup costs one cache miss. At ten bits
//! per key this gives roughly a 1% false-positive rate. The hash is part of
//! the file format and must never change within a format version.

/// Bytes per filter block.
pub(crate) const FILTER_BLOCK: usize = 64;
/// Bits set per key within its block.
const PROBES: u32 = 7;
/// Filter bits budgeted per key.
const BITS_PER_KEY: usize = 10;

/// The hash of a key: FNV-1a over the bytes, then the MurmurHash3 64-bit
/// finaliser to spread FNV's weak low bits.
fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(h)
}

/// MurmurHash3's 64-bit finaliser.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A key's hash, computed once for every filter a lookup asks (the runs of
/// an index view each have one, of its own size).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe(u64);

impl Probe {
    pub(crate) fn of(key: &[u8]) -> Probe {
        Probe(hash(key))
    }
}

/// The block a key's bits go to, and the bit indexes (0..512) within it.
fn probes(Probe(h): Probe, blocks: usize) -> (usize, impl Iterator<Item = usize>) {
    // Multiply-shift maps the hash onto 0..blocks without a division.
    let block = ((u128::from(h) * blocks as u128) >> 64) as usize;
    let bits = fmix64(h ^ 0x9e37_79b9_7f4a_7c15);
    let indexes = (0..PROBES).map(move |i| ((bits >> (9 * i)) & 511) as usize);
    (block, indexes)
}

/// The first and last bytes of the block `probe` selects in `filter`,
/// XOR-ed (0 for an empty filter): read only to bring the block into the
/// cache ahead of [`may_contain`], both ends because a block need not start
/// a line of memory.
pub(crate) fn touch_block(filter: &[u8], probe: Probe) -> u8 {
    let blocks = filter.len() / FILTER_BLOCK;
    if blocks == 0 {
        return 0;
    }
    let (block, _) = probes(probe, blocks);
    let byte = |at: usize| filter.get(at).copied().unwrap_or(0);
    byte(block * FILTER_BLOCK) ^ byte(block * FILTER_BLOCK + FILTER_BLOCK - 1)
}

/// Builds the filter for `count` keys.
pub(crate) fn build<'a>(keys: impl IntoIterator<Item = &'a [u8]>, count: usize) -> Vec<u8> {
    let blocks = (count * BITS_PER_KEY).div_ceil(FILTER_BLOCK * 8).max(1);
    let mut filter = vec![0u8; blocks * FILTER_BLOCK];
    for key in keys {
        let (block, bits) = probes(Probe::of(key), blocks);
        for bit in bits {
            if let Some(byte) = filter.get_mut(block * FILTER_BLOCK + bit / 8) {
                *byte |= 1 << (bit % 8);
            }
        }
    }
    filter
}

/// Whether the key `probe` was computed from may be among the keys
/// `filter` was built from. False means certainly not. A filter of the
/// wrong size answers "may be".
pub(crate) fn may_contain(filter: &[u8], probe: Probe) -> bool {
    let blocks = filter.len() / FILTER_BLOCK;
    if blocks == 0 {
        return true;
    }
    let (block, mut bits) = probes(probe, blocks);
    bits.all(|bit| {
        filter
            .get(block * FILTER_BLOCK + bit / 8)
            .is_none_or(|byte| byte & (1 << (bit % 8)) != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    /// Touching a key's block reads inside the filter whatever its length
    /// (the bytes of the block `may_contain` reads), and an empty filter
    /// reads nothing.
    #[test]
    fn touching_a_block_reads_its_ends() {
        let key = Probe::of(Key::id(42).as_bytes());
        assert_eq!(touch_block(&[], key), 0);
        assert_eq!(touch_block(&[0xff; 63], key), 0);
        for blocks in [1usize, 2, 7, 100] {
            for extra in [0, 1, 63] {
                let mut filter = vec![0u8; blocks * FILTER_BLOCK + extra];
                let (block, _) = probes(key, blocks);
                filter[block * FILTER_BLOCK] = 0b0101;
                filter[block * FILTER_BLOCK + FILTER_BLOCK - 1] = 0b0011;
                assert_eq!(touch_block(&filter, key), 0b0110);
            }
        }
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let keys: Vec<Key> = (0..10_000u128).map(|i| Key::id(i * 7919)).collect();
        let filter = build(keys.iter().map(|k| k.as_bytes()), keys.len());
        assert!(
            keys.iter()
                .all(|k| may_contain(&filter, Probe::of(k.as_bytes())))
        );
        let false_positives = (0..10_000u128)
            .map(|i| Key::id(i * 7919 + 1))
            .filter(|k| may_contain(&filter, Probe::of(k.as_bytes())))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} false positives in 10k"
        );
    }

    #[test]
    fn empty_filter_rejects() {
        let filter = build(std::iter::empty(), 0);
        assert_eq!(filter.len(), FILTER_BLOCK);
        assert!(!may_contain(&filter, Probe::of(Key::tag("a").as_bytes())));
        assert!(may_contain(&[], Probe::of(b"x")));
    }

    #[test]
    fn hash_is_stable() {
        // The hash is part of the format: these values must never change.
        assert_eq!(hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
    }
}
