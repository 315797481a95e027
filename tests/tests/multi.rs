//! `multi` against real processes, through `corral txn`: one failing check leaves nothing
//! applied; a good one applies everything.

use std::io::Write;
use std::process::Stdio;

use corral_client::Consistency;
use corral_tests::{Cluster, NodeOpts};

fn txn(c: &Cluster, json: &str) -> anyhow::Result<(bool, String, String)> {
    let mut child = c
        .cli()?
        .args(["--json", "txn", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(json.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_leaves_nothing_applied() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let client = c.client()?;
    client.create("/cfg", b"v0").await?;
    let before = client.children("/", Consistency::Linearizable).await?;

    let (ok, out, _) = txn(
        &c,
        r#"[{"op":"create","path":"/new","data":"x"},
            {"op":"set","path":"/cfg","data":"v1"},
            {"op":"check","path":"/cfg","version":0}]"#,
    )?;
    assert!(!ok, "a multi with a failing check succeeded: {out}");
    assert!(out.contains("MultiFailed") && out.contains("multi operation 2"), "{out}");
    assert_eq!(client.children("/", Consistency::Linearizable).await?, before, "/new was created");
    assert_eq!(client.get("/cfg").await?.0, b"v0", "/cfg was set");

    let (ok, out, err) = txn(
        &c,
        r#"[{"op":"check","path":"/cfg","version":0},
            {"op":"create","path":"/new","data":"x"},
            {"op":"set","path":"/cfg","data":"v1","version":0}]"#,
    )?;
    assert!(ok, "{out} {err}");
    assert!(out.contains("\"applied\":3"), "{out}");
    assert_eq!(client.get("/cfg").await?.0, b"v1");
    assert_eq!(client.get("/new").await?.0, b"x");
    Ok(())
}
