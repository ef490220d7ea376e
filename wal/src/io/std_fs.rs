//! The real file system: `std::fs` with positional I/O, `fdatasync`,
//! `mmap` for immutable files and an advisory `flock` for the store lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{FileHandle, FileSystem, LockGuard, Mapping, OpenMode};

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl FileHandle for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn map(&self) -> io::Result<Mapping> {
        if self.len()? == 0 {
            return Ok(Mapping::new(Arc::new(Vec::<u8>::new())));
        }
        // SAFETY: the map is read-only and Gesta reads through it only bytes
        // that never change again: immutable files (sealed segments, index
        // runs) and, in the active segment, records below the published end,
        // which the writer never rewrites; the active segment is truncated
        // only beyond that end (when it is sealed), so no read touches a page
        // past the end of the file. The store directory is locked against
        // other Gesta processes; a foreign process truncating the file would
        // be outside the contract, as for every mmap user.
        let map = unsafe { memmap2::Mmap::map(&self.0)? };
        Ok(Mapping::new(Arc::new(map)))
    }
}

struct StdLock(#[allow(dead_code)] File);

impl Drop for StdLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl FileSystem for StdFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::ReadOnly => {
                return Ok(Arc::new(StdFile(OpenOptions::new().read(true).open(path)?)));
            }
            OpenMode::CreateNew => {
                opts.create_new(true);
            }
            OpenMode::Truncate => {
                opts.create(true).truncate(true);
            }
            OpenMode::TruncatePrivate => {
                // Also a file left with a wider mode by an older version
                // becomes private before it is written.
                use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
                opts.create(true).truncate(true).mode(0o600);
                let file = opts.open(path)?;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                return Ok(Arc::new(StdFile(file)));
            }
        }
        Ok(Arc::new(StdFile(opts.open(path)?)))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn mmap_is_coherent(&self) -> bool {
        true
    }

    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock(file))),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the lock is held by another process or handle",
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
