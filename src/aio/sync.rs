//! [`Event::wait_async`] and [`Lock::acquire_async`].

use std::future::poll_fn;
use std::sync::atomic::Ordering::SeqCst;
use std::task::Poll;
use std::time::Instant;

use super::watcher::Sleeper;
use crate::sync::waiters::WAITERS;
use crate::sync::{Event, Lock, LockGuard, SyncError};

/// How often a waiting async acquirer looks at a lock whose holder may have died (a dead
/// holder never runs the release notification; the robust mutex then reports the death to
/// the next `try_acquire`).
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl Event {
    /// Wait until the event is set, as a future: no thread sleeps for it (the process's
    /// futex watcher does, for every waiting call at once; see [`crate::aio`]). For a timeout,
    /// wrap it in `tokio::time::timeout`; dropping it is always safe.
    ///
    /// ```
    /// use multiproc::{Event, Process};
    ///
    /// fn setter(e: Event) { e.set(); }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let e = Event::new()?;
    /// let child = Process::start(setter, e.clone())?;
    /// e.wait_async().await?;
    /// assert!(e.is_set());
    /// child.join_async().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_async(&self) -> Result<(), SyncError> {
        let word = self.flag_word();
        let mut sleeper = Sleeper::default();
        poll_fn(|cx| {
            loop {
                let seen = word.load(SeqCst);
                if self.is_set() {
                    return Poll::Ready(Ok(()));
                }
                // Announce as a blocking waiter does (`sync/waiters.rs`), then sleep on the
                // announced value through the watcher: a `set` after the announcement changes
                // the word and wakes it.
                let announced = seen | WAITERS;
                if seen & WAITERS == 0
                    && word
                        .compare_exchange(seen, announced, SeqCst, SeqCst)
                        .is_err()
                {
                    continue;
                }
                return match sleeper.sleep(cx, word, announced, None, self.clone()) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(SyncError::Io(e))),
                };
            }
        })
        .await
    }
}

impl Lock {
    /// Acquire the lock as a future: no thread sleeps for it (see [`crate::aio`]).
    ///
    /// The guard is the ordinary [`LockGuard`]: the thread that took the lock must release
    /// it, so the guard is not `Send` and a task cannot hold it across an `.await` on a
    /// multi-threaded runtime (the compiler refuses); take it, do the work, drop it. In a
    /// current-thread runtime a task may hold it across an `.await`: another task of the same
    /// thread that wants it then waits (a task that acquires it twice waits forever, as with
    /// any async mutex).
    ///
    /// A holder that dies is detected within 20 ms: the lock is then acquired and
    /// [`LockGuard::owner_died`] says so, as for [`Lock::acquire`]. Dropping the future is
    /// always safe (it holds nothing until it returns the guard).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lock = multiproc::Lock::new()?;
    /// let guard = lock.acquire_async().await?;
    /// assert!(lock.try_acquire().is_err()); // this thread holds it: WouldDeadlock
    /// drop(guard);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire_async(&self) -> Result<LockGuard<'_>, SyncError> {
        let state = self.state().clone();
        let mut sleeper = Sleeper::default();
        poll_fn(move |cx| {
            // `None` while busy: held by another thread (a try finds it taken) or, in a
            // current-thread runtime, by another task of this thread (`WouldDeadlock`).
            let attempt = || match self.try_acquire() {
                Ok(Some(guard)) => Some(Ok(guard)),
                Ok(None) | Err(SyncError::WouldDeadlock) => None,
                Err(e) => Some(Err(e)),
            };
            if let Some(done) = attempt() {
                return Poll::Ready(done);
            }
            // Announce on the release word, then try once more (see
            // `LockState::notify_released` for why no release is missed).
            let word = state.released_word();
            let announced = word.fetch_or(WAITERS, SeqCst) | WAITERS;
            if let Some(done) = attempt() {
                return Poll::Ready(done);
            }
            let poll = Instant::now() + LOCK_POLL;
            match sleeper.sleep(cx, word, announced, Some(poll), state.clone()) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(SyncError::Io(e))),
            }
        })
        .await
    }
}
