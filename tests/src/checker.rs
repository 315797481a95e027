//! A linearizability checker for register histories (Wing & Gong's search with Lowe's
//! memoization), partitioned per key: a history of reads, writes and compare-and-sets is
//! linearizable if every key's sub-history is.
//!
//! An operation whose outcome is unknown (the client saw a timeout or a lost connection) may
//! have taken effect at any moment after its invocation, or never: it has no return time, and
//! the search may linearize it or leave it out.

use std::collections::{BTreeMap, HashSet};

/// What a client did to one key; `None` is "the key does not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Read,
    Write(u64),
    /// Set to `new` if the value is `expected`.
    Cas {
        expected: Option<u64>,
        new: u64,
    },
}

/// What the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A read's value.
    Read(Option<u64>),
    /// A write, or a compare-and-set that found its expected value.
    Done,
    /// A compare-and-set that did not find its expected value (nothing changed).
    Failed,
    /// No reply: it may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub key: String,
    pub call: Call,
    pub outcome: Outcome,
    /// When it was invoked and when its reply arrived (any monotonic clock, e.g. ns).
    pub invoked: u64,
    pub returned: Option<u64>,
}

/// The first key whose history is not linearizable, if any.
pub fn check(history: &[Op]) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !linearizable(&ops) {
            return Err(format!("key {key:?}: no linearization of its {} operations", ops.len()));
        }
    }
    Ok(())
}

/// Apply `op` to `state`: the new state, or None if the outcome is impossible from `state`.
fn step(state: Option<u64>, op: &Op) -> Option<Option<u64>> {
    match (&op.call, &op.outcome) {
        (Call::Read, Outcome::Read(v)) => (*v == state).then_some(state),
        (Call::Read, Outcome::Unknown) => Some(state),
        (Call::Write(v), Outcome::Done | Outcome::Unknown) => Some(Some(*v)),
        (Call::Cas { expected, new }, Outcome::Done) => (*expected == state).then_some(Some(*new)),
        (Call::Cas { expected, .. }, Outcome::Failed) => (*expected != state).then_some(state),
        (Call::Cas { expected, new }, Outcome::Unknown) => Some(if *expected == state { Some(*new) } else { state }),
        _ => None,
    }
}

fn linearizable(ops: &[&Op]) -> bool {
    let n = ops.len();
    // Depth-first over (set of linearized ops, state), never visiting a pair twice.
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(Vec<u64>, Option<u64>)> = vec![(vec![0; n.div_ceil(64)], None)];
    let done = |set: &[u64], i: usize| set[i / 64] >> (i % 64) & 1 == 1;
    while let Some((set, state)) = stack.pop() {
        // Every op that returned is linearized: the pending ones may be left out.
        if (0..n).all(|i| done(&set, i) || ops[i].returned.is_none()) {
            return true;
        }
        if !seen.insert((set.clone(), state)) {
            continue;
        }
        // An op may go next if it was invoked before every other remaining op returned.
        let horizon = (0..n).filter(|&i| !done(&set, i)).filter_map(|i| ops[i].returned).min().unwrap_or(u64::MAX);
        for i in (0..n).filter(|&i| !done(&set, i) && ops[i].invoked <= horizon) {
            if let Some(next) = step(state, ops[i]) {
                let mut set2 = set.clone();
                set2[i / 64] |= 1 << (i % 64);
                stack.push((set2, next));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, invoked: u64, returned: Option<u64>) -> Op {
        Op { key: "k".into(), call, outcome, invoked, returned }
    }

    #[test]
    fn concurrent_write_and_read_may_see_either_value() {
        for seen in [None, Some(1)] {
            let h = [op(Call::Write(1), Outcome::Done, 0, Some(10)), op(Call::Read, Outcome::Read(seen), 5, Some(8))];
            assert!(check(&h).is_ok(), "read of {seen:?} during the write");
        }
    }

    #[test]
    fn a_stale_read_after_a_write_returned_is_caught() {
        let h = [
            op(Call::Write(1), Outcome::Done, 0, Some(10)),
            op(Call::Write(2), Outcome::Done, 11, Some(20)),
            op(Call::Read, Outcome::Read(Some(1)), 21, Some(30)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn reads_cannot_go_back_in_time() {
        // Both reads overlap the write, but once one saw the new value a later one cannot
        // see the old.
        let h = [
            op(Call::Write(1), Outcome::Done, 0, Some(100)),
            op(Call::Read, Outcome::Read(Some(1)), 10, Some(20)),
            op(Call::Read, Outcome::Read(None), 30, Some(40)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn compare_and_set_outcomes_must_be_consistent() {
        let ok = [
            op(Call::Write(1), Outcome::Done, 0, Some(5)),
            op(Call::Cas { expected: Some(1), new: 2 }, Outcome::Done, 6, Some(10)),
            op(Call::Cas { expected: Some(1), new: 3 }, Outcome::Failed, 11, Some(15)),
            op(Call::Read, Outcome::Read(Some(2)), 16, Some(20)),
        ];
        assert!(check(&ok).is_ok());
        let two_winners = [
            op(Call::Write(1), Outcome::Done, 0, Some(5)),
            op(Call::Cas { expected: Some(1), new: 2 }, Outcome::Done, 6, Some(10)),
            op(Call::Cas { expected: Some(1), new: 3 }, Outcome::Done, 6, Some(10)),
        ];
        assert!(check(&two_winners).is_err(), "two CAS from the same value both succeeded");
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_happened() {
        let took_effect =
            [op(Call::Write(7), Outcome::Unknown, 0, None), op(Call::Read, Outcome::Read(Some(7)), 50, Some(60))];
        let did_not =
            [op(Call::Write(7), Outcome::Unknown, 0, None), op(Call::Read, Outcome::Read(None), 50, Some(60))];
        assert!(check(&took_effect).is_ok() && check(&did_not).is_ok());
        let flip_flop = [
            op(Call::Write(7), Outcome::Unknown, 0, None),
            op(Call::Read, Outcome::Read(Some(7)), 50, Some(60)),
            op(Call::Read, Outcome::Read(None), 70, Some(80)),
        ];
        assert!(check(&flip_flop).is_err(), "it cannot have happened and then not");
    }

    #[test]
    fn keys_are_checked_apart_and_large_histories_finish() {
        let mut h = Vec::new();
        // 4 clients, 60 sequential writes each then reads, on 3 keys: linearizable.
        for c in 0..4u64 {
            for i in 0..60u64 {
                let t = i * 100 + c;
                let key = format!("k{}", i % 3);
                h.push(Op {
                    key: key.clone(),
                    call: Call::Write(c * 1000 + i),
                    outcome: Outcome::Done,
                    invoked: t,
                    returned: Some(t + 50),
                });
            }
        }
        let last: Vec<(String, u64)> = (0..3)
            .map(|k| {
                let i = (0..60u64).filter(|i| i % 3 == k).max().expect("some");
                (format!("k{k}"), 3 * 1000 + i)
            })
            .collect();
        for (key, v) in last {
            h.push(Op {
                key,
                call: Call::Read,
                outcome: Outcome::Read(Some(v)),
                invoked: 10_000,
                returned: Some(10_010),
            });
        }
        assert!(check(&h).is_ok());
        h.push(Op {
            key: "k0".into(),
            call: Call::Read,
            outcome: Outcome::Read(Some(0)),
            invoked: 20_000,
            returned: Some(20_010),
        });
        assert!(check(&h).is_err());
    }
}
