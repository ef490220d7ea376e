//! The Gesta `EventStore` contract over SQLite (being written).
