//! The Gesta `EventStore` contract over PostgreSQL (being written).
