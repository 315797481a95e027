//! The `multilock` recipe entry by entry: sets of locks granted all at once or not at all, in
//! arrival order; a seeded random run checks after every step that no lock is in two grants,
//! and that a waiting request waits only for a held lock or an earlier overlapping request
//! (so nothing deadlocks or starves).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;

use common::Sim;
use serde_json::json;

fn rng(state: &mut u64, n: u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545F4914F6CDD1D) % n
}

#[test]
fn all_or_nothing_in_arrival_order() {
    let mut sim = Sim::new("multilock");
    let (a, b, c) = (sim.session(), sim.session(), sim.session());
    let g = sim.call(a, json!({ "acquire": { "locks": ["x", "y"] } })).unwrap()["granted"]["grant"].as_u64().unwrap();
    assert!(sim.call(b, json!({ "acquire": { "locks": ["y", "z"] } })).unwrap().get("queued").is_some());
    // z is free, but b (earlier) waits for it: c must not overtake b.
    assert!(sim.call(c, json!({ "acquire": { "locks": ["z"] } })).unwrap().get("queued").is_some());
    sim.call(a, json!({ "release": { "grant": g } })).unwrap();
    let got = sim.mail(b);
    assert_eq!(got[0]["locks"], json!(["y", "z"]), "b gets both at once");
    assert!(sim.mail(c).is_empty());
    sim.end(b);
    assert_eq!(sim.mail(c)[0]["locks"], json!(["z"]));
}

#[test]
fn a_seeded_random_run_keeps_every_invariant() {
    let names = ["a", "b", "c", "d", "e"];
    let mut seed = 0xabcd_u64;
    let mut sim = Sim::new("multilock");
    let mut live: Vec<u64> = (0..6).map(|_| sim.session()).collect();
    // grant id → (session, locks); waiting requests in arrival order.
    let mut grants: BTreeMap<u64, (u64, Vec<String>)> = BTreeMap::new();
    let mut waiting: Vec<(u64, Vec<String>)> = Vec::new();
    for _ in 0..400 {
        let who = live[rng(&mut seed, live.len() as u64) as usize];
        let busy = waiting.iter().any(|(s, _)| *s == who);
        match rng(&mut seed, 10) {
            0..=4 if !busy => {
                let mut locks: Vec<String> =
                    (0..1 + rng(&mut seed, 3)).map(|_| names[rng(&mut seed, 5) as usize].to_string()).collect();
                locks.sort();
                locks.dedup();
                let out = sim.call(who, json!({ "acquire": { "locks": locks } })).unwrap();
                match out["granted"]["grant"].as_u64() {
                    Some(g) => {
                        grants.insert(g, (who, locks));
                    }
                    None => waiting.push((who, locks)),
                }
            }
            5..=8 => {
                if let Some((&g, _)) = grants.iter().find(|(_, (s, _))| *s == who) {
                    sim.call(who, json!({ "release": { "grant": g } })).unwrap();
                    grants.remove(&g);
                }
            }
            _ if live.len() > 2 => {
                sim.end(who);
                live.retain(|x| *x != who);
                grants.retain(|_, (s, _)| *s != who);
                waiting.retain(|(s, _)| *s != who);
                let fresh = sim.session();
                live.push(fresh);
            }
            _ => {}
        }
        for s in live.clone() {
            for n in sim.mail(s) {
                let locks: Vec<String> = serde_json::from_value(n["locks"].clone()).unwrap();
                let pos = waiting.iter().position(|(w, l)| *w == s && *l == locks).expect("a grant nobody waited for");
                waiting.remove(pos);
                grants.insert(n["grant"].as_u64().unwrap(), (s, locks));
            }
        }
        let mut owner: BTreeMap<&str, u64> = BTreeMap::new();
        for (g, (_, locks)) in &grants {
            for l in locks {
                assert!(owner.insert(l, *g).is_none(), "lock {l} in two grants");
            }
        }
        let mut reserved: Vec<&String> = Vec::new();
        for (_, locks) in &waiting {
            let blocked = locks.iter().any(|l| owner.contains_key(l.as_str()) || reserved.contains(&l));
            assert!(blocked, "{locks:?} waits for nothing");
            reserved.extend(locks);
        }
    }
}
