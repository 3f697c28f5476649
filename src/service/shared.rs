//! Work a writer shares with the machine's other core while it holds its transaction.
//!
//! The event writer is one thread holding SQLite's one write lock: whatever it computes that
//! needs no database (resolving a batch's events, running the reviews' pipelines) lengthens the
//! time every other batch waits. [`map_while`] hands such work to a scoped helper thread while
//! the writer does its own database work, then the writer joins in on what is left.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items from this many on are worth a thread (a batch's events, the clients it reviews).
const SHARED_FROM: usize = 64;

/// `f` of every item, in order, computed on a helper thread while this thread does `meanwhile`,
/// then on both: each takes the next item not yet taken. Under [`SHARED_FROM`] items,
/// everything runs here, `meanwhile` first (a thread costs more than a few items). An item the
/// helper took but did not finish (it panicked, or none could be spawned) is computed here.
pub fn map_while<T, U, R>(
    name: &str,
    items: &[T],
    f: impl Fn(&T) -> U + Sync,
    meanwhile: impl FnOnce() -> R,
) -> (Vec<U>, R)
where
    T: Sync,
    U: Send,
{
    if items.len() < SHARED_FROM {
        let done = meanwhile();
        return (items.iter().map(&f).collect(), done);
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return out;
            };
            out.push((i, f(item)));
        }
    };
    let (mine, theirs, done) = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(scope, work);
        let done = meanwhile();
        let mine = work();
        let theirs = helper.ok().and_then(|h| h.join().ok()).unwrap_or_default();
        (mine, theirs, done)
    });
    let mut ordered: Vec<Option<U>> = items.iter().map(|_| None).collect();
    for (i, u) in mine.into_iter().chain(theirs) {
        ordered[i] = Some(u);
    }
    let all = ordered
        .into_iter()
        .zip(items)
        .map(|(u, item)| u.unwrap_or_else(|| f(item)))
        .collect();
    (all, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_whoever_computes_it() {
        let items: Vec<u64> = (0..1_000).collect();
        let calls = AtomicUsize::new(0);
        let (squares, done) = map_while(
            "test-helper",
            &items,
            |n| {
                calls.fetch_add(1, Ordering::Relaxed);
                n * n
            },
            || "meanwhile",
        );
        assert_eq!(done, "meanwhile");
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), items.len());
    }

    #[test]
    fn few_items_run_here_after_meanwhile() {
        let order = std::sync::Mutex::new(Vec::new());
        let (out, ()) = map_while(
            "test-helper",
            &[1, 2, 3],
            |n| {
                order.lock().unwrap().push(*n);
                n + 1
            },
            || order.lock().unwrap().push(0),
        );
        assert_eq!(out, [2, 3, 4]);
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    }
}
