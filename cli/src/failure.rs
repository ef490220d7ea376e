//! What a failed command reports: one line for stderr and an exit status.

use std::fmt::Display;
use std::path::Path;

/// A command's failure.
#[derive(Debug)]
pub struct Failure {
    /// The line printed after `gesta: `.
    pub message: String,
    /// The exit status.
    pub code: u8,
}

/// Exit status of an append refused by its condition or expectation.
pub const CONFLICT: u8 = 3;

/// Exit status of an append whose outcome is unknown: its events may or
/// may not be in the store.
pub const UNKNOWN: u8 = 4;

impl Failure {
    /// A failure with exit status 1.
    pub fn new(message: impl Display) -> Failure {
        Failure {
            message: message.to_string(),
            code: 1,
        }
    }
}

impl From<gesta::Error> for Failure {
    fn from(e: gesta::Error) -> Failure {
        let code = match e {
            gesta::Error::ConditionFailed { .. } | gesta::Error::WrongExpectedRevision { .. } => {
                CONFLICT
            }
            gesta::Error::OutcomeUnknown { .. } => UNKNOWN,
            _ => 1,
        };
        let mut message = one_line(&e.to_string());
        if matches!(e, gesta::Error::Evicted { .. }) {
            message.push_str(
                " (the command reads it through the bucket it was shipped to: gesta serve DIR \
                 --ship-to s3://BUCKET/PREFIX)",
            );
        }
        Failure { message, code }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(one_line(&e.to_string()))
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// Fails unless `dir` holds a store (for the commands that only look).
pub fn existing_store(dir: &Path) -> Result<(), Failure> {
    if dir.join("wal").is_dir() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "no Gesta store at {} (it has no wal/ directory)",
            dir.display()
        )))
    }
}

/// Opens the store in `dir`, which must exist.
pub fn open_existing(dir: &Path) -> Result<gesta::Store, Failure> {
    open_existing_with(dir, gesta::Options::default())
}

/// [`open_existing`] with options.
pub fn open_existing_with(dir: &Path, options: gesta::Options) -> Result<gesta::Store, Failure> {
    existing_store(dir)?;
    Ok(gesta::Store::open_with(dir, options)?)
}
