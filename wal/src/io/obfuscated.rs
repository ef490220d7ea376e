//! A byte-transforming file system wrapper for tests (being written).
