//! `gesta restore s3://BUCKET/PREFIX DIR`: rebuild a store from the bucket
//! a shipper mirrored it to, alone.

use std::path::PathBuf;

use crate::failure::Failure;

pub const AFTER_HELP: &str = "\
Reads the prefix's checkpoint (written last by the shipper of `gesta serve --ship-to`), downloads every object it
names, checks each one's length and CRC-32 against it, and writes the store into DIR, which must not exist. A
corrupt object is refused, naming its key: nothing of it is written into a store. The files are written into
DIR.partial, which holds a BACKUP-INCOMPLETE marker until they are all synced (no store opens it), and renamed to
DIR last. The restored store holds every position up to the checkpoint's head, which is printed: what it lacks is
at most what the writer committed after its last shipping round.

To fail over from a writer that is gone: restore, then start the new writer with `--ship-takeover`, which fences
the old one (its later shipping is refused).

The bucket's endpoint and credentials come from the standard AWS variables: AWS_ENDPOINT_URL (an S3-compatible
server), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, and AWS_ALLOW_HTTP=true
for a plain-HTTP endpoint.

Examples:
  gesta restore s3://my-bucket/events ./events
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true gesta restore s3://dev/events ./events && gesta verify ./events";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the store was shipped: s3://BUCKET/PREFIX.
    #[arg(value_name = "URL")]
    url: String,
    /// The new store's directory (must not exist).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let location = gesta_tier::Location::from_url(&args.url).map_err(Failure::new)?;
    let report = gesta_tier::restore(&location, &args.dir).map_err(Failure::new)?;
    println!(
        "restored positions 1..={} from {} (epoch {}, checkpoint {}) to {} in {:.2} s: {} file(s), {} object(s), {:.1} MB checked",
        report.head,
        args.url,
        report.epoch,
        report.sequence,
        report.path.display(),
        report.time.as_secs_f64(),
        report.files,
        report.objects,
        report.bytes as f64 / 1e6,
    );
    Ok(())
}
