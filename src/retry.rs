//! How long and how often to try again: the backoff of remote write and remote read
//! (`RetryPolicy`, which honours a receiver's Retry-After) and of Kubernetes API requests.
//! Which answers are worth another try is `answer.rs`.

use std::time::Duration;

use crate::answer::kube_is_transient;
use crate::error::{Result, kube_error};

/// How often a Kubernetes request is tried when its answer is transient: five tries over
/// about ten seconds, so a worker's ledger write survives an API server restart or a burst
/// of conflicts instead of failing the Job and importing the window again.
pub fn kube_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5)
        .with_jitter()
}

/// Sends a request again while the API server's answer is transient (the Kubernetes rows of
/// the retry table), within `retry::kube_backoff`.
pub async fn kube_with_retries<T, F, Fut>(action: String, request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
{
    use backon::Retryable;
    request
        .retry(kube_backoff())
        .when(kube_is_transient)
        .notify(|e, after| tracing::warn!(%action, error = %e, ?after, "Kubernetes API answer is transient; trying again"))
        .await
        .map_err(kube_error(action.clone()))
}

/// How hard to try before giving up on an endpoint: capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 10 retries capped at 30 s ride out about three minutes of trouble: a receiver restart.
        RetryPolicy {
            retries: 10,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retries)
            .with_jitter()
    }

    /// The wait before the next attempt: the receiver's Retry-After when it gave one (bounded,
    /// so a hostile or confused server cannot park us for a day), else the backoff's. `None`
    /// from the backoff means the budget is spent, and Retry-After does not extend it.
    pub fn next_delay(
        &self,
        backoff: Option<Duration>,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let backoff = backoff?;
        Some(retry_after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER)))
    }
}

const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn retry_after_replaces_the_backoff_but_not_the_budget() {
        let policy = RetryPolicy::default();
        let backoff = Some(Duration::from_secs(2));
        assert_eq!(
            policy.next_delay(backoff, Some(Duration::from_secs(9))),
            Some(Duration::from_secs(9))
        );
        assert_eq!(policy.next_delay(backoff, None), backoff);
        assert_eq!(
            policy.next_delay(backoff, Some(Duration::from_secs(86_400))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(policy.next_delay(None, Some(Duration::from_secs(1))), None);
    }
}
