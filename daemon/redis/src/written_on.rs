//! Which node ran each write (`durable.rs`): the user's compare-and-set answers with the id of
//! the node that ran it, and only a `WAIT` round of that very node may acknowledge the write.
//!
//! Without it, a failover opens a window a round cannot see: a master frozen past the cluster's
//! node timeout is replaced by its replica, then thaws and, until it learns it is a master no
//! longer, still takes writes from clients whose slot map is as old as its own. Such a write
//! answers like any other; the next round of the slot's master, now the promoted replica, finds
//! its replica (the old master, rejoined) in step and acknowledges it; the old master then
//! drops the write as it resynchronises. The nemesis suite saw it as an acknowledged failure
//! lost in the second after a thaw. With the node named, that write waits for the old master's
//! own `WAIT`, which no replica answers: it is refused, never acknowledged.
//!
//! A table of the last [`SIZE`] writes by place. A ticket whose node was noted says so
//! (`durable.rs`): if its entry was overwritten before it is judged, it is refused. The writes
//! that are not a user's compare-and-set (a share, an id counter, a decoy flag, an index), and
//! a joined ticket's earlier writes, name no node and are judged by their slot's master alone.

use std::sync::Arc;

/// Writes remembered: far more than are ever waiting at once.
pub(crate) const SIZE: usize = 1 << 16;

/// The node of each recent write, by its place in this node's order of writes.
#[derive(Debug, Default)]
pub(crate) struct WrittenOn {
    /// `(place, slot, node id)`, at `place % SIZE`.
    entries: Vec<(u64, u16, Arc<str>)>,
}

impl WrittenOn {
    /// Notes that the write at `seq`, to `slot`, ran on node `id`.
    pub(crate) fn note(&mut self, seq: u64, slot: u16, id: Arc<str>) {
        if self.entries.is_empty() {
            self.entries.resize(SIZE, (0, 0, Arc::from("")));
        }
        let at = usize::try_from(seq % SIZE as u64).unwrap_or(0);
        self.entries[at] = (seq, slot, id);
    }

    /// The node that ran the write at `seq` to `slot`, if it is still known.
    pub(crate) fn node(&self, seq: u64, slot: u16) -> Option<Arc<str>> {
        let at = usize::try_from(seq % SIZE as u64).ok()?;
        match self.entries.get(at) {
            Some((s, sl, id)) if *s == seq && *sl == slot && !id.is_empty() => Some(id.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_known_by_its_place_and_slot_until_its_entry_is_reused() {
        let mut w = WrittenOn::default();
        assert_eq!(w.node(1, 7), None);
        w.note(1, 7, Arc::from("aaaa"));
        assert_eq!(w.node(1, 7).as_deref(), Some("aaaa"));
        // Another slot at the same place (a joined ticket's other write) is not this write.
        assert_eq!(w.node(1, 8), None);
        w.note(1 + SIZE as u64, 7, Arc::from("bbbb"));
        assert_eq!(
            w.node(1, 7),
            None,
            "overwritten: judged by its slot's master alone"
        );
        assert_eq!(w.node(1 + SIZE as u64, 7).as_deref(), Some("bbbb"));
    }
}
