//! The cluster's slot map as the `WAIT` rounds see it (`durable.rs`): which master serves a
//! slot, read from `CLUSTER SLOTS`. Plain data, no I/O: parsed from a reply, asked by slot.

use redis::Value;

/// The last of Redis Cluster's 16,384 slots.
const LAST_SLOT: u16 = 16383;

/// A master as the rounds see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Master {
    /// `host:port`, as `CLUSTER SLOTS` names it.
    pub(crate) address: String,
    /// Its node id: a round's answer counts only if this node gave it.
    pub(crate) id: String,
    /// A slot of its own (the last of its first range: a reshard moves a master's lowest
    /// slots first): where a round writes its mark before its `WAIT`.
    pub(crate) mark_slot: u16,
}

/// A range of `CLUSTER SLOTS`: its first and last slot, its master's `host:port` and node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) first: u16,
    pub(crate) last: u16,
    pub(crate) address: String,
    pub(crate) id: String,
}

/// The slot map: every range with its master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotMap {
    ranges: Vec<Range>,
}

impl SlotMap {
    /// A map of `ranges` (in any order).
    pub(crate) fn new(mut ranges: Vec<Range>) -> SlotMap {
        ranges.sort_by_key(|r| r.first);
        SlotMap { ranges }
    }

    /// Parses a `CLUSTER SLOTS` reply.
    pub(crate) fn parse(reply: Value) -> Result<SlotMap, String> {
        let Value::Array(map) = reply else {
            return Err(format!("an array expected, got {reply:?}"));
        };
        masters_by_range(map).map(SlotMap::new)
    }

    /// The master that serves `slot`, if any does.
    pub(crate) fn owner(&self, slot: u16) -> Option<Master> {
        let r = self
            .ranges
            .iter()
            .find(|r| (r.first..=r.last).contains(&slot))?;
        self.master(&r.id)
    }

    /// The master with node id `id`, if it serves any slot.
    pub(crate) fn master(&self, id: &str) -> Option<Master> {
        let first = self.ranges.iter().find(|r| r.id == id)?;
        Some(Master {
            address: first.address.clone(),
            id: first.id.clone(),
            mark_slot: self
                .ranges
                .iter()
                .filter(|r| r.id == id)
                .min_by_key(|r| r.first)
                .map_or(first.last, |r| r.last),
        })
    }

    /// The ranges the master `id` serves, in order.
    pub(crate) fn ranges_of(&self, id: &str) -> Vec<(u16, u16)> {
        self.ranges
            .iter()
            .filter(|r| r.id == id)
            .map(|r| (r.first, r.last))
            .collect()
    }

    /// Each master once.
    pub(crate) fn masters(&self) -> Vec<Master> {
        let mut ids: Vec<&str> = Vec::new();
        for r in &self.ranges {
            if !ids.contains(&r.id.as_str()) {
                ids.push(&r.id);
            }
        }
        ids.into_iter().filter_map(|id| self.master(id)).collect()
    }

    /// A slot of each range: a ticket that must wait for every master waits for these.
    pub(crate) fn one_slot_per_range(&self) -> Vec<u16> {
        self.ranges.iter().map(|r| r.last).collect()
    }

    /// Whether no master serves anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// `CLUSTER SLOTS`' ranges.
pub(crate) fn masters_by_range(map: Vec<Value>) -> Result<Vec<Range>, String> {
    fn field<T: redis::FromRedisValue>(
        it: &mut impl Iterator<Item = Value>,
        what: &str,
    ) -> Result<T, String> {
        let v = it.next().ok_or_else(|| format!("no {what}"))?;
        redis::from_redis_value(v).map_err(|e| format!("{what}: {e}"))
    }
    let mut out = Vec::new();
    for range in map {
        let Value::Array(fields) = range else {
            return Err("a range that is not an array".into());
        };
        let mut fields = fields.into_iter();
        let first: u16 = field(&mut fields, "first slot")?;
        let last: u16 = field(&mut fields, "last slot")?;
        if first > last || last > LAST_SLOT {
            return Err(format!("a range {first}-{last} out of the slots"));
        }
        let Some(Value::Array(master)) = fields.next() else {
            return Err("a range without its master".into());
        };
        let mut master = master.into_iter();
        let host: String = field(&mut master, "master host")?;
        let port: u16 = field(&mut master, "master port")?;
        let id: String = field(&mut master, "master id")?;
        out.push(Range {
            first,
            last,
            address: format!("{host}:{port}"),
            id,
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn range(first: i64, last: i64, host: &str, port: i64) -> Value {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(format!("id-{p}").into_bytes()),
            ])
        };
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            node(host, port),
            node(host, port + 3),
        ])
    }

    #[test]
    fn a_slot_is_served_by_the_master_of_its_range() {
        let map = SlotMap::parse(Value::Array(vec![
            range(5461, 10922, "127.0.0.1", 7002),
            range(0, 99, "127.0.0.1", 7001),
            range(100, 5460, "127.0.0.1", 7003),
            range(10923, 16383, "127.0.0.1", 7001),
        ]))
        .unwrap();
        let m = map.owner(12000).unwrap();
        assert_eq!(
            (m.address.as_str(), m.id.as_str()),
            ("127.0.0.1:7001", "id-7001")
        );
        // The last slot of its first range: a reshard moves the lowest slots first.
        assert_eq!(m.mark_slot, 99);
        assert_eq!(map.owner(5461).unwrap().id, "id-7002");
        assert_eq!(map.ranges_of("id-7001"), vec![(0, 99), (10923, 16383)]);
        assert_eq!(map.one_slot_per_range(), vec![99, 5460, 10922, 16383]);
        assert_eq!(
            map.masters().len(),
            3,
            "a master with two ranges is one master"
        );
        let partial = SlotMap::parse(Value::Array(vec![range(0, 99, "h", 1)])).unwrap();
        assert!(partial.owner(100).is_none(), "a slot nobody serves");
        assert!(SlotMap::parse(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(SlotMap::parse(Value::Array(vec![range(9, 3, "h", 1)])).is_err());
        assert!(SlotMap::parse(Value::Array(vec![range(0, 16384, "h", 1)])).is_err());
        assert!(SlotMap::parse(Value::Nil).is_err());
    }
}
