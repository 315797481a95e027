//! The `semaphore` recipe entry by entry: never more than N permits held, waiters served in
//! FIFO order by notification, permits freed when their session ends; a seeded random run of
//! acquires, releases and session ends keeps every invariant.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, VecDeque};

use common::Sim;
use serde_json::{json, Value};

fn acquire(sim: &mut Sim, s: u64) -> Value {
    sim.call(s, json!({ "acquire": { "semaphore": "S", "permits": 3 } })).unwrap()
}

#[test]
fn n_permits_fifo_and_release_on_session_end() {
    let mut sim = Sim::new("semaphore");
    let s: Vec<u64> = (0..5).map(|_| sim.session()).collect();
    let leases: Vec<u64> = s[..3].iter().map(|&x| acquire(&mut sim, x)["granted"]["lease"].as_u64().unwrap()).collect();
    assert_eq!(acquire(&mut sim, s[3]), json!({ "queued": { "position": 1 } }));
    assert_eq!(acquire(&mut sim, s[4]), json!({ "queued": { "position": 2 } }));
    assert!(sim.call(s[0], json!({ "acquire": { "semaphore": "S", "permits": 4 } })).is_err(), "size is fixed");
    assert!(sim.call(s[1], json!({ "release": { "semaphore": "S", "lease": leases[0] } })).is_err(), "not its lease");

    sim.end(s[1]);
    let got = sim.mail(s[3]);
    assert_eq!(got.len(), 1, "the first waiter gets the freed permit: {got:?}");
    assert!(sim.mail(s[4]).is_empty(), "and only it");
    sim.call(s[0], json!({ "release": { "semaphore": "S", "lease": leases[0] } })).unwrap();
    assert_eq!(sim.mail(s[4]).len(), 1);
    let state = sim.query(json!({ "state": { "semaphore": "S" } }));
    assert_eq!(state["state"]["held"].as_array().unwrap().len(), 3);
}

/// xorshift64*, from the seed.
fn rng(state: &mut u64, n: u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545F4914F6CDD1D) % n
}

#[test]
fn a_seeded_random_run_keeps_every_invariant() {
    let mut seed = 0x5eed_u64;
    let mut sim = Sim::new("semaphore");
    let mut live: Vec<u64> = (0..8).map(|_| sim.session()).collect();
    let mut holding: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut waiting: VecDeque<u64> = VecDeque::new();
    for _ in 0..400 {
        let who = live[rng(&mut seed, live.len() as u64) as usize];
        match rng(&mut seed, 10) {
            0..=4 if !waiting.contains(&who) => match acquire(&mut sim, who) {
                v if v.get("granted").is_some() => {
                    holding.entry(who).or_default().push(v["granted"]["lease"].as_u64().unwrap())
                }
                _ => waiting.push_back(who),
            },
            5..=8 => {
                if let Some(lease) = holding.get_mut(&who).and_then(|l| l.pop()) {
                    sim.call(who, json!({ "release": { "semaphore": "S", "lease": lease } })).unwrap();
                }
            }
            _ if live.len() > 2 => {
                sim.end(who);
                live.retain(|x| *x != who);
                holding.remove(&who);
                waiting.retain(|x| *x != who);
                let fresh = sim.session();
                live.push(fresh);
            }
            _ => {}
        }
        // Grants by notification, in FIFO order: the k sessions granted in this step must be
        // the k at the head of the queue.
        let mut granted = Vec::new();
        for s in live.clone() {
            for n in sim.mail(s) {
                granted.push(s);
                holding.entry(s).or_default().push(n["lease"].as_u64().unwrap());
            }
        }
        let mut head: Vec<u64> = waiting.drain(..granted.len()).collect();
        head.sort();
        granted.sort();
        assert_eq!(granted, head, "grants out of FIFO order");
        let held: usize = holding.values().map(Vec::len).sum();
        assert!(held <= 3, "{held} permits held");
        let state = sim.query(json!({ "state": { "semaphore": "S" } }));
        assert_eq!(state["state"]["held"].as_array().unwrap().len(), held, "the plugin agrees");
        assert_eq!(state["state"]["waiting"], waiting.len() as u64, "and counts its queue right");
        if held < 3 {
            assert!(waiting.is_empty(), "a free permit while someone waits");
        }
    }
}
