//! Time as an input. The core never reads the system clock itself: it asks its [`Clock`], which
//! is the system's in production and a [`FakeClock`] in tests (24 hours pass in a microsecond).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time, as a duration since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Duration;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicU64>);

impl FakeClock {
    /// A clock at `start` since the epoch.
    pub fn at(start: Duration) -> FakeClock {
        FakeClock(Arc::new(AtomicU64::new(start.as_micros() as u64)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    /// 2026-11-24T00:00:00Z.
    fn default() -> FakeClock {
        FakeClock::at(Duration::from_secs(1_795_478_400))
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::SeqCst))
    }
}

/// The core's clock handed to governor, so that rate limits follow a fake clock in tests.
#[derive(Debug, Clone)]
pub struct GovernorClock(pub Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.now()
    }
}
