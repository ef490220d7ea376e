//! `gesta get DIR --id UUID`: one event by its id, as a JSON line.

use std::io::Write;

use crate::StoreDir;
use crate::failure::{Failure, open_existing};
use gesta_json as json;

pub const AFTER_HELP: &str = r#"Prints the event as `read` does, from the id index (no scan). An id no committed event carries exits
with status 1 and says so.

Examples:
  gesta get ./events --id 0b6c3a52-6f3e-4d2a-9a8e-1f2d3c4b5a69"#;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// The event's id, a UUID.
    #[arg(long, value_name = "UUID")]
    id: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let id = json::parse_id(&args.id).map_err(|e| Failure {
        message: format!("--id {e}"),
        code: 2,
    })?;
    let store = super::encrypted::Opened::wrap(open_existing(&args.store.dir)?, false)?;
    let found = store.event_by_id(id)?;
    store.close()?;
    let Some(event) = found else {
        return Err(Failure::new(format!("no event has id {}", args.id)));
    };
    let mut line = Vec::with_capacity(512);
    json::write_event(&mut line, (&event).into());
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(&line).and_then(|()| out.flush()) {
        Err(e) if !super::closed_pipe(&e) => Err(e.into()),
        _ => Ok(()),
    }
}
