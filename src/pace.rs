//! Pacing per destination: the generic cell rate algorithm (GCRA), a token bucket kept as a
//! single timestamp so it fits in one shared row that every replica updates under a lock.
//! Pure arithmetic on the times the caller gives, so tests control time.
//!
//! Invariant: over any window of length T, at most `burst + rate × T` sends are admitted, and
//! none before a 429's pause (`blocked_until`) has passed.

use crate::store::{PaceState, Pacer};

/// A pacer for a destination's settings (`rate` messages per second, `None` unlimited).
pub fn pacer(rate: Option<f64>, burst: u32) -> Pacer {
    Pacer {
        rate: rate.filter(|r| r.is_finite() && *r > 0.0),
        burst: burst.max(1),
        admit,
        pause,
    }
}

/// Milliseconds between sends at `rate`, rounded up (never faster than asked).
fn interval_ms(rate: f64) -> i64 {
    (1000.0 / rate).ceil().max(1.0) as i64
}

/// Admits a send at `now` (returning the row to store) or says when the next send may go.
pub fn admit(p: &Pacer, state: PaceState, now: i64) -> Result<PaceState, i64> {
    if now < state.blocked_until {
        return Err(state.blocked_until);
    }
    let Some(rate) = p.rate else {
        return Ok(state);
    };
    let t = interval_ms(rate);
    let tolerance = t * (i64::from(p.burst) - 1);
    let earliest = state.tat - tolerance;
    if now < earliest {
        return Err(earliest);
    }
    Ok(PaceState {
        tat: state.tat.max(now) + t,
        ..state
    })
}

/// The row after a 429: nothing goes before `until`, and the burst is spent, so sending
/// resumes at the plain rate (a destination that just said "too many" gets no burst).
pub fn pause(p: &Pacer, state: PaceState, until: i64) -> PaceState {
    let tolerance = p
        .rate
        .map_or(0, |rate| interval_ms(rate) * (i64::from(p.burst) - 1));
    PaceState {
        tat: state.tat.max(until + tolerance),
        blocked_until: state.blocked_until.max(until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` messages as fast as the pacer allows; returns the send times (seconds).
    fn schedule(rate: f64, burst: u32, n: usize) -> Vec<f64> {
        let p = pacer(Some(rate), burst);
        let start = 1_000_000i64;
        let mut now = start;
        let mut state = PaceState::default();
        let mut times = Vec::new();
        while times.len() < n {
            match admit(&p, state, now) {
                Ok(next) => {
                    state = next;
                    times.push((now - start) as f64 / 1000.0);
                }
                Err(at) => {
                    assert!(at > now, "a wait must move time forward");
                    now = at;
                }
            }
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
    fn unlimited_never_waits_but_a_pause_holds_everything() {
        let free = pacer(None, 1);
        let mut s = PaceState::default();
        for _ in 0..1000 {
            s = admit(&free, s, 5).unwrap();
        }
        let paused = pause(&free, s, 2_000);
        assert_eq!(admit(&free, paused, 1_999), Err(2_000));
        assert!(admit(&free, paused, 2_000).is_ok());
        let p = pacer(Some(1.0), 5);
        let paused = pause(&p, PaceState::default(), 10_000);
        assert_eq!(admit(&p, paused, 9_000), Err(10_000));
        // After the pause the burst is spent: one send, then the plain rate.
        let s = admit(&p, paused, 10_000).unwrap();
        assert_eq!(admit(&p, s, 10_000), Err(11_000));
    }

    #[test]
    fn a_zero_or_nonsense_rate_is_unlimited() {
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(pacer(Some(r), 3).rate.is_none(), "{r}");
        }
    }
}
