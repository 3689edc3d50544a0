//! Deadlines: a timeout turned into a point on the monotonic clock.
//!
//! Every timed wait in the crate goes through [`after`], so a timeout has one meaning
//! everywhere: a duration too large to add to the clock (`Duration::MAX`, or anything past
//! the clock's range) means *no deadline*, i.e. wait forever, never an overflow panic.
//! Deadlines are [`Instant`]s, which are monotonic: a step of the wall clock neither
//! stretches nor shortens a wait.

use std::time::{Duration, Instant};

/// The deadline `timeout` from now, or `None` (wait forever) if it lies past the clock's range.
pub(crate) fn after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// [`after`] for an optional timeout (`None`: wait forever).
pub(crate) fn after_opt(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(after)
}

/// Time left until `deadline` (`None`: forever); zero once it has passed.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_mean_no_deadline() {
        assert_eq!(after(Duration::MAX), None);
        assert_eq!(after_opt(Some(Duration::from_secs(u64::MAX))), None);
        assert_eq!(after_opt(None), None);
        assert_eq!(remaining(None), None);
    }

    #[test]
    fn ordinary_timeouts_are_deadlines() {
        let d = after(Duration::from_secs(1)).expect("a second fits");
        let left = remaining(Some(d)).expect("a deadline");
        assert!(left <= Duration::from_secs(1));
        assert_eq!(
            remaining(Some(Instant::now() - Duration::from_millis(1))),
            Some(Duration::ZERO)
        );
    }
}
