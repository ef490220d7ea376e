//! The part of the `gesta` command that other crates use too: the JSON
//! forms of events and queries ([`json`]), which the fuzz targets exercise.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod json;
