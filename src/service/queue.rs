//! Writes to one resource in this process, one at a time.
//!
//! A PUT, PATCH or DELETE reads the resource, computes the new one and writes it if
//! the version is still the one it read (RFC 7644 §3.14 versions; the store checks
//! them). When many requests change one resource at once, all but one find the
//! version changed and start again, and the work done grows with the square of their
//! number. Queued here first, they run in turn: each reads what the previous one
//! wrote. The versions still guard against writers in other processes.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The writes waiting for one resource, in the order they came: each draws a
/// ticket, and the turn passes from ticket to ticket, so none is overtaken by
/// writes that came later and a release wakes only the next in line.
#[derive(Debug, Default)]
struct Line {
    /// The ticket whose turn it is.
    serving: u64,
    /// The next ticket to draw.
    issued: u64,
    /// How to wake each waiting ticket.
    wakers: HashMap<u64, Waker>,
    /// Tickets whose writes went away before their turn.
    gone: BTreeSet<u64>,
}

impl Line {
    /// Ends the current turn: passes it to the next ticket still waiting (woken);
    /// returns whether nobody is left, so the line can go.
    fn advance(&mut self) -> bool {
        self.serving += 1;
        while self.gone.remove(&self.serving) {
            self.serving += 1;
        }
        if let Some(next) = self.wakers.remove(&self.serving) {
            next.wake();
        }
        self.serving >= self.issued
    }
}

/// Resources being written (by type and id), and who waits for each.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    lines: Mutex<HashMap<(String, String), Line>>,
}

impl WriteQueue {
    fn lines(&self) -> MutexGuard<'_, HashMap<(String, String), Line>> {
        // The map stays consistent whatever a panicking holder left undone.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the writes of this process to `id` of `resource_type` that came
    /// before are done; the write holds its turn until the returned value is
    /// dropped. Turns are given in the order writes asked for them.
    pub(crate) fn turn<'q>(&'q self, resource_type: &str, id: &str) -> Turn<'q> {
        Turn {
            queue: self,
            key: (resource_type.to_owned(), id.to_owned()),
            ticket: None,
            done: false,
        }
    }

    /// Ends the turn of `ticket` on `key` (taken, or given but not taken yet).
    fn release(&self, key: &(String, String), ticket: u64) {
        let mut lines = self.lines();
        let Some(line) = lines.get_mut(key) else {
            return;
        };
        if line.serving == ticket {
            if line.advance() {
                lines.remove(key);
            }
        } else {
            // Still waiting: its turn is skipped when it comes.
            line.wakers.remove(&ticket);
            line.gone.insert(ticket);
        }
    }

    /// How many resources are being written (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lines().len()
    }
}

/// Waiting for a turn.
#[derive(Debug)]
pub(crate) struct Turn<'q> {
    queue: &'q WriteQueue,
    key: (String, String),
    /// Drawn on the first poll.
    ticket: Option<u64>,
    /// The turn was handed to a [`Held`].
    done: bool,
}

impl<'q> Future for Turn<'q> {
    type Output = Held<'q>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Held<'q>> {
        let queue = self.queue;
        let mut lines = queue.lines();
        let line = lines.entry(self.key.clone()).or_default();
        let ticket = match self.ticket {
            Some(t) => t,
            None => {
                let t = line.issued;
                line.issued += 1;
                t
            }
        };
        let ready = line.serving == ticket;
        if !ready {
            line.wakers.insert(ticket, cx.waker().clone());
        }
        drop(lines);
        self.ticket = Some(ticket);
        if !ready {
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(Held {
            queue,
            key: self.key.clone(),
            ticket,
        })
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // A write that went away while waiting (or before taking the turn it was
        // given) leaves the line moving.
        if let (Some(ticket), false) = (self.ticket, self.done) {
            self.queue.release(&self.key, ticket);
        }
    }
}

/// A turn: the resource is this write's until it is dropped.
#[derive(Debug)]
pub(crate) struct Held<'q> {
    queue: &'q WriteQueue,
    key: (String, String),
    ticket: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.queue.release(&self.key, self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<'q>(turn: &mut Turn<'q>, waker: &Waker) -> Poll<Held<'q>> {
        Pin::new(turn).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn one_write_at_a_time_per_resource() {
        let queue = WriteQueue::default();
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&woken));
        let Poll::Ready(first) = poll(&mut queue.turn("User", "a"), &waker) else {
            panic!("a free resource is taken at once");
        };
        // Another resource is not held up.
        let Poll::Ready(other) = poll(&mut queue.turn("User", "b"), &waker) else {
            panic!("another resource is free");
        };
        let mut second = queue.turn("User", "a");
        assert!(poll(&mut second, &waker).is_pending());
        assert!(poll(&mut second, &waker).is_pending());
        // A waiter that goes away takes nothing with it.
        let mut gone = queue.turn("User", "a");
        assert!(poll(&mut gone, &waker).is_pending());
        drop(gone);
        drop(first);
        assert!(woken.0.load(Ordering::SeqCst) >= 1, "the waiter is woken");
        let Poll::Ready(held) = poll(&mut second, &waker) else {
            panic!("the turn passes on");
        };
        drop(held);
        drop(other);
        assert_eq!(queue.len(), 0, "nothing is kept once every write is done");
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        (count, waker)
    }

    #[test]
    fn turns_are_given_in_order_and_wake_only_the_next() {
        let queue = WriteQueue::default();
        let (_, w0) = counter();
        let Poll::Ready(first) = poll(&mut queue.turn("User", "a"), &w0) else {
            panic!("a free resource is taken at once");
        };
        let (c2, w2) = counter();
        let mut second = queue.turn("User", "a");
        assert!(poll(&mut second, &w2).is_pending());
        let (c3, w3) = counter();
        let mut third = queue.turn("User", "a");
        assert!(poll(&mut third, &w3).is_pending());
        // One that goes away while waiting is skipped.
        let (_, w4) = counter();
        let mut leaving = queue.turn("User", "a");
        assert!(poll(&mut leaving, &w4).is_pending());
        drop(leaving);
        let (c5, w5) = counter();
        let mut fifth = queue.turn("User", "a");
        assert!(poll(&mut fifth, &w5).is_pending());

        drop(first);
        assert_eq!(c2.0.load(Ordering::SeqCst), 1, "the next in line is woken");
        assert_eq!(c3.0.load(Ordering::SeqCst), 0, "the others sleep on");
        // A write that comes now does not overtake those waiting.
        let (_, w6) = counter();
        let mut late = queue.turn("User", "a");
        assert!(poll(&mut late, &w6).is_pending());
        assert!(poll(&mut third, &w3).is_pending());
        let Poll::Ready(held) = poll(&mut second, &w2) else {
            panic!("the second has its turn");
        };
        drop(held);
        assert_eq!(c3.0.load(Ordering::SeqCst), 1);
        // Given the turn but gone before taking it: it passes on.
        drop(third);
        assert_eq!(c5.0.load(Ordering::SeqCst), 1, "past the one that left");
        let Poll::Ready(held) = poll(&mut fifth, &w5) else {
            panic!("the fifth has its turn");
        };
        drop(held);
        let Poll::Ready(held) = poll(&mut late, &w6) else {
            panic!("the late one comes last");
        };
        drop(held);
        drop(late);
        drop(second);
        drop(fifth);
        assert_eq!(queue.len(), 0, "nothing is kept once every write is done");
    }
}
