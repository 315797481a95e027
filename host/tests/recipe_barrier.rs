//! The `barrier` recipe entry by entry: a barrier holds its waiters until removed; a double
//! barrier lets nobody in before `count` have entered and nobody out before all have left, a
//! session's end counting as leaving.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Sim;
use serde_json::json;

#[test]
fn a_barrier_holds_waiters_until_it_is_removed() {
    let mut sim = Sim::new("barrier");
    let s: Vec<u64> = (0..3).map(|_| sim.session()).collect();
    assert_eq!(sim.call(s[0], json!({ "wait": { "barrier": "B" } })).unwrap(), json!("open"), "not set: open");
    sim.call(0, json!({ "set": { "barrier": "B" } })).unwrap();
    for &x in &s {
        assert!(sim.call(x, json!({ "wait": { "barrier": "B" } })).unwrap().get("waiting").is_some());
    }
    sim.end(s[2]);
    assert!(sim.mail(s[0]).is_empty(), "held while set");
    sim.call(0, json!({ "remove": { "barrier": "B" } })).unwrap();
    for &x in &s[..2] {
        assert_eq!(sim.mail(x), vec![json!({ "barrier": "B", "open": true })]);
    }
}

#[test]
fn a_double_barrier_gathers_count_and_releases_when_all_have_left() {
    let mut sim = Sim::new("barrier");
    let (a, b, c) = (sim.session(), sim.session(), sim.session());
    let enter = |sim: &mut Sim, s| sim.call(s, json!({ "enter": { "barrier": "D", "count": 3 } })).unwrap();
    assert_eq!(enter(&mut sim, a), json!({ "waiting": { "count": 1 } }));
    assert_eq!(enter(&mut sim, b), json!({ "waiting": { "count": 2 } }));
    assert!(sim.mail(a).is_empty(), "nobody enters before all 3 have arrived");
    assert_eq!(enter(&mut sim, c), json!("entered"));
    assert_eq!(sim.mail(a), vec![json!({ "barrier": "D", "entered": true })]);
    assert_eq!(sim.mail(b), vec![json!({ "barrier": "D", "entered": true })]);
    let late = sim.session();
    assert!(sim.call(late, json!({ "enter": { "barrier": "D", "count": 3 } })).is_err(), "running: no entry");

    assert_eq!(sim.call(a, json!({ "leave": { "barrier": "D" } })).unwrap(), json!({ "waiting": { "count": 2 } }));
    sim.end(b);
    assert!(sim.mail(a).is_empty(), "c is still in");
    assert_eq!(sim.call(c, json!({ "leave": { "barrier": "D" } })).unwrap(), json!("left"));
    assert_eq!(sim.mail(a), vec![json!({ "barrier": "D", "left": true })]);
    assert_eq!(enter(&mut sim, late), json!({ "waiting": { "count": 1 } }), "reset for the next round");
}
