//! Group commit: how concurrent appends on one handle come to share one
//! transaction, and so one sync of the WAL.
//!
//! An append (checked in its caller's thread first) joins the handle's
//! [`Queue`]. If no thread is leading, the caller becomes the leader: it
//! takes the writer connection, then takes from the queue everything
//! waiting — its own append first, then whatever queued while the
//! previous group was being written, up to [`MAX_GROUP_APPENDS`] appends
//! and [`MAX_GROUP_BYTES`] bytes — and the store runs them as one
//! transaction (see `SqliteStore::commit_group`), answering each. Callers
//! that find a leader wait for their answer. Nothing waits to gather a
//! group: an append that arrives alone is taken alone, at once.
//!
//! When the leader has its own answer it hands the lead to the oldest
//! append still waiting (which then takes the group that gathered
//! meanwhile) or, if none waits, gives it up. So the leader's caller
//! returns after one group, and a waiting append is never left without a
//! leader: the lead is only ever given up with the queue empty, and the
//! queue is only ever taken from by the leader.
//!
//! A request that is dropped unanswered (the leader panicked while running
//! its group) answers its caller with an error, and a leader that is
//! dropped hands the lead on, so no caller waits for ever.

use std::collections::VecDeque;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use gesta::{AppendOptions, Appended, Error, NewEvent, Result};

/// The most appends one group takes.
pub(crate) const MAX_GROUP_APPENDS: usize = 512;

/// The most bytes of events (data and metadata) one group takes, unless
/// its first append alone has more.
pub(crate) const MAX_GROUP_BYTES: usize = 16 << 20;

/// Where a waiting caller's answer comes.
#[derive(Default)]
struct Reply {
    answer: Mutex<Answer>,
    ready: Condvar,
}

#[derive(Default)]
enum Answer {
    /// Not answered yet.
    #[default]
    Waiting,
    /// The caller is to lead (its append is first in the queue).
    Lead,
    /// The append's outcome.
    Done(Result<Appended>),
    /// The request was dropped unanswered.
    Abandoned,
}

impl Reply {
    fn set(&self, answer: Answer) {
        *self.answer.lock() = answer;
        self.ready.notify_one();
    }

    /// Waits for the outcome, or for the lead (`None`).
    fn wait(&self, path: &Path) -> Option<Result<Appended>> {
        let mut answer = self.answer.lock();
        loop {
            match mem::take(&mut *answer) {
                Answer::Waiting => self.ready.wait(&mut answer),
                Answer::Lead => return None,
                Answer::Done(outcome) => return Some(outcome),
                Answer::Abandoned => {
                    return Some(Err(Error::Io {
                        path: path.to_owned(),
                        source: std::io::Error::other(
                            "the append's group was abandoned before it was answered",
                        ),
                    }));
                }
            }
        }
    }
}

/// One append in the queue: its events and options, and where its caller
/// waits.
pub(crate) struct Request {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) options: AppendOptions,
    reply: Option<Arc<Reply>>,
}

impl Request {
    /// Bytes of its events' data and metadata.
    fn bytes(&self) -> usize {
        self.events
            .iter()
            .map(|e| e.data.len() + e.metadata.len())
            .sum()
    }

    /// Gives the caller its outcome.
    pub(crate) fn answer(mut self, outcome: Result<Appended>) {
        if let Some(reply) = self.reply.take() {
            reply.set(Answer::Done(outcome));
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            reply.set(Answer::Abandoned);
        }
    }
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Request>,
    /// Whether a thread leads. When not, `waiting` is empty.
    leading: bool,
}

/// The appends waiting for the writer of one handle.
pub(crate) struct Queue {
    /// The database file, for errors.
    path: PathBuf,
    state: Mutex<State>,
}

/// What joining the queue gave the caller.
pub(crate) enum Joined<'q> {
    /// Another thread's group carried the append: its outcome.
    Done(Result<Appended>),
    /// The caller leads the next group.
    Lead(Leader<'q>),
}

impl Queue {
    /// The queue of the handle on `path`.
    pub(crate) fn new(path: &Path) -> Queue {
        Queue {
            path: path.to_owned(),
            state: Mutex::default(),
        }
    }

    /// How many appends wait for a group.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().waiting.len()
    }

    /// Queues an append, then waits for its outcome unless the caller is
    /// to lead.
    pub(crate) fn join(&self, events: Vec<NewEvent>, options: AppendOptions) -> Joined<'_> {
        let reply = Arc::new(Reply::default());
        let lead = {
            let mut state = self.state.lock();
            state.waiting.push_back(Request {
                events,
                options,
                reply: Some(reply.clone()),
            });
            !mem::replace(&mut state.leading, true)
        };
        if !lead && let Some(outcome) = reply.wait(&self.path) {
            return Joined::Done(outcome);
        }
        Joined::Lead(Leader { queue: self, reply })
    }
}

/// The thread that runs the next group; see the [module](self) docs.
pub(crate) struct Leader<'q> {
    queue: &'q Queue,
    /// The leader's own append's reply.
    reply: Arc<Reply>,
}

impl Leader<'_> {
    /// The appends of the group, oldest first (the leader's own is the
    /// first: it was first in the queue when the lead came to it).
    pub(crate) fn take(&self) -> Vec<Request> {
        let mut state = self.queue.state.lock();
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(next) = state.waiting.front() {
            let size = next.bytes();
            let full = group.len() >= MAX_GROUP_APPENDS || bytes + size > MAX_GROUP_BYTES;
            if !group.is_empty() && full {
                break;
            }
            bytes += size;
            group.extend(state.waiting.pop_front());
        }
        group
    }

    /// Hands the lead on, and returns the leader's own outcome (which the
    /// group it took answered).
    pub(crate) fn finish(self) -> Result<Appended> {
        let (reply, queue) = (self.reply.clone(), self.queue);
        drop(self);
        // The group the leader took held its own append, and answered it.
        reply.wait(&queue.path).unwrap_or_else(|| {
            Err(Error::Io {
                path: queue.path.clone(),
                source: std::io::Error::other("the append was not in the group its caller led"),
            })
        })
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut state = self.queue.state.lock();
        match state.waiting.front() {
            Some(next) => {
                if let Some(reply) = &next.reply {
                    reply.set(Answer::Lead);
                }
            }
            None => state.leading = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append() -> (Vec<NewEvent>, AppendOptions) {
        (vec![NewEvent::new("A", "x")], AppendOptions::new())
    }

    /// A caller alone leads at once, takes its own append alone, and gives
    /// the lead up.
    #[test]
    fn a_lone_append_leads_its_own_group() {
        let queue = Queue::new(Path::new("events.db"));
        for round in 0..3u64 {
            let (events, options) = append();
            let Joined::Lead(leader) = queue.join(events, options) else {
                panic!("a lone caller leads");
            };
            let group = leader.take();
            assert_eq!(group.len(), 1);
            for r in group {
                r.answer(Ok(Appended {
                    first: round,
                    last: round,
                }));
            }
            assert_eq!(leader.finish().expect("answered").first, round);
            assert!(!queue.state.lock().leading);
        }
    }

    /// Appends that queue while a leader runs its group are answered by
    /// the next group, led by the oldest of them; none is left waiting.
    #[test]
    fn appends_queued_meanwhile_form_the_next_group() {
        let queue = Arc::new(Queue::new(Path::new("events.db")));
        let (events, options) = append();
        let Joined::Lead(first) = queue.join(events, options) else {
            panic!("a lone caller leads");
        };
        let mine = first.take();
        assert_eq!(mine.len(), 1);
        let waiters: Vec<_> = (0..8)
            .map(|i| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    let (events, options) = append();
                    match queue.join(events, options) {
                        Joined::Done(outcome) => (outcome.expect("ok").first, 0),
                        Joined::Lead(leader) => {
                            let group = leader.take();
                            let n = group.len();
                            for r in group {
                                r.answer(Ok(Appended { first: i, last: i }));
                            }
                            (leader.finish().expect("ok").first, n)
                        }
                    }
                })
            })
            .collect();
        // Let them queue behind the running group.
        while queue.state.lock().waiting.len() < 8 {
            std::thread::yield_now();
        }
        for r in mine {
            r.answer(Ok(Appended {
                first: 99,
                last: 99,
            }));
        }
        assert_eq!(first.finish().expect("ok").first, 99);
        let results: Vec<(u64, usize)> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
        let led: Vec<usize> = results.iter().map(|r| r.1).filter(|&n| n > 0).collect();
        assert_eq!(led, [8], "one leader took all eight: {results:?}");
        assert!(!queue.state.lock().leading);
    }

    /// A group dropped unanswered (its leader panicked) answers every
    /// caller with an error and hands the lead on.
    #[test]
    fn an_abandoned_group_answers_with_errors() {
        let queue = Arc::new(Queue::new(Path::new("events.db")));
        let (events, options) = append();
        let Joined::Lead(first) = queue.join(events, options) else {
            panic!("a lone caller leads");
        };
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let (events, options) = append();
                match queue.join(events, options) {
                    Joined::Done(outcome) => outcome.is_err(),
                    Joined::Lead(leader) => {
                        drop(leader.take());
                        leader.finish().is_err()
                    }
                }
            })
        };
        while queue.state.lock().waiting.len() < 2 {
            std::thread::yield_now();
        }
        drop(first.take());
        assert!(first.finish().is_err());
        assert!(waiter.join().unwrap());
        assert!(!queue.state.lock().leading);
    }
}
