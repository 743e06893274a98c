//! What one master's `WAIT` rounds found (`durable.rs`): plain data, no I/O. Each master has
//! its own rounds, one at a time, each covering every ticket drawn before it began (group
//! commit per shard); a ticket is judged by the first round of its slot's master that covered
//! it.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Rounds remembered per master (the oldest go first): a ticket whose round was forgotten is
/// refused, never acknowledged by default.
pub(crate) const KEEP: usize = 1024;

/// What one round of one master got.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Its replicas acknowledged everything it had written before the round, and it served
    /// these slot ranges then (by its own `CLUSTER SLOTS`, asked in the same pipeline): a
    /// ticket of another slot is another master's to answer for.
    Acked(Arc<Vec<(u16, u16)>>),
    /// Its replicas fell short, or the round did not reach it: every ticket of its slots the
    /// round covered is refused.
    Short(String),
    /// The round's pipeline ran on another node (the client followed a redirect): it says
    /// nothing of this master; the tickets it covered are judged again by their slot's master
    /// as the map has it now.
    Elsewhere,
}

/// A ticket's verdict by one master's rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judged {
    /// On the replicas.
    Durable,
    /// Not known to be on the replicas: refused (fail closed).
    Refused(String),
    /// Not this master's to answer for: ask the slot's master as the map has it now.
    Elsewhere,
}

/// One master's rounds.
#[derive(Debug, Default)]
pub(crate) struct Rounds {
    /// Every ticket up to this place was covered by a round of this master that ended.
    done_through: u64,
    /// The rounds, by the last place each covered: the last place of the round before, and
    /// what it got.
    ended: BTreeMap<u64, (u64, Outcome)>,
}

impl Rounds {
    /// The verdict on the write at place `seq` in `slot`, if a round of this master that
    /// covered it has ended.
    pub(crate) fn judge(&self, seq: u64, slot: u16) -> Option<Judged> {
        if seq > self.done_through {
            return None;
        }
        let Some((_, (before, outcome))) = self.ended.range(seq..).next() else {
            return Some(forgotten());
        };
        if *before >= seq {
            return Some(forgotten());
        }
        Some(match outcome {
            Outcome::Acked(serves) if serves.iter().any(|(a, b)| (*a..=*b).contains(&slot)) => {
                Judged::Durable
            }
            Outcome::Acked(_) | Outcome::Elsewhere => Judged::Elsewhere,
            Outcome::Short(why) => Judged::Refused(why.clone()),
        })
    }

    /// Notes a round that covered every place up to `upto`.
    pub(crate) fn ended(&mut self, upto: u64, outcome: Outcome) {
        let before = self.done_through;
        if upto <= before {
            return;
        }
        self.done_through = upto;
        self.ended.insert(upto, (before, outcome));
        while self.ended.len() > KEEP {
            self.ended.pop_first();
        }
    }
}

fn forgotten() -> Judged {
    Judged::Refused("the round that covered this write is forgotten".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(ranges: &[(u16, u16)]) -> Outcome {
        Outcome::Acked(Arc::new(ranges.to_vec()))
    }

    #[test]
    fn a_round_answers_for_the_slots_its_master_served_then() {
        let mut r = Rounds::default();
        assert_eq!(r.judge(1, 5), None, "no round yet");
        r.ended(4, acked(&[(0, 99)]));
        r.ended(9, Outcome::Short("0 of 1 replicas acknowledged".into()));
        r.ended(12, acked(&[(0, 49)]));
        r.ended(15, Outcome::Elsewhere);
        assert_eq!(r.judge(3, 5), Some(Judged::Durable));
        assert_eq!(
            r.judge(3, 100),
            Some(Judged::Elsewhere),
            "a slot it did not serve"
        );
        assert!(matches!(r.judge(5, 5), Some(Judged::Refused(_))));
        assert!(matches!(r.judge(9, 5), Some(Judged::Refused(_))));
        assert_eq!(r.judge(10, 5), Some(Judged::Durable));
        assert_eq!(
            r.judge(10, 60),
            Some(Judged::Elsewhere),
            "moved off before the round"
        );
        assert_eq!(r.judge(13, 5), Some(Judged::Elsewhere));
        assert_eq!(r.judge(16, 5), None);
        // A round that began before the last ended covers nothing new.
        r.ended(14, acked(&[(0, 99)]));
        assert_eq!(r.judge(13, 5), Some(Judged::Elsewhere));
    }

    #[test]
    fn a_write_whose_round_was_forgotten_is_refused() {
        let mut r = Rounds::default();
        for i in 0..=KEEP as u64 {
            r.ended(i + 1, acked(&[(0, 0)]));
        }
        assert!(matches!(r.judge(1, 0), Some(Judged::Refused(_))));
        assert_eq!(r.judge(KEEP as u64 + 1, 0), Some(Judged::Durable));
    }
}
