//! What a single-threaded writer has done since it started. Every decision, and on SQLite every
//! event batch, passes through one writer: how much each of its transactions carries and how
//! much of the time it is busy (near all of it means it is the ceiling) are the first figures to
//! read when requests queue (`/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A writer's transactions, the items they carried (decisions, event batches) and its busy time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterCounts {
    pub transactions: u64,
    pub items: u64,
    /// Wall-clock time in transactions (the thread waiting for a core included).
    pub busy_micros: u64,
}

#[derive(Debug, Default)]
pub struct WriterStats {
    transactions: AtomicU64,
    items: AtomicU64,
    busy_micros: AtomicU64,
}

impl WriterStats {
    /// One transaction of `items` that kept the writer busy for `busy`.
    pub fn record(&self, items: usize, busy: Duration) {
        let micros = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.items
            .fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn counts(&self) -> WriterCounts {
        WriterCounts {
            transactions: self.transactions.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            busy_micros: self.busy_micros.load(Ordering::Relaxed),
        }
    }
}
