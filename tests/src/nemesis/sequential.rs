//! The sequential-create workload: sequential nodes under one parent get unique numbers, and
//! a create that began after another returned gets a larger number (the counter is
//! linearizable).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corral_client::{Client, CreateMode};

pub const PARENT: &str = "/seq";

/// (number, invoked, returned) of every acknowledged sequential create, in ns since the start.
pub type Created = Arc<Mutex<Vec<(u64, u64, u64)>>>;

pub async fn create_loop(client: Client, start: Instant, created: Created, stop: Arc<AtomicBool>) {
    let mode = CreateMode { sequential: true, ..CreateMode::default() };
    while !stop.load(Ordering::Relaxed) {
        let invoked = start.elapsed().as_nanos() as u64;
        if let Ok((path, _)) = client.create_with(&format!("{PARENT}/s-"), b"", mode).await {
            let returned = start.elapsed().as_nanos() as u64;
            let n = path.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
            created.lock().unwrap_or_else(|p| p.into_inner()).push((n, invoked, returned));
        }
    }
}

/// Duplicated numbers, and numbers that go back in real-time order.
pub fn check(created: &[(u64, u64, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut numbers: Vec<u64> = created.iter().map(|c| c.0).collect();
    numbers.sort_unstable();
    if let Some(w) = numbers.windows(2).find(|w| w[0] == w[1]) {
        out.push(format!("sequential: number {} given twice", w[0]));
        return out;
    }
    // Sweep by invocation: every create that returned before this one began has a smaller number.
    let mut by_return: Vec<&(u64, u64, u64)> = created.iter().collect();
    by_return.sort_by_key(|c| c.2);
    let mut by_invoke: Vec<&(u64, u64, u64)> = created.iter().collect();
    by_invoke.sort_by_key(|c| c.1);
    let (mut j, mut max_before) = (0, None::<u64>);
    for c in by_invoke {
        while j < by_return.len() && by_return[j].2 < c.1 {
            max_before = max_before.max(Some(by_return[j].0));
            j += 1;
        }
        if let Some(m) = max_before.filter(|m| *m >= c.0) {
            out.push(format!("sequential: number {} was given after {m} had been returned", c.0));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn finds_duplicates_and_numbers_that_go_back() {
        assert!(check(&[(1, 0, 10), (2, 5, 20), (3, 21, 30)]).is_empty());
        // Concurrent creates may be numbered either way.
        assert!(check(&[(2, 0, 10), (1, 5, 20)]).is_empty());
        assert_eq!(check(&[(1, 0, 10), (1, 11, 20)]).len(), 1);
        assert_eq!(check(&[(5, 0, 10), (4, 11, 20)]).len(), 1);
    }
}
