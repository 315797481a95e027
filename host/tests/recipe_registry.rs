//! The `registry` recipe entry by entry: instances tied to their session, lookup, and the two
//! deterministic balancing strategies.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Sim;
use serde_json::json;

fn register(sim: &mut Sim, s: u64, instance: &str, weight: u32) {
    let input = json!({ "register": { "service": "api", "instance": instance, "meta": format!("{instance}:80"), "weight": weight } });
    sim.call(s, input).unwrap();
}

fn picks(sim: &mut Sim, strategy: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = sim.call(0, json!({ "pick": { "service": "api", "strategy": strategy } })).unwrap();
            out["picked"]["instance"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn instances_live_with_their_session_and_picks_balance() {
    let mut sim = Sim::new("registry");
    let (a, b) = (sim.session(), sim.session());
    register(&mut sim, a, "a", 2);
    register(&mut sim, b, "b", 1);
    let found = sim.query(json!({ "lookup": { "service": "api" } }));
    assert_eq!(found["instances"].as_array().unwrap().len(), 2);
    assert_eq!(found["instances"][0]["meta"], "a:80");

    assert_eq!(picks(&mut sim, "round_robin", 6), ["a", "a", "b", "a", "a", "b"], "weighted round-robin");
    // a has 4 picks for weight 2, b 2 for weight 1: equal load; least-assigned keeps it so.
    let least = picks(&mut sim, "least_assigned", 6);
    assert_eq!(least.iter().filter(|x| *x == "a").count(), 4, "{least:?}");

    assert!(sim.call(b, json!({ "register": { "service": "api", "instance": "a" } })).is_err(), "a is a's");
    sim.end(a);
    assert_eq!(picks(&mut sim, "least_assigned", 2), ["b", "b"], "a went with its session");
    sim.end(b);
    assert!(sim.call(0, json!({ "pick": { "service": "api", "strategy": "round_robin" } })).is_err(), "nobody left");
}
