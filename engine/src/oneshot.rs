//! A one-shot reply slot: the committer answers each caller through one.
//!
//! A waiting caller parks on a condition variable. Only a caller told to
//! (a lone writer, see `Store::append_with`) spins for its answer first:
//! with many writers on few cores, spinning callers would take the CPU the
//! committer needs to finish the group they are waiting for. An async
//! caller polls the slot instead and leaves a waker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

enum State<T> {
    Waiting,
    Sent(T),
    /// The sender was dropped without answering.
    Dropped,
    Taken,
}

struct Slot<T> {
    /// Set once the state is no longer `Waiting`, for a caller that spins.
    done: AtomicBool,
    state: Mutex<State<T>>,
    ready: Condvar,
    waker: Mutex<Option<Waker>>,
}

/// The answering half.
pub(crate) struct Sender<T>(Option<Arc<Slot<T>>>);

/// The waiting half.
pub(crate) struct Receiver<T>(Arc<Slot<T>>);

/// A new reply slot.
pub(crate) fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        done: AtomicBool::new(false),
        state: Mutex::new(State::Waiting),
        ready: Condvar::new(),
        waker: Mutex::new(None),
    });
    (Sender(Some(slot.clone())), Receiver(slot))
}

impl<T> Sender<T> {
    /// Answers; the receiver may already be gone, which is fine.
    pub(crate) fn send(mut self, value: T) {
        if let Some(slot) = self.0.take() {
            *slot.state.lock() = State::Sent(value);
            slot.done.store(true, Ordering::Release);
            slot.ready.notify_one();
            if let Some(w) = slot.waker.lock().take() {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            *slot.state.lock() = State::Dropped;
            slot.done.store(true, Ordering::Release);
            slot.ready.notify_one();
            if let Some(w) = slot.waker.lock().take() {
                w.wake();
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Waits for the answer; `None` if the sender was dropped unanswered.
    pub(crate) fn recv(self) -> Option<T> {
        self.recv_spinning(Duration::ZERO)
    }

    /// [`recv`](Self::recv), spinning up to `spin` for the answer before
    /// it parks.
    pub(crate) fn recv_spinning(self, spin: Duration) -> Option<T> {
        gesta_wal::time::spin_until(spin, || self.0.done.load(Ordering::Acquire));
        let mut state = self.0.state.lock();
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Sent(v) => return Some(v),
                State::Dropped | State::Taken => return None,
                State::Waiting => {
                    *state = State::Waiting;
                    self.0.ready.wait(&mut state);
                }
            }
        }
    }

    /// The answer if it is there; otherwise leaves the task's waker.
    /// `Ready(None)` if the sender was dropped unanswered (or the answer
    /// was already taken).
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // The waker goes in before the state is looked at, so that an
        // answer sent in between wakes the task rather than being missed.
        *self.0.waker.lock() = Some(cx.waker().clone());
        let mut state = self.0.state.lock();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Sent(v) => Poll::Ready(Some(v)),
            State::Dropped | State::Taken => Poll::Ready(None),
            State::Waiting => {
                *state = State::Waiting;
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_across_threads() {
        let (tx, rx) = oneshot();
        let t = std::thread::spawn(move || tx.send(42));
        assert_eq!(rx.recv(), Some(42));
        t.join().unwrap();
    }

    #[test]
    fn a_dropped_sender_ends_the_wait() {
        let (tx, rx) = oneshot::<u32>();
        let t = std::thread::spawn(move || drop(tx));
        assert_eq!(rx.recv(), None);
        t.join().unwrap();
    }

    /// A spinning caller gets an answer sent while it spins, one sent after
    /// its spin ran out (it parked), and the end of a dropped sender.
    #[test]
    fn a_spinning_caller_gets_its_answer_early_or_late() {
        let (tx, rx) = oneshot();
        let t = std::thread::spawn(move || tx.send(1));
        assert_eq!(rx.recv_spinning(Duration::from_secs(60)), Some(1));
        t.join().unwrap();

        let (tx, rx) = oneshot();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(2)
        });
        assert_eq!(rx.recv_spinning(Duration::from_micros(100)), Some(2));
        t.join().unwrap();

        let (tx, rx) = oneshot::<u32>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            drop(tx)
        });
        assert_eq!(rx.recv_spinning(Duration::from_micros(100)), None);
        t.join().unwrap();
    }

    #[test]
    fn sending_to_a_dropped_receiver_is_harmless() {
        let (tx, rx) = oneshot();
        drop(rx);
        tx.send(1);
    }
}
