//! The `election` recipe on 3 real nodes: candidate processes (`corral election campaign`);
//! the leader is killed -9, twice. One leader per term, terms increase, the next leader takes
//! over within the session timeout plus a little, and an observer sees every change.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use corral_client::DeployOptions;
use corral_tests::{eventually, plugin_wasm, Cluster, NodeOpts};

const SESSION_TIMEOUT_MS: u64 = 1_000;

fn leaders(dir: &Path) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for k in 0..3 {
        if let Ok(t) = std::fs::read_to_string(dir.join(format!("leader{k}"))) {
            out.push((k, t.trim().parse().unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_leader_per_term_and_a_fast_handover_when_it_dies() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    c.client()?.plugin_deploy("election", plugin_wasm("election"), DeployOptions::default()).await?;
    let observer = c.client()?;
    observer.start_session(5_000).await?;
    let mut changes = observer.election("E").observe().await?;
    assert_eq!(changes.recv().await, Some(None), "nobody leads yet");

    let dir = tempfile::tempdir()?;
    let mut candidates: Vec<Child> = Vec::new();
    for k in 0..3 {
        let file = dir.path().join(format!("leader{k}"));
        let script = format!("echo $CORRAL_ELECTION_TERM > {0}.tmp && mv {0}.tmp {0} && sleep 60", file.display());
        let timeout = SESSION_TIMEOUT_MS.to_string();
        let args = ["election", "campaign", "E", "--value", &format!("candidate-{k}"), "--session-timeout", &timeout];
        candidates.push(c.cli()?.args(args).args(["--", "sh", "-c", &script]).stdout(Stdio::null()).spawn()?);
        if k == 0 {
            eventually(Duration::from_secs(30), "the first leader", || async { !leaders(dir.path()).is_empty() })
                .await?;
        }
    }

    let mut terms = Vec::new();
    let mut seen = 0;
    for round in 0..3 {
        let now = leaders(dir.path());
        assert_eq!(now.len(), round + 1, "exactly one new leader per round: {now:?}");
        let (k, term) = *now.iter().max_by_key(|(_, t)| *t).unwrap();
        let l = c.client()?.election("E").leader().await?.expect("a leader");
        assert_eq!((l.term, l.value.as_str()), (term, format!("candidate-{k}").as_str()), "the query agrees");
        // The observer saw it too (and nothing else since the last one).
        let seen_now = loop {
            match changes.recv().await {
                Some(Some(l)) if l.term == term => break l,
                Some(Some(l)) => assert!(l.term > seen, "observer saw terms go back"),
                Some(None) => {}
                None => panic!("observer stream ended"),
            }
        };
        seen = seen_now.term;
        assert!(terms.last().is_none_or(|t| *t < term), "terms increase");
        terms.push(term);
        if round == 2 {
            break;
        }
        // Kill the leader; the next takes over within the session timeout plus a little.
        let killed_at = Instant::now();
        candidates[k].kill()?;
        let _ = candidates[k].wait();
        eventually(Duration::from_secs(30), "the next leader", || async { leaders(dir.path()).len() == round + 2 })
            .await?;
        let handover = killed_at.elapsed();
        println!("handover {round}: {handover:?} (session timeout {SESSION_TIMEOUT_MS} ms)");
        assert!(handover < Duration::from_millis(SESSION_TIMEOUT_MS + 3_000), "handover took {handover:?}");
    }
    for mut child in candidates {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}
