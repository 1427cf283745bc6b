//! Pacing to a receiver's ingestion rate limit. Cortex and Mimir limit samples per second per
//! tenant (Cortex's default: 25 000/s, burst 50 000) and answer 429 above it; sending faster
//! only adds refused requests. One `Pacer` per destination and tenant is shared by every window
//! of a run: it learns the limit from the 429 that names it, sends at a little under it, backs
//! off further while 429s continue (live data into the same tenant uses the limit too) and
//! creeps back up while requests pass. `--max-samples-per-second` caps it by choice.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::answer::RateLimit;

/// Fraction of a named limit to aim at: the receiver's token bucket refills continuously, so
/// a pace just under the limit is never refused for rate once the first burst is spent.
const AIM: f64 = 0.9;
/// Each 429 while paced cuts the pace by this factor; each accepted request raises it by
/// `RECOVER`, up to the aim.
const BACK_OFF: f64 = 0.8;
const RECOVER: f64 = 1.05;
/// The pace never drops below this share of the named limit, so a tenant shared with heavy
/// live traffic slows the import down without stopping it.
const FLOOR: f64 = 0.05;

pub struct Pacer {
    /// The user's cap in samples per second (`--max-samples-per-second`).
    cap: Option<f64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Samples per second now; `None` while no limit is known and no cap is set.
    pace: Option<f64>,
    /// The receiver's limit, once a 429 named it.
    limit: Option<RateLimit>,
    /// When the next request may start: requests are spaced by their size over the pace.
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(cap: Option<f64>) -> Self {
        Pacer {
            cap,
            state: Mutex::new(State {
                pace: cap,
                ..State::default()
            }),
        }
    }

    /// Waits until a request of `samples` may be sent at the current pace; returns how long.
    pub async fn admit(&self, samples: u64) -> Duration {
        let start = {
            let mut state = self.lock();
            let Some(pace) = state.pace else {
                return Duration::ZERO;
            };
            let now = Instant::now();
            let start = state.next.map_or(now, |next| next.max(now));
            state.next = Some(start + Duration::from_secs_f64(samples as f64 / pace));
            start
        };
        let waited = start.saturating_duration_since(Instant::now());
        tokio::time::sleep_until(start).await;
        waited
    }

    /// A request of `samples` got a 429 naming `limit`: aim under the limit (lower each time
    /// it repeats), and let the refused request wait for the tokens it needs before it is
    /// sent again, instead of meeting an empty bucket at once.
    pub fn throttled(&self, limit: RateLimit, samples: u64) {
        let mut state = self.lock();
        let ceiling = self.ceiling(limit);
        let pace = match (state.limit, state.pace) {
            (Some(_), Some(pace)) => pace * BACK_OFF,
            _ => ceiling,
        };
        // A cap under the floor still wins: the user's cap is a promise to the receiver.
        let pace = pace.max(limit.rate * FLOOR).min(ceiling);
        state.pace = Some(pace);
        state.limit = Some(limit);
        let now = Instant::now();
        let next = state.next.map_or(now, |next| next.max(now));
        state.next = Some(next + Duration::from_secs_f64(samples as f64 / pace));
    }

    /// An accepted request: recover towards the aim.
    pub fn accepted(&self) {
        let mut state = self.lock();
        if let (Some(limit), Some(pace)) = (state.limit, state.pace) {
            state.pace = Some((pace * RECOVER).min(self.ceiling(limit)));
        }
    }

    /// The limit the receiver named, if any did.
    pub fn limit(&self) -> Option<RateLimit> {
        self.lock().limit
    }

    fn ceiling(&self, limit: RateLimit) -> f64 {
        let aim = limit.rate * AIM;
        self.cap.map_or(aim, |cap| cap.min(aim))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few numbers, each written whole: a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cortex_default() -> RateLimit {
        RateLimit {
            rate: 25_000.0,
            burst: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_or_a_cap_nothing_waits() {
        let pacer = Pacer::new(None);
        for _ in 0..100 {
            assert_eq!(pacer.admit(10_000).await, Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cap_spaces_requests_by_their_size() {
        let pacer = Pacer::new(Some(1_000.0));
        let started = Instant::now();
        for _ in 0..5 {
            pacer.admit(500).await;
        }
        // Five requests of 500 at 1000/s: the fifth starts 2 s after the first.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_limit_sets_the_pace_under_it_and_repeats_lower_it_to_a_floor() {
        let pacer = Pacer::new(None);
        let started = Instant::now();
        pacer.throttled(cortex_default(), 22_500);
        for _ in 0..10 {
            pacer.admit(22_500).await;
        }
        // 22 500 at 22 500/s (0.9 of the limit), after the refused request's own second: the
        // tenth starts 10 s after the refusal.
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        for _ in 0..100 {
            pacer.throttled(cortex_default(), 1);
        }
        let pace = pacer.lock().pace.unwrap();
        assert!((pace - 25_000.0 * FLOOR).abs() < 1e-6, "{pace}");
        for _ in 0..1000 {
            pacer.accepted();
        }
        assert!((pacer.lock().pace.unwrap() - 22_500.0).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cap_below_the_limit_wins() {
        let pacer = Pacer::new(Some(5_000.0));
        pacer.throttled(cortex_default(), 1);
        for _ in 0..50 {
            pacer.accepted();
        }
        assert_eq!(pacer.lock().pace, Some(5_000.0));
        assert_eq!(pacer.limit(), Some(cortex_default()));
    }
}
