//! The lease of a claim: how long it holds, how often its attempt renews it,
//! and when an attempt that cannot renew must stop, all from the invocation's
//! own deadline (see [`crate::tasks::worker`] for how the worker uses it).

use std::time::Duration;

/// Lambda's longest function timeout.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The deadline to work to. One that has passed before the work could start
/// is no real deadline: `cargo lambda watch` (`make dev`) sends 600000, in
/// 1970, for every invocation. That invocation is given Lambda's longest
/// timeout, rather than failing every task it is handed.
pub fn real_deadline(deadline_ms: u64, now_ms: u64) -> u64 {
    if deadline_ms > now_ms {
        deadline_ms
    } else {
        now_ms + LONGEST_TIMEOUT.as_millis() as u64
    }
}

/// How long a claim holds without renewal, and how often it is renewed: a
/// lease spans a tenth of the invocation's time (at least 150 ms, at most
/// 3 s) and is renewed every third of that, at most every half second. With
/// Lambda's 90 s timeout: a lease of 3 s, far inside the minute before
/// Lambda's retry, renewed every half second. The renewal is also where a
/// cancel is noticed: at most a tick plus two writes after it, which the
/// contract's "within a second" needs; the lease stays long enough that a
/// slow DynamoDB answer (up to 2.5 s) does not cost the attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// How often the attempt renews its lease (and notices a cancel).
    pub tick: Duration,
    /// How long a claim or a renewal holds.
    pub span: Duration,
    /// The invocation's deadline, epoch milliseconds: no lease runs past it.
    pub deadline_ms: u64,
}

impl Lease {
    /// The lease of an invocation that has until `deadline_ms`, from `now_ms`.
    pub fn new(now_ms: u64, deadline_ms: u64) -> Self {
        let third_ms = (deadline_ms.saturating_sub(now_ms) / 30).clamp(50, 1000);
        Self {
            tick: Duration::from_millis(third_ms.min(500)),
            span: Duration::from_millis(3 * third_ms),
            deadline_ms,
        }
    }

    /// Where a lease taken or renewed at `now_ms` ends.
    pub fn until(self, now_ms: u64) -> u64 {
        (now_ms + self.span.as_millis() as u64).min(self.deadline_ms)
    }

    /// The renewal interval in milliseconds: the protocol's margins are
    /// counted in it (see [`crate::tasks::protocol`]).
    pub fn tick_ms(self) -> u64 {
        self.tick.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_90_s_invocation_holds_three_seconds_renewed_every_half_second() {
        let lease = Lease::new(0, 90_000);
        assert_eq!(lease.tick, Duration::from_millis(500));
        assert_eq!(lease.until(10_000), 13_000);
        assert_eq!(lease.until(89_000), 90_000, "never past the deadline");
    }

    #[test]
    fn a_short_invocation_holds_a_tenth_of_its_time_renewed_at_a_thirtieth_never_under_50_ms() {
        assert_eq!(Lease::new(0, 3_000).tick, Duration::from_millis(100));
        assert_eq!(Lease::new(0, 3_000).until(1_000), 1_300);
        assert_eq!(Lease::new(0, 600).tick, Duration::from_millis(50));
        assert_eq!(Lease::new(5_000, 0).tick, Duration::from_millis(50));
        assert_eq!(Lease::new(0, 15_000).tick, Duration::from_millis(500));
        assert_eq!(Lease::new(0, 15_000).until(0), 1_500);
    }

    #[test]
    fn a_deadline_already_past_is_taken_as_lambdas_longest_timeout() {
        assert_eq!(real_deadline(90_000, 1_000), 90_000);
        assert_eq!(real_deadline(600_000, 1_000_000), 1_900_000);
        assert_eq!(real_deadline(0, 1_000), 901_000);
    }
}
