//! Service discovery with load balancing (the `registry` recipe): three instances of `api`
//! register (weights 2, 1, 1), a caller picks instances with weighted round-robin, one
//! instance dies (its session ends) and disappears, and least-assigned balancing takes over.
//!
//! `cargo run -p corral -- dev` in one terminal, then `cargo run -p corral-examples --example discovery`.

mod connect;

use corral_client::recipes::Balance;
use corral_client::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = connect::config()?;
    let service = format!("api-{}", std::process::id());
    let mut instances = Vec::new();
    for (name, weight) in [("a", 2), ("b", 1), ("c", 1)] {
        let client = Client::connect(&cfg).await?;
        client.start_session(5_000).await?;
        client.registry(&service).register(name, &format!("10.0.0.{}:8080", instances.len() + 1), weight).await?;
        instances.push(client);
    }
    let caller = Client::connect(&cfg).await?;
    let registry = caller.registry(&service);
    for i in registry.lookup().await? {
        println!("registered: {} at {} (weight {})", i.instance, i.meta, i.weight);
    }
    let picks: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..8 {
            v.push(registry.pick(Balance::RoundRobin).await?.instance);
        }
        v
    };
    println!("round-robin picks: {picks:?}");

    instances[0].close_session().await?; // instance a dies
    println!("after a's session ended: {:?}", registry.lookup().await?.iter().map(|i| &i.instance).collect::<Vec<_>>());
    for _ in 0..4 {
        let i = registry.pick(Balance::LeastAssigned).await?;
        println!("least-assigned pick: {} (picked {} times)", i.instance, i.assigned);
    }
    for c in &instances[1..] {
        c.close_session().await?;
    }
    Ok(())
}
