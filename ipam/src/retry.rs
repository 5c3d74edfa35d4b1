//! The one compare-and-swap retry policy of manul-ipam. A CAS loop reads an object, computes
//! the change and writes it with the revision it read; [`CasRetry::lost`] decides what follows
//! a failed write: after a lost race (conflict, a create that found the name taken, an update
//! of something just deleted) a short random pause and a fresh attempt, at most [`RETRIES`]
//! times; any other error ends the loop. No I/O of its own beyond the pause.
//!
//! A struct driven by the caller's `loop` rather than a function taking an async closure: the
//! futures of async closures that borrow their captures are not provably `Send` today
//! (rustc's higher-ranked auto-trait limitation), and IPAM futures run on tokio::spawn.

use std::time::Duration;

use manul_store::StoreError;

use crate::IpamError;

/// Bound on compare-and-swap attempts for one object.
pub(crate) const RETRIES: u32 = 100;

/// Lost races: a conflict, a create that found the name taken, an update of something just
/// deleted.
pub(crate) fn is_retryable(error: &StoreError) -> bool {
    error.is_conflict() || matches!(error, StoreError::NotFound { .. })
}

/// The retry state of one CAS loop; `what` names the operation in `RetriesExhausted`.
pub struct CasRetry<W: FnOnce() -> String> {
    attempt: u32,
    what: Option<W>,
}

impl<W: FnOnce() -> String> CasRetry<W> {
    pub fn new(what: W) -> CasRetry<W> {
        CasRetry {
            attempt: 0,
            what: Some(what),
        }
    }

    /// Called with the error of a failed write. Ok(()) after a pause when the caller should
    /// read again and retry; the error to return otherwise.
    pub async fn lost(&mut self, error: StoreError) -> Result<(), IpamError> {
        if !is_retryable(&error) {
            return Err(error.into());
        }
        self.attempt += 1;
        if self.attempt >= RETRIES {
            let what = self.what.take().map(|what| what()).unwrap_or_default();
            return Err(IpamError::RetriesExhausted { what });
        }
        let ceiling = u64::from(self.attempt.min(8)) + 2;
        let millis = rand::random_range(0..ceiling);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use manul_store::Kind;

    use super::*;

    fn conflict() -> StoreError {
        StoreError::Conflict {
            kind: Kind::IPAMBlock,
            name: "b".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lost_races_are_retried_up_to_the_bound_other_errors_are_not() {
        let mut retry = CasRetry::new(|| "writing b".to_string());
        for _ in 1..RETRIES {
            retry.lost(conflict()).await.unwrap();
        }
        let exhausted = retry.lost(conflict()).await;
        assert!(
            matches!(&exhausted, Err(IpamError::RetriesExhausted { what }) if what == "writing b"),
            "{exhausted:?}"
        );

        let mut retry = CasRetry::new(String::new);
        let other = retry.lost(StoreError::Backend("disk".into())).await;
        assert!(
            matches!(other, Err(IpamError::Store(StoreError::Backend(_)))),
            "{other:?}"
        );
    }
}
