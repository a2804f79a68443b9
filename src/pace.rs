//! Pacing per destination: a token bucket. Pure arithmetic on instants given by the caller,
//! so tests control time.
//!
//! Invariant: over any window of length T, at most `burst + rate × T` messages pass.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Pace {
    /// Messages per second; `None` is unlimited.
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pace {
    /// A full bucket.
    pub fn new(rate: Option<f64>, burst: u32, now: Instant) -> Pace {
        let burst = f64::from(burst.max(1));
        Pace {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn settings(&self) -> (Option<f64>, u32) {
        (self.rate, self.burst as u32)
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        }
        self.last = now;
    }

    /// How long to wait before the next message may go.
    pub fn delay(&mut self, now: Instant) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate)
        }
    }

    /// Spends one token (call after `delay` has passed).
    pub fn take(&mut self, now: Instant) {
        if self.rate.is_some() {
            self.refill(now);
            self.tokens = (self.tokens - 1.0).max(-self.burst);
        }
    }

    /// Spends every token, so nothing goes before the bucket refills (after a 429).
    pub fn drain(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` messages as fast as the bucket allows; returns the send times (seconds).
    fn schedule(rate: f64, burst: u32, n: usize) -> Vec<f64> {
        let start = Instant::now();
        let mut now = start;
        let mut pace = Pace::new(Some(rate), burst, now);
        let mut times = Vec::new();
        for _ in 0..n {
            now += pace.delay(now);
            pace.take(now);
            times.push(now.duration_since(start).as_secs_f64());
        }
        times
    }

    #[test]
    fn twenty_messages_at_one_per_second_take_nineteen_seconds() {
        let times = schedule(1.0, 1, 20);
        assert!((times[19] - 19.0).abs() < 1e-6, "{times:?}");
        assert!(times.windows(2).all(|w| w[1] - w[0] >= 1.0 - 1e-6));
    }

    #[test]
    fn a_burst_goes_at_once_then_the_rate_applies() {
        let times = schedule(1.0, 3, 6);
        assert_eq!(&times[..3], &[0.0, 0.0, 0.0]);
        assert!(
            (times[3] - 1.0).abs() < 1e-6 && (times[5] - 3.0).abs() < 1e-6,
            "{times:?}"
        );
    }

    #[test]
    fn never_more_than_burst_plus_rate_times_window() {
        let times = schedule(2.5, 4, 200);
        for (i, t0) in times.iter().enumerate() {
            for window in [0.5, 1.0, 3.0, 10.0] {
                let n = times[i..].iter().take_while(|t| **t < t0 + window).count() as f64;
                assert!(n <= 4.0 + 2.5 * window + 1e-9, "{n} in {window}s from {t0}");
            }
        }
    }

    #[test]
    fn unlimited_never_waits_and_drain_empties_the_bucket() {
        let now = Instant::now();
        let mut free = Pace::new(None, 1, now);
        for _ in 0..1000 {
            assert_eq!(free.delay(now), Duration::ZERO);
            free.take(now);
        }
        let mut p = Pace::new(Some(1.0), 5, now);
        p.drain(now);
        assert_eq!(p.delay(now), Duration::from_secs(1));
    }
}
