//! Time as the engine sees it: whole seconds since the Unix epoch, from an injected [`Clock`].
//!
//! Every decision that depends on time (greylist delay, expiry, rate windows, ban lengths) takes
//! its "now" from a `Clock`, never from the system directly (clippy.toml forbids
//! `SystemTime::now` elsewhere), so tests drive time with [`FakeClock`] and never sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Seconds since 1970-01-01T00:00:00Z. Second resolution is what greylisting, rate windows and
/// bans need, and it keeps stored entries small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// This time plus `d` (saturating; sub-second parts are dropped).
    pub fn plus(self, d: Duration) -> UnixTime {
        UnixTime(self.0.saturating_add(d.as_secs()))
    }

    /// Seconds elapsed from `earlier` to `self`, zero if `earlier` is in the future.
    pub fn since(self, earlier: UnixTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> UnixTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(secs)
    }
}

/// A clock that only moves when told to; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    secs: Arc<AtomicU64>,
}

impl FakeClock {
    /// A fake clock set to `start`.
    pub fn new(start: UnixTime) -> Self {
        FakeClock {
            secs: Arc::new(AtomicU64::new(start.0)),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.secs.fetch_add(d.as_secs(), Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.secs.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.secs.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(UnixTime(1000));
        assert_eq!(c.now(), UnixTime(1000));
        c.advance(Duration::from_secs(300));
        assert_eq!(c.now(), UnixTime(1300));
        assert_eq!(c.now().since(UnixTime(1000)), 300);
        assert_eq!(UnixTime(5).since(UnixTime(10)), 0);
    }
}
