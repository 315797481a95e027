//! The `lock` recipe (plugins/lock) in the state machine, entry by entry: FIFO grants by
//! notification, fencing tokens, release on session end, lock-delay, try-lock, timeouts,
//! re-entrancy.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use corral_proto::Error;
use serde_json::{json, Value};

mod common;

use common::Sim;

trait LockSim {
    fn acquire(&mut self, session: u64, extra: Value) -> Value;
    fn release(&mut self, session: u64) -> Result<Value, Error>;
}

impl LockSim for Sim {
    fn acquire(&mut self, session: u64, extra: Value) -> Value {
        let mut a = json!({ "lock": "L" });
        a.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        self.call(session, json!({ "acquire": a })).unwrap()
    }

    fn release(&mut self, session: u64) -> Result<Value, Error> {
        self.call(session, json!({ "release": { "lock": "L" } }))
    }
}

#[test]
fn grants_go_in_fifo_order_by_notification_with_increasing_tokens() {
    let mut sim = Sim::new("lock");
    let s: Vec<u64> = (0..4).map(|_| sim.session()).collect();
    let first = sim.acquire(s[0], json!({}));
    let t0 = first["granted"]["token"].as_u64().expect("free: granted at once");
    // Each queued acquisition says its place in the queue and its own log position.
    let mut queued_at = Vec::new();
    for (i, session) in s.iter().enumerate().skip(1) {
        let out = sim.acquire(*session, json!({}));
        assert_eq!(out["queued"]["position"], i as u64, "{out}");
        queued_at.push(out["queued"]["at"].as_u64().expect("its position"));
    }
    assert!(queued_at.windows(2).all(|p| p[0] < p[1]) && queued_at[0] > t0, "{queued_at:?} after {t0}");
    assert!(sim.mail(s[1]).is_empty(), "nobody is woken while the lock is held");

    let mut last = t0;
    for i in 1..4 {
        sim.release(s[i - 1]).unwrap();
        let mail = sim.mail(s[i]);
        assert_eq!(mail.len(), 1, "session {i} is woken, once");
        let token = mail[0]["token"].as_u64().unwrap();
        assert!(token > last, "tokens strictly increase");
        last = token;
        for later in &s[i + 1..] {
            assert!(sim.mail(*later).is_empty(), "only the next waiter is woken (no herd)");
        }
    }
    assert!(sim.release(s[0]).is_err(), "a session that does not hold it cannot release it");
}

#[test]
fn a_holders_session_end_passes_the_lock_on_after_its_lock_delay() {
    let mut sim = Sim::new("lock");
    let (a, b, c) = (sim.session(), sim.session(), sim.session());
    sim.acquire(a, json!({ "delay_ms": 1000 }));
    sim.acquire(b, json!({}));
    sim.acquire(c, json!({}));
    // b's session ends while it waits: it leaves the queue.
    sim.end(b);
    sim.end(a);
    assert!(sim.mail(c).is_empty(), "during the lock-delay nobody gets it");
    let holder = sim.call(c, json!({ "holder": { "lock": "L" } })).unwrap();
    assert_eq!(holder["holder"]["session"], Value::Null);
    sim.tick_until(sim.ts + 1_000);
    let mail = sim.mail(c);
    assert_eq!(mail.len(), 1, "after the delay the next live waiter gets it: {mail:?}");
    assert!(mail[0]["token"].is_u64());
}

#[test]
fn try_lock_timeouts_and_reentrancy() {
    let mut sim = Sim::new("lock");
    let (a, b) = (sim.session(), sim.session());
    let t = sim.acquire(a, json!({ "reentrant": true }))["granted"]["token"].as_u64().unwrap();
    assert_eq!(sim.acquire(a, json!({ "reentrant": true }))["granted"]["token"].as_u64(), Some(t), "re-entered");
    assert!(sim.call(a, json!({ "acquire": { "lock": "L" } })).is_err(), "not re-entrant unless asked");
    assert_eq!(sim.acquire(b, json!({ "timeout_ms": 0 })), json!("busy"), "try-lock never queues");
    sim.acquire(b, json!({ "timeout_ms": 500 }));
    sim.tick_until(sim.ts + 500);
    assert_eq!(sim.mail(b), vec![json!({ "lock": "L", "timeout": true })]);
    sim.release(a).unwrap();
    sim.release(a).unwrap();
    assert!(sim.mail(b).is_empty(), "a waiter that timed out is not granted");
    assert!(sim.acquire(b, json!({}))["granted"]["token"].as_u64().unwrap() > t);
    assert!(sim.call(0, json!({ "acquire": { "lock": "L" } })).is_err(), "no session, no lock");
}

#[test]
fn only_an_admin_may_revoke_and_the_lock_passes_on() {
    let mut sim = Sim::new("lock");
    let (a, b) = (sim.session(), sim.session());
    let t = sim.acquire(a, json!({}))["granted"]["token"].as_u64().unwrap();
    sim.acquire(b, json!({}));
    let denied = sim.call_as_user(b, "bob", json!({ "revoke": { "lock": "L" } }));
    assert!(denied.unwrap_err().to_string().contains("only an admin"));
    sim.call(0, json!({ "revoke": { "lock": "L" } })).unwrap();
    assert_eq!(sim.mail(a), vec![json!({ "lock": "L", "revoked": true, "token": t })], "the holder is told");
    assert!(sim.mail(b)[0]["token"].as_u64().unwrap() > t, "the next waiter gets it, with a newer token");
    assert!(sim.release(a).is_err(), "the revoked holder holds nothing");
}

#[test]
fn the_queue_length_follows_every_way_a_waiter_leaves() {
    let mut sim = Sim::new("lock");
    let s: Vec<u64> = (0..5).map(|_| sim.session()).collect();
    let waiting = |sim: &mut Sim| sim.query(json!({ "holder": { "lock": "L" } }))["holder"]["waiting"].clone();
    assert_eq!(waiting(&mut sim), 0, "a lock nobody used");
    sim.acquire(s[0], json!({}));
    sim.acquire(s[1], json!({}));
    sim.acquire(s[2], json!({ "timeout_ms": 100 }));
    sim.acquire(s[3], json!({}));
    assert_eq!(waiting(&mut sim), 3);
    sim.tick_until(sim.ts + 100); // s[2] times out
    assert_eq!(waiting(&mut sim), 2);
    sim.end(s[3]); // a waiter's session ends
    assert_eq!(waiting(&mut sim), 1);
    assert_eq!(sim.acquire(s[4], json!({}))["queued"]["position"], 2, "behind s[1] only");
    sim.release(s[0]).unwrap(); // s[1] is granted
    assert_eq!(waiting(&mut sim), 1);
    assert_eq!(sim.acquire(s[0], json!({}))["queued"]["position"], 2);
    sim.end(s[1]); // the holder's session ends: s[4] is granted
    sim.release(s[4]).unwrap(); // s[0] is granted
    assert_eq!(waiting(&mut sim), 0);
    sim.release(s[0]).unwrap();
    assert!(sim.acquire(s[4], json!({}))["granted"]["token"].is_u64(), "free again");
}
