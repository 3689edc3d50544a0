//! [`Process::wait_async`] and [`Process::join_async`]: the pidfd (and the child's status
//! connection) are pollable, so tokio's reactor waits for them.

use serde::de::DeserializeOwned;

use super::fd;
use crate::process::{Process, ProcessError};

impl<R: DeserializeOwned> Process<R> {
    /// Wait until the child has ended, as a future (its pidfd and status connection wait in
    /// tokio's reactor). Does not consume the handle: for a timeout, wrap it in
    /// `tokio::time::timeout`, then [`join`](Process::join) (which no longer waits) or
    /// [`kill`](Process::kill). Dropping it is always safe.
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)); }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let child = multiproc::Process::start(nap, 60_000)?;
    /// let waited = tokio::time::timeout(Duration::from_millis(20), child.wait_async()).await;
    /// assert!(waited.is_err()); // still running
    /// child.kill()?;
    /// child.wait_async().await?;
    /// assert_eq!(child.exitcode(), Some(-9));
    /// # drop(child.join());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_async(&self) -> Result<(), ProcessError> {
        while let Some(fds) = self.pending_fds()? {
            fd::readable_any(fds).await?;
        }
        Ok(())
    }

    /// Wait for the child to end and return its task's value (see [`join`](Process::join)),
    /// as a future. The child's report is read as it comes, so a large return value does not
    /// hold the child up.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), multiproc::ProcessError> {
    /// let children: Vec<_> = (1..=3).map(|x| multiproc::Process::start(square, x)).collect::<Result<_, _>>()?;
    /// let mut sum = 0;
    /// for child in children {
    ///     sum += child.join_async().await?;
    /// }
    /// assert_eq!(sum, 1 + 4 + 9);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join_async(self) -> Result<R, ProcessError> {
        self.wait_async().await?;
        // Ended and its report read: `join` returns without waiting (apart from flushing the
        // child's last log records, as a blocking join does).
        self.join()
    }
}
