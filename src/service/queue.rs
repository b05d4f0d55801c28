//! Writes to one resource in this process, one at a time.
//!
//! A PUT, PATCH or DELETE reads the resource, computes the new one and writes it if
//! the version is still the one it read (RFC 7644 §3.14 versions; the store checks
//! them). When many requests change one resource at once, all but one find the
//! version changed and start again, and the work done grows with the square of their
//! number. Queued here first, they run in turn: each reads what the previous one
//! wrote. The versions still guard against writers in other processes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Resources being written (by type and id), and who waits for each.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    busy: Mutex<HashMap<(String, String), Vec<Waker>>>,
}

impl WriteQueue {
    fn busy(&self) -> MutexGuard<'_, HashMap<(String, String), Vec<Waker>>> {
        // The map stays consistent whatever a panicking holder left undone.
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no other write of this process is at work on `id` of
    /// `resource_type`; the write holds its turn until the returned value is dropped.
    pub(crate) fn turn<'q>(&'q self, resource_type: &str, id: &str) -> Turn<'q> {
        Turn {
            queue: self,
            key: Some((resource_type.to_owned(), id.to_owned())),
        }
    }

    /// How many resources are being written (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.busy().len()
    }
}

/// Waiting for a turn.
#[derive(Debug)]
pub(crate) struct Turn<'q> {
    queue: &'q WriteQueue,
    key: Option<(String, String)>,
}

impl<'q> Future for Turn<'q> {
    type Output = Held<'q>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Held<'q>> {
        let queue = self.queue;
        let Some(key) = self.key.take() else {
            return Poll::Ready(Held { queue, key: None });
        };
        let mut busy = queue.busy();
        match busy.get_mut(&key) {
            None => {
                busy.insert(key.clone(), Vec::new());
                Poll::Ready(Held {
                    queue,
                    key: Some(key),
                })
            }
            Some(waiting) => {
                if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    waiting.push(cx.waker().clone());
                }
                drop(busy);
                self.key = Some(key);
                Poll::Pending
            }
        }
    }
}

/// A turn: the resource is this write's until it is dropped.
#[derive(Debug)]
pub(crate) struct Held<'q> {
    queue: &'q WriteQueue,
    key: Option<(String, String)>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        // Every waiter is woken (one of them takes the turn, the others wait
        // again), so a waiter that went away meanwhile cannot swallow the wake-up.
        let waiting = self.queue.busy().remove(&key);
        for waker in waiting.into_iter().flatten() {
            waker.wake();
        }
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
}
