//! Whether the database was found away a moment ago. Connection attempts report here; while
//! the database is away, callers get their 503 in [`FAST_TIMEOUT`] instead of each waiting the
//! whole pool timeout, and the first connection that opens again clears it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a caller waits for a connection before asking whether the database is away.
pub const FAST_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a failed connection attempt counts as news.
const WINDOW_MS: u64 = 2_000;

#[derive(Debug, Default)]
pub struct Health {
    /// When a connection attempt last failed, in ms since the Unix epoch; 0 after a success.
    down_since: AtomicU64,
}

impl Health {
    pub fn mark_down(&self) {
        self.down_since.store(now_ms().max(1), Ordering::Relaxed);
    }

    pub fn mark_up(&self) {
        if self.down_since.load(Ordering::Relaxed) != 0 {
            self.down_since.store(0, Ordering::Relaxed);
        }
    }

    pub fn recently_down(&self) -> bool {
        let since = self.down_since.load(Ordering::Relaxed);
        since != 0 && now_ms().saturating_sub(since) < WINDOW_MS
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_until_a_success() {
        let h = Health::default();
        assert!(!h.recently_down());
        h.mark_down();
        assert!(h.recently_down());
        h.mark_up();
        assert!(!h.recently_down());
    }
}
