//! Watches and the events they deliver. Events are produced by applying log entries, so every
//! replica produces the same ones, in the same order; `(index, seq)` orders them and is what a
//! client resumes from after reconnecting.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Deleted,
    DataChanged,
    ChildrenChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The log index of the entry that produced it.
    pub index: u64,
    /// Its position among that entry's events.
    pub seq: u32,
    pub path: String,
    pub kind: EventKind,
}

impl Event {
    pub fn pos(&self) -> (u64, u32) {
        (self.index, self.seq)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatchKind {
    /// One-shot: the node's data changes or it is deleted.
    Data,
    /// One-shot: the node is created, deleted or its data changes.
    Exists,
    /// One-shot: a child is added or removed, or the node is deleted.
    Children,
    /// Every event on the node, until removed.
    Persistent,
    /// Every event on the node and all its descendants, until removed.
    PersistentRecursive,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchSpec {
    pub path: String,
    pub kind: WatchKind,
}

impl WatchSpec {
    pub fn new(path: impl Into<String>, kind: WatchKind) -> Self {
        WatchSpec { path: path.into(), kind }
    }

    /// Whether the watch ends when it fires.
    pub fn one_shot(&self) -> bool {
        !matches!(self.kind, WatchKind::Persistent | WatchKind::PersistentRecursive)
    }

    pub fn matches(&self, ev: &Event) -> bool {
        use EventKind::*;
        let here = ev.path == self.path;
        match self.kind {
            WatchKind::Data => here && matches!(ev.kind, DataChanged | Deleted),
            WatchKind::Exists => here && matches!(ev.kind, Created | Deleted | DataChanged),
            WatchKind::Children => here && matches!(ev.kind, ChildrenChanged | Deleted),
            WatchKind::Persistent => here,
            WatchKind::PersistentRecursive => {
                here || self.path == "/"
                    || ev.path.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(path: &str, kind: EventKind) -> Event {
        Event { index: 1, seq: 0, path: path.into(), kind }
    }

    #[test]
    fn matching() {
        let rec = WatchSpec::new("/a", WatchKind::PersistentRecursive);
        assert!(rec.matches(&ev("/a", EventKind::DataChanged)));
        assert!(rec.matches(&ev("/a/b/c", EventKind::Created)));
        assert!(!rec.matches(&ev("/ab", EventKind::Created)), "a sibling with a common prefix");
        assert!(WatchSpec::new("/", WatchKind::PersistentRecursive).matches(&ev("/x", EventKind::Deleted)));
        let data = WatchSpec::new("/a", WatchKind::Data);
        assert!(data.matches(&ev("/a", EventKind::Deleted)) && !data.matches(&ev("/a", EventKind::ChildrenChanged)));
        let kids = WatchSpec::new("/a", WatchKind::Children);
        assert!(kids.matches(&ev("/a", EventKind::ChildrenChanged)) && !kids.matches(&ev("/a/b", EventKind::Created)));
        assert!(WatchSpec::new("/a", WatchKind::Exists).matches(&ev("/a", EventKind::Created)));
    }
}
