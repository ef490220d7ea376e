//! The spans a call through the server opens, down to the store's commit
//! path and its background flush: a subscriber that records every span
//! with its parent, installed for the whole process (the committer and
//! the flusher are threads of their own), so this file holds one test.

mod common;

use std::sync::{Arc, Mutex};

use gesta::{AppendOptions, NewEvent};
use gesta_server::client::GestaClient;
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span's name and its parent's.
type Opened = (String, Option<String>);

/// Every span opened, in order.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Opened>>>);

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .push((attrs.metadata().name().to_owned(), parent));
    }
}

impl Spans {
    fn seen(&self, name: &str) -> Vec<Option<String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_opens_spans_down_to_the_commit_path() {
    let spans = Spans::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
        .unwrap();
    let server = common::start().await;
    let mut client = GestaClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    for i in 0..3 {
        let event = NewEvent::new("Traced", format!("{{\"i\":{i}}}")).tag("t:1");
        client
            .append(vec![event], AppendOptions::new())
            .await
            .unwrap();
    }
    server.store.flush_index().unwrap();

    // Each call: a `grpc` span; each append waits in the queue under the
    // call's span (the server runs the append in the call's task).
    let calls = spans.seen("grpc");
    assert!(calls.len() >= 3, "{calls:?}");
    let queued = spans.seen("gesta.append.queue");
    assert_eq!(queued.len(), 3, "{queued:?}");
    assert!(
        queued.iter().all(|p| p.as_deref() == Some("grpc")),
        "{queued:?}"
    );
    // The committer: a span per group, the stages inside it.
    assert!(!spans.seen("gesta.commit").is_empty());
    for stage in ["gesta.admit", "gesta.write_sync", "gesta.publish"] {
        let parents = spans.seen(stage);
        assert!(!parents.is_empty(), "no {stage} span");
        assert!(
            parents.iter().all(|p| p.as_deref() == Some("gesta.commit")),
            "{stage}: {parents:?}"
        );
    }
    assert_eq!(spans.seen("gesta.admit").len(), 3);
    // The background flush the index flush asked for.
    assert!(!spans.seen("gesta.compaction.flush").is_empty());
    server.stop().await;
}
