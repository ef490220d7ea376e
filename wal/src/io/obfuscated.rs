//! A file system wrapper that scrambles every byte on its way to the disk.
//!
//! [`ObfuscatedFs`] owns one guarantee for the test suite: that no code reads
//! or writes store files around the [`FileSystem`] seam. Each byte is XORed
//! with a never-zero key derived from its absolute offset in the file, so the
//! inner file system holds garbage (zeros included) and anything that opens a
//! file directly sees nonsense, while everything that goes through the
//! wrapper sees the real bytes. Because the key depends only on the offset, a
//! file keeps decoding correctly across renames, and any read or write range
//! encodes independently of how the caller splits it.
//!
//! The wrapper also shortens reads: [`FileHandle::read_at`] returns a
//! deterministic, offset-dependent part of what was asked for, so a caller
//! that treats one `read_at` as a full read fails here instead of on some
//! rare file system in production.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileHandle, FileSystem, LockGuard, Mapping, OpenMode};

/// Largest buffer of encoded zeros written at once when extending a file.
const ZERO_CHUNK: u64 = 64 * 1024;

/// A [`FileSystem`] that stores every byte transformed and returns short
/// reads; see the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct ObfuscatedFs<F: FileSystem> {
    inner: F,
}

impl<F: FileSystem> ObfuscatedFs<F> {
    /// Wraps `inner`; the files it already holds are read as if encoded.
    pub fn new(inner: F) -> Self {
        ObfuscatedFs { inner }
    }

    /// The wrapped file system, for tests that look at the raw bytes.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// Unwraps the inner file system.
    pub fn into_inner(self) -> F {
        self.inner
    }
}

/// The splitmix64 finalizer: a cheap bijective mix, so neighbouring blocks
/// get unrelated keys.
fn mix(x: u64) -> u64 {
    crate::rng::SplitMix64::new(x).next_u64()
}

/// XORs `buf`, which sits at `offset` in its file, with the position keys.
/// XOR is its own inverse, so this both encodes and decodes.
fn transform(buf: &mut [u8], offset: u64) {
    let mut block = u64::MAX;
    let mut word = 0;
    for (pos, byte) in (offset..).zip(buf.iter_mut()) {
        if pos / 8 != block {
            block = pos / 8;
            word = mix(block);
        }
        let key = (word >> ((pos % 8) * 8)) as u8;
        // A zero key would store zeros as zeros, which is what must not
        // happen; any fixed nonzero substitute does.
        *byte ^= if key == 0 { 0xA5 } else { key };
    }
}

/// How much of a `requested`-byte read at `offset` to pass on: between 1
/// and `requested`, varying with both.
fn read_cap(offset: u64, requested: usize) -> usize {
    if requested <= 1 {
        return requested;
    }
    // Uniform over 1..=requested, so draining a large buffer takes a
    // logarithmic number of reads rather than one per byte.
    1 + (mix(offset ^ (requested as u64).rotate_left(32)) % requested as u64) as usize
}

struct ObfuscatedFile {
    inner: Arc<dyn FileHandle>,
    /// Serialises writes with `set_len`, which reads the length and then
    /// writes the extension: a write landing between the two would be
    /// overwritten with zeros.
    resize: Mutex<()>,
}

impl fmt::Debug for ObfuscatedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ObfuscatedFile").field(&self.inner).finish()
    }
}

impl FileHandle for ObfuscatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let cap = read_cap(offset, buf.len());
        let n = self.inner.read_at(&mut buf[..cap], offset)?;
        transform(&mut buf[..n], offset);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut encoded = buf.to_vec();
        transform(&mut encoded, offset);
        let _resize = self.resize.lock();
        self.inner.write_at(&encoded, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let _resize = self.resize.lock();
        let old = self.inner.len()?;
        self.inner.set_len(len)?;
        // The inner file zero-extended; those zeros would decode to
        // garbage, so overwrite them with what zeros encode to.
        let mut start = old;
        while start < len {
            let n = (len - start).min(ZERO_CHUNK) as usize;
            let mut zeros = vec![0; n];
            transform(&mut zeros, start);
            self.inner.write_at(&zeros, start)?;
            start += n as u64;
        }
        Ok(())
    }

    fn map(&self) -> io::Result<Mapping> {
        let mut bytes = self.inner.map()?.bytes().to_vec();
        transform(&mut bytes, 0);
        Ok(Mapping::new(Arc::new(bytes)))
    }
}

impl<F: FileSystem> FileSystem for ObfuscatedFs<F> {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(ObfuscatedFile {
            inner: self.inner.open(path, mode)?,
            resize: Mutex::new(()),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        self.inner.lock(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::fault::FaultFs;
    use crate::io::{read_all, read_exact_at};
    use std::path::PathBuf;

    fn setup() -> (ObfuscatedFs<FaultFs>, PathBuf) {
        let fs = ObfuscatedFs::new(FaultFs::new());
        fs.create_dir_all(Path::new("/store")).unwrap();
        (fs, PathBuf::from("/store/f"))
    }

    fn raw(fs: &ObfuscatedFs<FaultFs>, path: &Path) -> Vec<u8> {
        read_all(&*fs.inner().open(path, OpenMode::Existing).unwrap()).unwrap()
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_through_the_wrapper() {
        let (fs, path) = setup();
        let f = fs.open(&path, OpenMode::CreateNew).unwrap();
        let data = pattern(10_000);
        f.write_at(&data[..3000], 0).unwrap();
        f.write_at(&data[3000..], 3000).unwrap();
        f.sync_data().unwrap();
        assert_eq!(read_all(&*f).unwrap(), data);
        assert_eq!(f.map().unwrap().bytes(), &data[..]);

        fs.rename(&path, Path::new("/store/g")).unwrap();
        let g = fs.open(Path::new("/store/g"), OpenMode::Existing).unwrap();
        assert_eq!(read_all(&*g).unwrap(), data);
    }

    #[test]
    fn the_inner_disk_holds_garbage() {
        let (fs, path) = setup();
        let f = fs.open(&path, OpenMode::CreateNew).unwrap();
        let mut data = b"hello, world".to_vec();
        data.extend([0; 4096]);
        f.write_at(&data, 0).unwrap();
        let inner = raw(&fs, &path);
        assert_eq!(inner.len(), data.len());
        assert_ne!(inner, data);
        assert!(inner[12..].iter().all(|&b| b != 0), "zeros stored as zeros");

        // The same bytes at another offset encode differently.
        f.write_at(&data[..12], 100).unwrap();
        assert_ne!(raw(&fs, &path)[100..112], inner[..12]);
    }

    #[test]
    fn reads_are_short_but_read_exact_at_recovers() {
        let (fs, path) = setup();
        let f = fs.open(&path, OpenMode::CreateNew).unwrap();
        let data = pattern(8192);
        f.write_at(&data, 0).unwrap();

        let mut short = 0;
        let mut buf = vec![0; 4096];
        for offset in 0..64 {
            let n = f.read_at(&mut buf, offset).unwrap();
            assert!(n > 0 && n <= buf.len());
            assert_eq!(buf[..n], data[offset as usize..offset as usize + n]);
            if n < buf.len() {
                short += 1;
            }
        }
        assert!(short > 0, "no read came back short");
        assert_eq!(f.read_at(&mut buf, 8192).unwrap(), 0);

        let mut exact = vec![0; 5000];
        read_exact_at(&*f, &mut exact, 1234).unwrap();
        assert_eq!(exact, data[1234..6234]);
    }

    #[test]
    fn set_len_extension_reads_back_zeros() {
        let (fs, path) = setup();
        let f = fs.open(&path, OpenMode::CreateNew).unwrap();
        f.write_at(b"abc", 0).unwrap();
        f.set_len(200_000).unwrap();
        let all = read_all(&*f).unwrap();
        assert_eq!(all.len(), 200_000);
        assert_eq!(&all[..3], b"abc");
        assert!(all[3..].iter().all(|&b| b == 0));
        assert!(raw(&fs, &path)[3..].iter().all(|&b| b != 0));

        f.set_len(2).unwrap();
        f.set_len(5).unwrap();
        assert_eq!(read_all(&*f).unwrap(), b"ab\0\0\0");
    }
}
