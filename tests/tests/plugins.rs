//! The plugin platform on a running 3-node ensemble of real processes: deploy without a
//! restart and call on every node; upgrade keeps state and runs `migrate`; remove frees the
//! namespace; a restarted node runs the same versions; hostile plugins fail only their own
//! calls while the cluster keeps serving; notifications survive failover.

use std::time::Duration;

use corral_client::{ClientError, Consistency, DeployOptions, ServerError};
use corral_tests::{eventually, plugin_wasm, Cluster, NodeOpts};

fn text(out: (Vec<u8>, u64)) -> String {
    String::from_utf8(out.0).unwrap()
}

/// A core module whose one import is the function `module::name` (no params, no results).
fn importing(module: &str, name: &str) -> Vec<u8> {
    let mut import = vec![1u8];
    for s in [module, name] {
        import.push(s.len() as u8);
        import.extend_from_slice(s.as_bytes());
    }
    import.extend_from_slice(&[0x00, 0x00]);
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
    m.push(0x02);
    m.push(import.len() as u8);
    m.extend(import);
    m
}

fn server_err(r: Result<(Vec<u8>, u64), ClientError>) -> ServerError {
    match r {
        Err(ClientError::Server(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_call_everywhere_upgrade_remove_and_restart() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    let index = admin.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions::default()).await?;
    assert!(index > 0);

    // Callable through every node, no restart; queries agree on every node.
    let mut expect = 0;
    for id in c.ids() {
        let on = c.client_on(id)?;
        expect += id as i64;
        assert_eq!(text(on.plugin_call("counter", format!(r#"{{"add":{id}}}"#).as_bytes()).await?), expect.to_string());
    }
    for id in c.ids() {
        let on = c.client_on(id)?;
        assert_eq!(text(on.plugin_query("counter", br#""get""#, Consistency::Linearizable).await?), expect.to_string());
    }

    // The CLI lists it: name, version, hash, size, deployed at.
    let out = c.cli()?.args(["--json", "plugin", "ls"]).output()?;
    let row: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        (row["name"].as_str(), row["version"].as_u64(), row["deployed_at"].as_u64()),
        (Some("counter"), Some(1), Some(index))
    );

    // Upgrade keeps state and runs migrate, on every node.
    let dir = tempfile::tempdir()?;
    let v2 = dir.path().join("probe_v2.wasm");
    std::fs::write(&v2, plugin_wasm("probe_v2"))?;
    let out = c.cli()?.args(["plugin", "upgrade", "counter"]).arg(&v2).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for id in c.ids() {
        let on = c.client_on(id)?;
        let v = text(on.plugin_query("counter", br#""version""#, Consistency::Linearizable).await?);
        assert_eq!(v, r#"{"version":2,"migrated_from":1}"#, "node {id}");
        assert_eq!(text(on.plugin_query("counter", br#""get""#, Consistency::Linearizable).await?), expect.to_string());
    }

    // A restarted node runs the same version, with the same state.
    let follower = c.ids().into_iter().find(|id| *id != 1).unwrap();
    c.kill(follower);
    c.restart(follower).await?;
    let on = c.client_on(follower)?;
    let after = text(on.plugin_call("counter", br#"{"add":100}"#).await?);
    assert_eq!(after, (expect + 100).to_string());
    let v = text(on.plugin_query("counter", br#""version""#, Consistency::Linearizable).await?);
    assert_eq!(v, r#"{"version":2,"migrated_from":1}"#);

    // Only admins manage plugins.
    let bob = c.client_as("bob")?;
    let denied = bob.plugin_remove("counter").await;
    assert!(matches!(denied, Err(ClientError::Server(ServerError::NoAuth { .. }))), "{denied:?}");

    // Remove frees the namespace: a new deploy under the name starts empty.
    admin.plugin_remove("counter").await?;
    assert!(admin.plugin_list(Consistency::Linearizable).await?.is_empty());
    let gone = server_err(admin.plugin_call("counter", br#""get""#).await);
    assert!(matches!(gone, ServerError::NoPlugin { .. }), "{gone:?}");
    admin.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions::default()).await?;
    assert_eq!(text(admin.plugin_query("counter", br#""get""#, Consistency::Linearizable).await?), "0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_plugins_fail_only_their_own_calls_while_the_cluster_serves() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    let opts = DeployOptions { fuel: Some(100_000_000), quota: Some(1 << 20), ..DeployOptions::default() };
    admin.plugin_deploy("hostile", plugin_wasm("hostile"), opts).await?;
    admin.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions::default()).await?;

    // A client writing to the tree the whole time: none of its writes may fail.
    let writer = c.client()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let writes = tokio::spawn(async move {
        let mut n = 0u64;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            writer.create(&format!("/w{n}"), b"x").await.map_err(|e| format!("write {n}: {e}"))?;
            n += 1;
        }
        Ok::<u64, String>(n)
    });

    let attacks = [
        ("loop", "ran out of fuel"),
        ("host-loop", "ran out of fuel"),
        ("bomb", "memory limit"),
        ("recurse", "stack overflow"),
        ("trap", "unreachable"),
        ("panic", "unreachable"),
        ("big-output", "over the limit"),
        ("quota", "quota"),
    ];
    let mut added = 0;
    for (attack, expect) in attacks {
        let e = server_err(admin.plugin_call("hostile", format!("{attack:?}").as_bytes()).await);
        let ServerError::PluginFailed { reason, .. } = &e else { panic!("{attack}: {e:?}") };
        assert!(reason.contains(expect), "{attack}: {reason}");
        added += 1;
        assert_eq!(text(admin.plugin_call("counter", br#"{"add":1}"#).await?), added.to_string());
    }
    let e = server_err(admin.plugin_query("hostile", br#""write""#, Consistency::Linearizable).await);
    assert!(e.to_string().contains("may not write"), "{e}");

    // Bad uploads: each refused with a reason, nothing deployed.
    for (bytes, expect) in [
        (b"\0asm\x01\0\0\0\x01\xff".to_vec(), "invalid wasm"),
        (b"MZ not wasm".to_vec(), "not a WebAssembly"),
        (plugin_wasm("probe")[..1000].to_vec(), "invalid"),
        (importing("wasi_snapshot_preview1", "fd_write"), "no WASI"),
        (importing("env", "syscall"), "may import only corral:plugin/host@1.0.0"),
        (importing("corral:plugin/host@1.0.0", "launch-missiles"), "missing function `launch-missiles`"),
    ] {
        let e = admin.plugin_deploy("bad", bytes, DeployOptions::default()).await.unwrap_err();
        assert!(e.to_string().contains(expect), "{e}");
    }
    let names: Vec<String> = admin.plugin_list(Consistency::Linearizable).await?.into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["counter".to_string(), "hostile".to_string()]);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = writes.await?.map_err(anyhow::Error::msg)?;
    assert!(n > 0, "the writer made progress");
    // Every node still agrees on the hostile plugin's untouched state.
    for id in c.ids() {
        let q = c.client_on(id)?.plugin_query("hostile", br#""read""#, Consistency::Linearizable).await?;
        assert_eq!(text(q), r#""""#, "node {id}: no attack left anything behind");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_survive_failover_until_acknowledged() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    admin.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions::default()).await?;

    let listener = c.client()?;
    let sid = listener.start_session(3_000).await?;
    let input = format!(r#"{{"notify":{{"session":{sid},"msg":"grant-1"}}}}"#);
    admin.plugin_call("counter", input.as_bytes()).await?;
    let got = listener.notifications((0, 0), 5_000).await?;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].plugin.as_str(), got[0].payload.as_slice()), ("counter", b"grant-1".as_slice()));

    // The node holding the session dies before the client acknowledges: the client moves to
    // another node, and the notification is still there.
    let at = listener.current_endpoint().await.to_string();
    let holder = c.ids().into_iter().find(|id| c.addr(*id) == at).expect("the listener's node");
    c.kill(holder);
    let again = listener.notifications((0, 0), 0).await?;
    assert_eq!(again, got, "redelivered after failover");
    assert_ne!(listener.current_endpoint().await.to_string(), at);
    listener.ack_notifications(got[0].pos).await?;
    assert!(listener.notifications((0, 0), 0).await?.is_empty(), "acknowledged: gone");

    // A waiting reader wakes when a notification arrives.
    let pos = got[0].pos;
    let waiter = tokio::spawn(async move { listener.notifications(pos, 10_000).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let input = format!(r#"{{"notify":{{"session":{sid},"msg":"grant-2"}}}}"#);
    eventually(Duration::from_secs(10), "a call after the failover", || async {
        admin.plugin_call("counter", input.as_bytes()).await.is_ok()
    })
    .await?;
    let woke = waiter.await??;
    assert_eq!(woke.iter().map(|n| n.payload.clone()).collect::<Vec<_>>(), vec![b"grant-2".to_vec()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_missed_the_deploy_gets_code_and_state_in_a_snapshot() -> anyhow::Result<()> {
    let opts = NodeOpts { snapshot_every: Some(50), keep_logs: Some(5), ..NodeOpts::default() };
    let mut c = Cluster::start(3, opts).await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let lagger = c.ids().into_iter().find(|&id| id != leader).expect("a follower");
    c.kill(lagger);

    let client = c.client_on(leader)?;
    client.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions::default()).await?;
    for _ in 0..200 {
        client.plugin_call("counter", br#"{"add":1}"#).await?;
    }
    let st = c.status(leader).await?;
    c.restart(lagger).await?;
    c.wait_applied(lagger, st.applied_index, Duration::from_secs(30)).await?;
    let log = std::fs::read_to_string(c.log_path(lagger))?;
    assert!(log.contains("installed snapshot"), "the lagger caught up without a snapshot");
    let on = c.client_on(lagger)?;
    let (v, _) = on.plugin_query("counter", br#""get""#, Consistency::Serializable).await?;
    assert_eq!(v, b"200", "the snapshot carried the plugin's state");
    assert_eq!(text(on.plugin_call("counter", br#"{"add":1}"#).await?), "201", "and its code");
    // The call's reply can reach the client before the lagger has applied the call (it learns
    // the commit separately): compare digests once every node is at the same entry.
    let st = c.status(leader).await?;
    c.replicas_agree(st.applied_index, Duration::from_secs(10)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timers_fire_in_leader_time_and_permissions_are_per_plugin() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts::default()).await?;
    let admin = c.client()?;
    let acl = corral_client::acl::parse("alice:w,*:r").map_err(anyhow::Error::msg)?;
    admin.plugin_deploy("counter", plugin_wasm("probe"), DeployOptions { acl, ..DeployOptions::default() }).await?;

    // Nobody writes after setting the timer: the leader's tick makes it fire.
    let (ctx, _) = admin.plugin_call("counter", br#""context""#).await?;
    let now = serde_json::from_slice::<serde_json::Value>(&ctx)?["time_ms"].as_u64().unwrap();
    let input = format!(r#"{{"timer":{{"at_ms":{},"tag":"t"}}}}"#, now + 300);
    admin.plugin_call("counter", input.as_bytes()).await?;
    eventually(Duration::from_secs(10), "the timer to fire", || async {
        let q = admin.plugin_query("counter", br#"{"read":"fired/t"}"#, Consistency::Linearizable).await;
        matches!(q, Ok((v, _)) if v != b"null")
    })
    .await?;

    // Calls need `w` on the plugin, queries `r`; admins need neither.
    let alice = c.client_as("alice")?;
    let bob = c.client_as("bob")?;
    alice.plugin_call("counter", br#"{"add":1}"#).await?;
    let denied = server_err(bob.plugin_call("counter", br#"{"add":1}"#).await);
    assert!(matches!(denied, ServerError::NoAuth { .. }), "{denied:?}");
    assert_eq!(text(bob.plugin_query("counter", br#""get""#, Consistency::Linearizable).await?), "1");
    Ok(())
}

/// Entries that run guest code are applied on the node's apply thread (`raft/applier.rs`): a
/// node with one runtime thread must keep answering heartbeats while plugins burn all their
/// fuel, or its followers would elect a new leader (or it would campaign itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugins_burning_their_fuel_set_off_no_election_on_one_thread_nodes() -> anyhow::Result<()> {
    let c = Cluster::start(3, NodeOpts { worker_threads: Some(1), ..NodeOpts::default() }).await?;
    let admin = c.client()?;
    // The most fuel a plugin may have: about 0.15 s of guest code per call.
    let opts = DeployOptions { fuel: Some(1_000_000_000), ..DeployOptions::default() };
    admin.plugin_deploy("hostile", plugin_wasm("hostile"), opts).await?;
    let leader = c.wait_leader(Duration::from_secs(5)).await?;
    let term = c.status(leader).await?.term;

    // Grouped into one or two entries: each replica runs about a second of guest code per entry.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let admin = admin.clone();
            tokio::spawn(async move { admin.plugin_call("hostile", br#""loop""#).await })
        })
        .collect();
    for call in calls {
        let e = server_err(call.await?);
        assert!(e.to_string().contains("ran out of fuel"), "{e}");
    }
    let last = c.status(leader).await?.applied_index;
    for id in c.ids() {
        c.wait_applied(id, last, Duration::from_secs(20)).await?;
        let s = c.status(id).await?;
        assert_eq!((s.term, s.leader), (term, Some(leader)), "node {id} saw an election");
    }
    Ok(())
}
