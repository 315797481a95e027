//! The running digest against one computed from scratch, over random mixes of every tree
//! operation: creates of each kind, sets, deletes, multis, sessions ending, TTL sweeps, and
//! several commands in one batch entry. Each entry updates the digest from its own writes
//! and what those keys held before; a key whose old value is taken wrongly makes the two
//! differ. The same mixes check that the tree's index entries (children, a session's
//! ephemerals) always match its nodes.

use std::collections::BTreeSet;
use std::sync::Arc;

use corral_proto::{path, CreateMode, MultiOp};

use super::*;

/// xorshift64: a fixed sequence per seed, so a failure names its seed and replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

const PARENTS: [&str; 4] = ["/", "/a", "/a/b", "/c"];
const NAMES: [&str; 3] = ["x", "y", "z"];

fn some_path(rng: &mut Rng, made: &[String]) -> String {
    if rng.below(2) == 0 {
        if let Some(p) = rng.pick(made) {
            return p.clone();
        }
    }
    let parent = PARENTS[rng.below(PARENTS.len())];
    let name = NAMES[rng.below(NAMES.len())];
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn some_create(rng: &mut Rng, made: &[String]) -> (String, CreateMode) {
    let mode = CreateMode {
        ephemeral: rng.below(2) == 0,
        sequential: rng.below(3) == 0,
        container: rng.below(6) == 0,
        ttl_ms: (rng.below(6) == 0).then_some(50),
    };
    (some_path(rng, made), mode)
}

fn some_op(rng: &mut Rng, made: &[String], sessions: &[u64]) -> Op {
    match rng.below(40) {
        0..=15 => {
            let (path, mode) = some_create(rng, made);
            Op::Create { path, data: vec![rng.below(256) as u8; rng.below(4)], mode }
        }
        16..=21 => Op::Delete { path: some_path(rng, made), version: None },
        22..=24 => Op::Set { path: some_path(rng, made), data: vec![7; rng.below(8)], version: None },
        25..=28 => {
            let ops = (0..1 + rng.below(3))
                .map(|_| match rng.below(3) {
                    0 => {
                        let (path, mode) = some_create(rng, made);
                        MultiOp::Create { path, data: vec![1], mode }
                    }
                    1 => MultiOp::Delete { path: some_path(rng, made), version: None },
                    _ => MultiOp::Set { path: some_path(rng, made), data: vec![2], version: None },
                })
                .collect();
            Op::Multi { ops }
        }
        29..=33 => Op::CreateSession { timeout_ms: 5_000, secret: vec![1, 2, 3] },
        34 => Op::CloseSession,
        35 => Op::ExpireSessions { ids: rng.pick(sessions).into_iter().copied().collect() },
        _ => Op::Tick,
    }
}

/// What a reply tells the test to remember: paths created, sessions started.
fn note(reply: &Result<Reply, Error>, made: &mut Vec<String>, sessions: &mut Vec<u64>) {
    match reply {
        Ok(Reply::Created { path, .. }) => made.push(path.clone()),
        Ok(Reply::Session { id, .. }) => sessions.push(*id),
        Ok(Reply::Multi(replies)) => {
            for r in replies {
                note(&Ok(r.clone()), made, sessions);
            }
        }
        _ => {}
    }
}

#[test]
fn the_running_digest_matches_one_from_scratch_after_any_mix_of_tree_operations() {
    let (mut ended, mut ephemerals) = (0, 0);
    for seed in 1..=12u64 {
        let s = State::new(Arc::new(MemStore::default()));
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (mut made, mut sessions) = (Vec::new(), Vec::new());
        let (mut ts, mut req) = (1_000u64, 0u64);
        for index in 1..=250u64 {
            ts += rng.below(30) as u64;
            let mut cmds = Vec::new();
            for _ in 0..if rng.below(4) == 0 { 2 + rng.below(3) } else { 1 } {
                req += 1;
                let session = if rng.below(3) != 0 { rng.pick(&sessions).copied().unwrap_or(0) } else { 0 };
                cmds.push(Command { session, req, ..Command::plain(ts, some_op(&mut rng, &made, &sessions)) });
            }
            let replies = if cmds.len() == 1 {
                vec![s.with_txn(|t| s.apply(t, index, &cmds[0])).expect("store")]
            } else {
                s.with_txn(|t| s.apply_batch(t, index, &cmds)).expect("store")
            };
            for (cmd, r) in cmds.iter().zip(&replies) {
                match (&cmd.op, r) {
                    (Op::CloseSession | Op::ExpireSessions { .. }, Ok(_)) => ended += 1,
                    (_, Ok(Reply::Created { stat, .. })) if stat.ephemeral_owner != 0 => ephemerals += 1,
                    _ => {}
                }
                note(r, &mut made, &mut sessions);
            }
            let (stored, full) = s.digest_check().expect("digest");
            assert_eq!(stored.1, full, "seed {seed}, entry {index}: {cmds:?} gave {replies:?}");
            if let Err(e) = indexes_match_nodes(&s) {
                panic!("seed {seed}, entry {index}: {e} after {cmds:?} gave {replies:?}");
            }
        }
    }
    // The mix made ephemeral nodes and ended sessions, or the check above saw little.
    assert!(ephemerals > 50 && ended > 50, "{ephemerals} ephemerals, {ended} sessions ended");
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Every node has its children-index entry and, if ephemeral, its session's entry; every
/// such entry has its node (with that owner).
fn indexes_match_nodes(s: &State) -> Result<(), String> {
    let items = s.export().map_err(|e| e.to_string())?;
    let present: BTreeSet<&[u8]> = items.iter().map(|(k, _)| k.as_slice()).collect();
    let owner_of = |p: &str| match s.get(p) {
        Ok(Ok((_, stat))) => Some(stat.ephemeral_owner),
        _ => None,
    };
    for (k, _) in &items {
        if let Some(p) = k.strip_prefix(b"n/") {
            let p = std::str::from_utf8(p).map_err(|e| e.to_string())?;
            if p == "/" {
                continue;
            }
            if !present.contains(keys::child(path::parent(p), path::name(p)).as_slice()) {
                return Err(format!("{p} has no children-index entry"));
            }
            let owner = owner_of(p).unwrap_or(0);
            if owner != 0 && !present.contains(keys::ephemeral(owner, p).as_slice()) {
                return Err(format!("ephemeral {p} is missing from session {owner}'s entries"));
            }
        } else if let Some(rest) = k.strip_prefix(b"c/") {
            let text = String::from_utf8_lossy(rest);
            let (parent, name) = text.split_once('\0').ok_or("a children-index key without NUL")?;
            let p = child_path(parent, name);
            if !present.contains(keys::node(&p).as_slice()) {
                return Err(format!("children-index entry for {p}, which does not exist"));
            }
        } else if k.starts_with(b"e/") {
            let p = keys::parse_ephemeral(k).ok_or("a malformed ephemeral key")?;
            let owner = u64::from_be_bytes(k[2..10].try_into().map_err(|_| "a short ephemeral key")?);
            if owner_of(&p) != Some(owner) {
                return Err(format!("session {owner} lists {p}, which is not its ephemeral"));
            }
        }
    }
    Ok(())
}
