//! [`wait`]: wait for some or all of a set of futures ([`ReturnWhen`]).

use std::sync::Arc;
use std::time::Duration;

use crate::pool::Watch;

use super::PoolFuture;

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
///
/// ```
/// use multiproc::executor::{ProcessPoolExecutor, ReturnWhen, wait};
/// fn check(x: i32) -> i32 { assert!(x >= 0, "negative input"); x }
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = vec![ex.submit(check, -1)?, ex.submit(check, 1)?];
/// // FirstException: back as soon as one fails (or when all are done).
/// let w = wait(&futures, None, ReturnWhen::FirstException);
/// assert!(w.done.iter().any(|f| f.successful() == Some(false)));
/// assert_eq!(ReturnWhen::default(), ReturnWhen::AllCompleted);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any future is done (or cancelled).
    FirstCompleted,
    /// As soon as any future fails (not counting cancelled ones), or when all are done.
    FirstException,
    /// When all are done.
    #[default]
    AllCompleted,
}

/// What [`wait`] found: the futures done and those not done, each in the given order, each
/// future once (even if it was given more than once).
///
/// ```
/// use multiproc::executor::{ProcessPoolExecutor, ReturnWhen, Waited, wait};
/// fn square(x: u64) -> u64 { x * x }
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = (1..=3).map(|x| ex.submit(square, x)).collect::<Result<Vec<_>, _>>()?;
/// let Waited { done, not_done } = wait(&futures, None, ReturnWhen::AllCompleted);
/// assert_eq!((done.len(), not_done.len()), (3, 0));
/// assert!(done.iter().zip(&futures).all(|(d, f)| d.id() == f.id())); // in the given order
/// let total = futures.into_iter().map(|f| f.result()).sum::<Result<u64, _>>()?;
/// assert_eq!(total, 14);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[derive(Debug)]
pub struct Waited<'a, R> {
    /// Done: finished, failed or cancelled.
    pub done: Vec<&'a PoolFuture<R>>,
    /// Not done when `wait` returned.
    pub not_done: Vec<&'a PoolFuture<R>>,
}

/// Wait for some or all of `futures` (Python's `concurrent.futures.wait`), at most
/// `timeout`; what is done and what is not.
///
/// ```
/// use multiproc::executor::{ProcessPoolExecutor, ReturnWhen, wait};
/// use std::time::Duration;
///
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = vec![ex.submit(nap, 10)?, ex.submit(nap, 2_000)?];
/// let first = wait(&futures, None, ReturnWhen::FirstCompleted);
/// assert_eq!((first.done.len(), first.not_done.len()), (1, 1));
/// let all = wait(&futures, Some(Duration::from_secs(30)), ReturnWhen::AllCompleted);
/// assert_eq!(all.done.len(), 2);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
pub fn wait<'a, R: 'a>(
    futures: impl IntoIterator<Item = &'a PoolFuture<R>>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> Waited<'a, R> {
    let deadline = crate::deadline::after_opt(timeout);
    // A future given twice counts once (Python returns sets).
    let mut seen = std::collections::HashSet::new();
    let futures: Vec<&PoolFuture<R>> = futures
        .into_iter()
        .filter(|f| seen.insert(Arc::as_ptr(&f.cell)))
        .collect();
    // Every future reports its completion to the watch exactly once (at once if done):
    // count them as they come, O(1) each.
    let watch = Arc::new(Watch::default());
    for (key, f) in futures.iter().enumerate() {
        f.cell.watch(&watch, key);
    }
    let mut done = 0;
    loop {
        let enough = match return_when {
            ReturnWhen::FirstCompleted => done > 0 || futures.is_empty(),
            ReturnWhen::FirstException | ReturnWhen::AllCompleted => done == futures.len(),
        };
        if enough {
            break;
        }
        let Some(key) = watch.next(deadline) else {
            break;
        };
        done += 1;
        let f = futures[key];
        if return_when == ReturnWhen::FirstException
            && f.cell.failed() == Some(true)
            && !f.cancelled()
        {
            break;
        }
    }
    for f in &futures {
        f.cell.unwatch(&watch);
    }
    let (done, not_done) = futures.into_iter().partition(|f| f.done());
    Waited { done, not_done }
}
