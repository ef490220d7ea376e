//! A fault-injecting in-memory file system for tests (being written).
