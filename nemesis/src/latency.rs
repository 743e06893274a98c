//! Login latency per shard around the master freezes: users of the frozen master's shard
//! against users of the other shards, in the window before each freeze (logins begun and ended
//! in it) and during it (logins begun while the master was frozen). A login
//! is a begin and its answer (or a begin that got no challenge); a refusal counts with the time
//! it took, and the share of attempts without a verdict is given beside.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::storm::Sample;

/// The "before" window: this long before each freeze, ms.
pub const BEFORE_MS: u64 = 2_000;

/// One group's figures.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Figures {
    /// Attempts.
    pub n: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The slowest, ms: the storm is a closed loop (a user waits for each answer), so a stall
    /// gives one sample per user in it and the p99 can hide it; the slowest does not.
    pub max_ms: f64,
    /// Share of attempts without a verdict (refused or lost), %.
    pub unjudged_pct: f64,
}

fn figures(mut took_us: Vec<u64>, unjudged: usize) -> Figures {
    took_us.sort_unstable();
    let n = took_us.len();
    let at = |q: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        took_us[i] as f64 / 1000.0
    };
    Figures {
        n,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        unjudged_pct: if n == 0 {
            0.0
        } else {
            100.0 * unjudged as f64 / n as f64
        },
    }
}

/// The four groups.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ShardLatency {
    /// How many freezes the figures cover.
    pub freezes: usize,
    /// The frozen shard's users, before.
    pub frozen_before: Figures,
    /// The frozen shard's users, during the freeze.
    pub frozen_during: Figures,
    /// The other shards' users, before.
    pub others_before: Figures,
    /// The other shards' users, during the freeze.
    pub others_during: Figures,
}

/// The figures of `samples` around `freezes` (`[fault, heal)` in ms, and the frozen shards).
pub fn around_freezes(samples: &[Sample], freezes: &[(u64, u64, BTreeSet<usize>)]) -> ShardLatency {
    // [frozen?][during?]: times and attempts without a verdict.
    let mut groups: [[(Vec<u64>, usize); 2]; 2] = Default::default();
    for s in samples {
        for (from, to, frozen) in freezes {
            let during = (*from..*to).contains(&s.t_ms);
            // Before: begun and ended before the freeze (one in flight when it began is the
            // freeze's, not the calm's).
            let ended = s.t_ms.saturating_add(s.took_us / 1000);
            let before = (from.saturating_sub(BEFORE_MS)..*from).contains(&s.t_ms) && ended < *from;
            if !(during || before) {
                continue;
            }
            let g = &mut groups[usize::from(frozen.contains(&s.shard))][usize::from(during)];
            g.0.push(s.took_us);
            g.1 += usize::from(!s.judged);
        }
    }
    let [[ob, od], [fb, fd]] = groups;
    ShardLatency {
        freezes: freezes.len(),
        frozen_before: figures(fb.0, fb.1),
        frozen_during: figures(fd.0, fd.1),
        others_before: figures(ob.0, ob.1),
        others_during: figures(od.0, od.1),
    }
}

impl ShardLatency {
    /// The summary's table.
    pub fn table(&self) -> String {
        if self.freezes == 0 {
            return "login latency per shard: no master freeze in this run\n".to_owned();
        }
        let row = |name: &str, f: &Figures| {
            format!(
                "  {name:<28} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>11.1}\n",
                f.n, f.p50_ms, f.p99_ms, f.max_ms, f.unjudged_pct
            )
        };
        let mut out = format!(
            "login latency around {} master freeze(s) (begin + answer; before = {} ms before each freeze):\n  {:<28} {:>7} {:>9} {:>9} {:>9} {:>11}\n",
            self.freezes, BEFORE_MS, "group", "logins", "p50 ms", "p99 ms", "max ms", "no verdict %"
        );
        out += &row("frozen shard, before", &self.frozen_before);
        out += &row("frozen shard, during", &self.frozen_during);
        out += &row("other shards, before", &self.others_before);
        out += &row("other shards, during", &self.others_during);
        if self.others_before.p99_ms > 0.0 {
            out += &format!(
                "  other shards' p99 during ÷ before: {:.1}×\n",
                self.others_during.p99_ms / self.others_before.p99_ms
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64, shard: usize, took_ms: u64) -> Sample {
        Sample {
            t_ms,
            shard,
            took_us: took_ms * 1000,
            judged: true,
        }
    }

    #[test]
    fn a_login_in_flight_when_the_freeze_begins_is_not_before_it() {
        let samples = [
            at(9_000, 0, 10),   // frozen shard, before
            at(9_990, 0, 3000), // in flight at the freeze: neither
            at(10_500, 0, 2000),
            at(9_500, 1, 20), // another shard, before
            at(11_000, 1, 4000),
            at(20_000, 1, 1), // outside both windows
        ];
        let freezes = [(10_000, 14_000, BTreeSet::from([0]))];
        let l = around_freezes(&samples, &freezes);
        assert_eq!((l.frozen_before.n, l.frozen_during.n), (1, 1));
        assert_eq!((l.others_before.n, l.others_during.n), (1, 1));
        assert_eq!(l.others_during.p99_ms, 4000.0);
        assert_eq!(l.frozen_during.max_ms, 2000.0);
    }
}
