//! Budgets of places and bytes (`max_in_flight`, `max_buffered_bytes`, connections, ...),
//! taken without waiting: the proxy answers RESOURCE_EXHAUSTED instead of queueing, so a
//! budget is one atomic count. A tokio `Semaphore` would do the same with a waiter list
//! whose lock every release takes; four budgets are taken and given back per request, on
//! the hot path (reports/baseline/proxy.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A count of units (places, bytes) that [`Taken`] shares hand back when dropped.
#[derive(Debug)]
pub(crate) struct Budget {
    left: AtomicUsize,
}

impl Budget {
    /// A budget of `units`.
    pub(crate) fn new(units: usize) -> Arc<Budget> {
        Arc::new(Budget {
            left: AtomicUsize::new(units),
        })
    }

    /// Takes `units` if that many are left; on `false` nothing is taken. Whoever takes
    /// gives back with [`Budget::give_back`], or holds a [`Taken`] instead.
    pub(crate) fn try_take(&self, units: usize) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| left.checked_sub(units))
            .is_ok()
    }

    /// Returns `units` taken with [`Budget::try_take`].
    pub(crate) fn give_back(&self, units: usize) {
        self.left.fetch_add(units, Ordering::AcqRel);
    }

    /// `units` taken and held until the returned share is dropped, or `None` when fewer
    /// are left.
    pub(crate) fn try_hold(self: &Arc<Budget>, units: usize) -> Option<Taken> {
        self.try_take(units).then(|| Taken {
            budget: self.clone(),
            units,
        })
    }

    /// Units not taken now.
    #[cfg(test)]
    pub(crate) fn left(&self) -> usize {
        self.left.load(Ordering::Acquire)
    }
}

/// Units taken from a [`Budget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Taken {
    budget: Arc<Budget>,
    units: usize,
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.budget.give_back(self.units);
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn a_share_is_given_back_when_dropped_and_never_overdrawn() {
        let budget = Budget::new(10);
        let held = budget.try_hold(7).expect("7 of 10");
        assert!(budget.try_hold(4).is_none(), "only 3 are left");
        assert!(!budget.try_take(4), "only 3 are left");
        assert_eq!(budget.left(), 3, "a refused take takes nothing");
        assert!(budget.try_take(3), "the last 3");
        assert_eq!(budget.left(), 0);
        budget.give_back(3);
        drop(held);
        assert_eq!(budget.left(), 10);
    }

    #[test]
    fn concurrent_takers_never_hold_more_than_the_budget() {
        let budget = Budget::new(8);
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let (budget, held) = (budget.clone(), held.clone());
                scope.spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(share) = budget.try_hold(3) {
                            let now = held.fetch_add(3, std::sync::atomic::Ordering::SeqCst) + 3;
                            assert!(now <= 8, "{now} units held at once");
                            held.fetch_sub(3, std::sync::atomic::Ordering::SeqCst);
                            drop(share);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.left(), 8);
    }
}
