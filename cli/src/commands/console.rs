//! `gesta console DIR`: the web console on a store (the `gesta-console`
//! crate serves it; this is its door in the gesta command).

use crate::failure::Failure;

pub use gesta_console::command::{AFTER_HELP, ConsoleArgs as Args};

pub fn run(args: Args) -> Result<(), Failure> {
    gesta_console::command::run(args, "gesta console").map_err(Failure::new)
}
