//! The `queue` recipe entry by entry: priorities then FIFO, blocking takes woken one at a time,
//! delayed delivery, redelivery when a taker's session ends or its visibility timeout passes,
//! acknowledgement only by the session holding the item, and the size bound.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Sim;
use serde_json::{json, Value};

fn put(sim: &mut Sim, data: &str, extra: Value) -> u64 {
    let mut a = json!({ "queue": "Q", "data": data });
    a.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    sim.call(0, json!({ "put": a })).unwrap()["put"]["id"].as_u64().unwrap()
}

fn take(sim: &mut Sim, s: u64, visibility_ms: u64) -> Value {
    sim.call(s, json!({ "take": { "queue": "Q", "visibility_ms": visibility_ms } })).unwrap()
}

#[test]
fn priorities_fifo_blocking_takes_and_delays() {
    let mut sim = Sim::new("queue");
    let (a, b, c) = (sim.session(), sim.session(), sim.session());
    put(&mut sim, "low-1", json!({}));
    put(&mut sim, "high", json!({ "priority": 5 }));
    put(&mut sim, "low-2", json!({}));
    let order: Vec<Value> = (0..3).map(|_| take(&mut sim, a, 10_000)["item"]["data"].clone()).collect();
    assert_eq!(order, vec![json!("high"), json!("low-1"), json!("low-2")]);

    assert_eq!(take(&mut sim, b, 10_000), json!({ "waiting": { "position": 1 } }));
    assert_eq!(take(&mut sim, c, 10_000), json!({ "waiting": { "position": 2 } }));
    put(&mut sim, "delayed", json!({ "delay_ms": 500 }));
    assert!(sim.mail(b).is_empty(), "a delayed item is not delivered early");
    sim.tick_until(sim.ts + 500);
    assert_eq!(sim.mail(b)[0]["data"], "delayed", "the first waiting taker gets it");
    assert!(sim.mail(c).is_empty(), "only one taker is woken per item");
    put(&mut sim, "next", json!({}));
    assert_eq!(sim.mail(c)[0]["data"], "next");
}

#[test]
fn unacknowledged_items_return_and_are_acknowledged_once() {
    let mut sim = Sim::new("queue");
    let (a, b) = (sim.session(), sim.session());
    let id = put(&mut sim, "job", json!({}));
    assert_eq!(take(&mut sim, a, 300)["item"]["id"], id);
    assert!(take(&mut sim, b, 10_000).get("waiting").is_some());
    sim.tick_until(sim.ts + 300);
    assert_eq!(sim.mail(b)[0]["id"], id, "redelivered after the visibility timeout");
    assert!(sim.call(a, json!({ "ack": { "queue": "Q", "id": id } })).is_err(), "a's lease is gone");
    sim.call(b, json!({ "ack": { "queue": "Q", "id": id } })).unwrap();
    assert!(sim.call(b, json!({ "ack": { "queue": "Q", "id": id } })).is_err(), "acknowledged once");

    let id2 = put(&mut sim, "job2", json!({}));
    assert_eq!(take(&mut sim, a, 10_000)["item"]["id"], id2);
    assert!(take(&mut sim, b, 10_000).get("waiting").is_some());
    sim.end(a);
    assert_eq!(sim.mail(b)[0]["id"], id2, "returned when its taker's session ended");
    assert_eq!(
        sim.query(json!({ "size": { "queue": "Q" } })),
        json!({ "size": { "items": 1, "ready": 0, "takers": 0 } })
    );
}

#[test]
fn a_full_queue_refuses_puts_clearly() {
    let mut sim = Sim::new("queue");
    sim.call(0, json!({ "configure": { "queue": "Q", "capacity": 2 } })).unwrap();
    put(&mut sim, "1", json!({}));
    put(&mut sim, "2", json!({}));
    let e = sim.call(0, json!({ "put": { "queue": "Q", "data": "3" } })).unwrap_err();
    assert!(e.to_string().contains("full"), "{e}");
}

#[test]
fn the_takers_count_follows_deliveries_and_session_ends() {
    let mut sim = Sim::new("queue");
    let s: Vec<u64> = (0..4).map(|_| sim.session()).collect();
    let takers = |sim: &mut Sim| sim.query(json!({ "size": { "queue": "Q" } }))["size"]["takers"].clone();
    assert_eq!(takers(&mut sim), 0);
    for (i, t) in s.iter().take(3).enumerate() {
        assert_eq!(take(&mut sim, *t, 10_000), json!({ "waiting": { "position": i + 1 } }));
    }
    sim.end(s[1]); // a waiting taker's session ends
    assert_eq!(takers(&mut sim), 2);
    put(&mut sim, "one", json!({})); // delivered to s[0]
    assert_eq!(sim.mail(s[0])[0]["data"], "one");
    assert_eq!(takers(&mut sim), 1);
    assert_eq!(take(&mut sim, s[3], 10_000), json!({ "waiting": { "position": 2 } }), "behind s[2] only");
    put(&mut sim, "two", json!({}));
    put(&mut sim, "three", json!({}));
    assert_eq!(takers(&mut sim), 0);
}
