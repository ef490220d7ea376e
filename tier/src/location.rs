//! Where a store is mirrored: an object store and a prefix in it, parsed
//! from `s3://bucket/prefix`, with the endpoint and credentials from the
//! standard AWS environment variables.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as Key;

use crate::error::{Error, Result};

/// An object store and the prefix under which one store is mirrored.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    display: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// Whether a path segment (of a prefix or of a file's name) is one this
/// crate writes as is: no separators, no whitespace, not `.` or `..`.
pub(crate) fn plain_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=' | '+'))
}

impl Location {
    /// `s3://BUCKET/PREFIX` (or `s3://BUCKET` for the bucket's root), with
    /// everything else from the environment as the AWS tools read it:
    /// `AWS_ENDPOINT_URL` (an S3-compatible server), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION`
    /// (`us-east-1` when unset), `AWS_ALLOW_HTTP=true` for a plain-HTTP
    /// endpoint. Conditional PUT (`If-None-Match`, `If-Match`) is required
    /// of the server.
    ///
    /// Requests time out after 30 s and the client retries a failed one
    /// for at most 10 s: the shipper retries whole rounds itself, with its
    /// own backoff, so that an outage shows in its status instead of
    /// blocking inside one request.
    pub fn from_url(url: &str) -> Result<Location> {
        Location::from_url_with(url, &[])
    }

    /// [`from_url`](Self::from_url), with `settings` over the environment:
    /// pairs of a setting's name as its environment variable spells it, in
    /// lower case (`aws_endpoint_url`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_allow_http`, …), and its value.
    pub fn from_url_with(url: &str, settings: &[(&str, &str)]) -> Result<Location> {
        let (bucket, prefix) = parse_url(url)?;
        // reqwest's rustls has no provider of its own here (ring is the
        // workspace's); a provider installed already is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
        };
        let client = object_store::ClientOptions::new()
            .with_timeout(Duration::from_secs(30))
            .with_connect_timeout(Duration::from_secs(5));
        // The client's options first: the environment's and the caller's
        // settings (AWS_ALLOW_HTTP among them) go over them, not under.
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_retry(retry)
            .with_client_options(client);
        let from_env: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        for (name, value) in from_env
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(settings.iter().copied())
        {
            // The client panics on an endpoint that is not an absolute URL.
            if name.starts_with("aws_endpoint")
                && !(value.starts_with("http://") || value.starts_with("https://"))
            {
                return Err(Error::InvalidInput(format!(
                    "{}={value:?}: an endpoint is an http:// or https:// URL",
                    name.to_ascii_uppercase()
                )));
            }
        }
        for (name, value) in &from_env {
            if let Ok(key) = name.parse() {
                builder = builder.with_config(key, value);
            }
        }
        for (name, value) in settings {
            let key = name
                .parse()
                .map_err(|_| Error::InvalidInput(format!("{name:?} is not an S3 setting")))?;
            builder = builder.with_config(key, *value);
        }
        let builder = builder.with_bucket_name(&bucket);
        let store = builder
            .build()
            .map_err(|e| Error::InvalidInput(format!("{url}: {e}")))?;
        Ok(Location {
            store: Arc::new(store),
            prefix,
            display: url.to_owned(),
        })
    }

    /// A prefix in an object store built by the caller (for example an
    /// S3 client configured in code). `prefix` is `/`-separated, without
    /// leading or trailing `/`, and may be empty.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Location> {
        check_prefix(prefix, prefix)?;
        Ok(Location {
            display: format!("{store}/{prefix}"),
            store,
            prefix: prefix.to_owned(),
        })
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix (empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `name` (a `/`-separated path) under the prefix.
    pub fn key(&self, name: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }
}

fn check_prefix(url: &str, prefix: &str) -> Result<()> {
    if !prefix.is_empty() && !prefix.split('/').all(plain_segment) {
        return Err(Error::InvalidInput(format!(
            "{url}: the prefix {prefix:?} must be `/`-separated names of letters, digits and . - _ = +"
        )));
    }
    Ok(())
}

/// `s3://bucket/prefix` into the bucket and the prefix.
pub(crate) fn parse_url(url: &str) -> Result<(String, String)> {
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(Error::InvalidInput(format!(
            "{url}: a bucket location is s3://BUCKET/PREFIX"
        )));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok {
        return Err(Error::InvalidInput(format!(
            "{url}: {bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, - and .)"
        )));
    }
    check_prefix(url, prefix)?;
    Ok((bucket.to_owned(), prefix.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://my-bucket/a/b").unwrap(),
            ("my-bucket".into(), "a/b".into())
        );
        assert_eq!(
            parse_url("s3://my-bucket/a/").unwrap(),
            ("my-bucket".into(), "a".into())
        );
        assert_eq!(
            parse_url("s3://my-bucket").unwrap(),
            ("my-bucket".into(), "".into())
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for url in [
            "http://b/p",
            "s3://",
            "s3://UPPER/p",
            "s3://ok-bucket/a//b",
            "s3://ok-bucket/a/../b",
            "s3://ok-bucket/a b",
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(matches!(e, Error::InvalidInput(_)), "{url}: {e}");
        }
    }
}
