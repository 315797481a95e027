//! The `rwlock` recipe entry by entry: many readers or one writer, served in arrival order (a
//! reader behind a waiting writer waits: no writer starvation); a seeded random run of
//! acquires, releases and session ends checks every invariant after each step.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeSet, VecDeque};

use common::Sim;
use serde_json::{json, Value};

fn acquire(sim: &mut Sim, s: u64, mode: &str) -> Value {
    sim.call(s, json!({ "acquire": { "lock": "L", "mode": mode } })).unwrap()
}

#[test]
fn readers_share_writers_exclude_and_a_waiting_writer_blocks_new_readers() {
    let mut sim = Sim::new("rwlock");
    let s: Vec<u64> = (0..4).map(|_| sim.session()).collect();
    assert!(acquire(&mut sim, s[0], "read").get("granted").is_some());
    assert!(acquire(&mut sim, s[1], "read").get("granted").is_some(), "readers share");
    assert_eq!(acquire(&mut sim, s[2], "write"), json!({ "queued": { "position": 1 } }));
    assert_eq!(acquire(&mut sim, s[3], "read"), json!({ "queued": { "position": 2 } }), "behind the writer");
    sim.call(s[0], json!({ "release": { "lock": "L" } })).unwrap();
    assert!(sim.mail(s[2]).is_empty(), "one reader still holds it");
    sim.end(s[1]);
    assert_eq!(sim.mail(s[2])[0]["mode"], "write");
    assert!(sim.mail(s[3]).is_empty(), "the writer excludes readers");
    sim.call(s[2], json!({ "release": { "lock": "L" } })).unwrap();
    assert_eq!(sim.mail(s[3])[0]["mode"], "read");
}

fn rng(state: &mut u64, n: u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545F4914F6CDD1D) % n
}

#[test]
fn a_seeded_random_run_keeps_every_invariant() {
    let mut seed = 0xfeed_u64;
    let mut sim = Sim::new("rwlock");
    let mut live: Vec<u64> = (0..8).map(|_| sim.session()).collect();
    let mut readers: BTreeSet<u64> = BTreeSet::new();
    let mut writer: Option<u64> = None;
    let mut queue: VecDeque<(u64, &str)> = VecDeque::new();
    for _ in 0..400 {
        let who = live[rng(&mut seed, live.len() as u64) as usize];
        let busy = readers.contains(&who) || writer == Some(who) || queue.iter().any(|(s, _)| *s == who);
        match rng(&mut seed, 10) {
            0..=4 if !busy => {
                let mode = if rng(&mut seed, 3) == 0 { "write" } else { "read" };
                match acquire(&mut sim, who, mode) {
                    v if v.get("granted").is_some() && mode == "write" => writer = Some(who),
                    v if v.get("granted").is_some() => {
                        readers.insert(who);
                    }
                    _ => queue.push_back((who, mode)),
                }
            }
            5..=8 if readers.contains(&who) || writer == Some(who) => {
                sim.call(who, json!({ "release": { "lock": "L" } })).unwrap();
                readers.remove(&who);
                if writer == Some(who) {
                    writer = None;
                }
            }
            9 if live.len() > 2 => {
                sim.end(who);
                live.retain(|x| *x != who);
                readers.remove(&who);
                if writer == Some(who) {
                    writer = None;
                }
                queue.retain(|(s, _)| *s != who);
                let fresh = sim.session();
                live.push(fresh);
            }
            _ => {}
        }
        let mut granted = Vec::new();
        for s in live.clone() {
            for n in sim.mail(s) {
                granted.push((s, n["mode"].as_str().unwrap().to_string()));
            }
        }
        let mut head: Vec<(u64, String)> = queue.drain(..granted.len()).map(|(s, m)| (s, m.to_string())).collect();
        head.sort();
        granted.sort();
        assert_eq!(granted, head, "grants out of arrival order");
        for (s, m) in granted {
            if m == "write" {
                writer = Some(s);
            } else {
                readers.insert(s);
            }
        }
        assert!(writer.is_none() || readers.is_empty(), "a writer with readers");
        if let Some((_, mode)) = queue.front() {
            let grantable = writer.is_none() && (*mode == "read" || readers.is_empty());
            assert!(!grantable, "the head of the queue waits for nothing");
        }
        let state = sim.query(json!({ "state": { "lock": "L" } }))["state"].clone();
        assert_eq!(state["writer"], json!(writer));
        assert_eq!(state["readers"], json!(readers.iter().collect::<Vec<_>>()), "the plugin agrees");
        assert_eq!(state["waiting"], queue.len() as u64, "and counts its queue right");
    }
}

#[test]
fn a_release_grants_every_reader_at_the_head_past_one_page_of_the_queue() {
    let mut sim = Sim::new("rwlock");
    let w = sim.session();
    assert!(acquire(&mut sim, w, "write").get("granted").is_some());
    // More readers than the plugin reads per page (64), then a writer, then one more reader.
    let readers: Vec<u64> = (0..150).map(|_| sim.session()).collect();
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(acquire(&mut sim, *r, "read"), json!({ "queued": { "position": i + 1 } }));
    }
    let (w2, late) = (sim.session(), sim.session());
    acquire(&mut sim, w2, "write");
    acquire(&mut sim, late, "read");
    sim.call(w, json!({ "release": { "lock": "L" } })).unwrap();
    for r in &readers {
        assert_eq!(sim.mail(*r).len(), 1, "every reader at the head is granted");
    }
    assert!(
        sim.mail(w2).is_empty() && sim.mail(late).is_empty(),
        "the writer waits for them, the late reader behind it"
    );
    let state = sim.query(json!({ "state": { "lock": "L" } }))["state"].clone();
    assert_eq!(state["readers"].as_array().map(Vec::len), Some(150));
    assert_eq!(state["waiting"], 2);
}
