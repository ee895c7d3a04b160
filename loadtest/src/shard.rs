//! `--shard i/N`: worker i of N runs 1/N of the rate (or of the clients) on its own
//! slice of every keyspace, so N workers together replay the whole scenario and
//! `loadtest merge` combines their histograms exactly.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::scenario::{Load, Scenario};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based, as Kubernetes Indexed Jobs number their pods.
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let form = || format!("{s:?} is not a shard: expected i/N with 0 <= i < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(form)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| form())?,
            n.trim().parse().map_err(|_| form())?,
        );
        if count == 0 || index >= count {
            return Err(form());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// This shard's share of `total` whole units (clients): the remainder goes to the
    /// first shards, so the shares add up to `total`.
    pub fn share(&self, total: usize) -> usize {
        let n = self.count as usize;
        total / n + usize::from((self.index as usize) < total % n)
    }

    /// This shard's slice `[start, start + len)` of a keyspace of `count` keys.
    pub fn keys(&self, count: u64) -> (u64, u64) {
        let n = u64::from(self.count);
        let i = u64::from(self.index);
        let start = count * i / n;
        let end = count * (i + 1) / n;
        if end > start {
            (start, end - start)
        } else {
            // Fewer keys than shards: neighbours share one key.
            (start.min(count.saturating_sub(1)), 1)
        }
    }

    /// The scenario this shard runs: rates divided by N, clients split.
    pub fn apply(&self, scenario: &Scenario) -> Scenario {
        let mut s = scenario.clone();
        let n = f64::from(self.count);
        match &mut s.load {
            Load::Open { stages, .. } => {
                for stage in stages {
                    stage.rate /= n;
                    stage.ramp_to = stage.ramp_to.map(|r| r / n);
                }
            }
            Load::Closed { stages, .. } => {
                for stage in stages {
                    stage.concurrency = self.share(stage.concurrency).max(1);
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "1/0", "a/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().unwrap_err().contains("i/N"), "{bad}");
        }
    }

    #[test]
    fn shares_and_slices_cover_everything_once() {
        for count in [1u32, 2, 3, 7] {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            assert_eq!(shards.iter().map(|s| s.share(10)).sum::<usize>(), 10);
            let mut next = 0;
            for s in &shards {
                let (start, len) = s.keys(1000);
                assert_eq!(start, next, "slices are contiguous");
                next = start + len;
            }
            assert_eq!(next, 1000, "slices cover the keyspace");
        }
    }
}
