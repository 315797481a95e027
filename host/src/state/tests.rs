use std::sync::Arc;

use corral_proto::{CreateMode, MultiOp};

use super::*;

fn state() -> State {
    State::new(Arc::new(MemStore::default()))
}

fn run(s: &State, index: u64, ts: u64, op: Op) -> Result<Reply, Error> {
    s.with_txn(|t| s.apply(t, index, &Command::plain(ts, op))).expect("store")
}

fn create(p: &str) -> Op {
    Op::Create { path: p.into(), data: p.as_bytes().to_vec(), mode: CreateMode::default() }
}

#[test]
fn create_get_set_delete_with_zookeeper_stats() {
    let s = state();
    let Ok(Reply::Created { stat, .. }) = run(&s, 5, 1000, create("/a")) else { panic!("create failed") };
    assert_eq!((stat.czxid, stat.mzxid, stat.ctime, stat.version), (5, 5, 1000, 0));
    run(&s, 6, 1001, create("/a/b")).expect("child");
    let (_, root) = s.get("/").expect("store").expect("root");
    assert_eq!((root.num_children, root.cversion, root.pzxid), (1, 1, 5));
    let (_, a) = s.get("/a").expect("store").expect("a");
    assert_eq!((a.num_children, a.cversion, a.pzxid), (1, 1, 6));

    let Ok(Reply::Stat(Some(st))) =
        run(&s, 7, 1002, Op::Set { path: "/a".into(), data: b"x".to_vec(), version: Some(0) })
    else {
        panic!("set failed")
    };
    assert_eq!((st.version, st.mzxid, st.mtime, st.czxid, st.data_length), (1, 7, 1002, 5, 1));
    assert_eq!(s.get("/a").expect("store").expect("a").0, b"x");

    assert_eq!(s.children("/").expect("store"), Ok(vec!["a".to_string()]));
    assert!(matches!(run(&s, 8, 1003, Op::Delete { path: "/a".into(), version: None }), Err(Error::NotEmpty { .. })));
    run(&s, 9, 1004, Op::Delete { path: "/a/b".into(), version: Some(0) }).expect("delete child");
    run(&s, 10, 1005, Op::Delete { path: "/a".into(), version: None }).expect("delete");
    assert!(matches!(s.get("/a").expect("store"), Err(Error::NoNode { .. })));
    assert_eq!(s.children("/").expect("store"), Ok(vec![]));
}

#[test]
fn failed_operations_change_nothing() {
    let s = state();
    run(&s, 1, 1, create("/a")).expect("create");
    let before = s.export().expect("export");
    let bad = [
        create("/a"),
        create("/missing/child"),
        create("relative"),
        create("/a/"),
        create("/a//b"),
        create("/a/\0"),
        Op::Set { path: "/a".into(), data: vec![], version: Some(9) },
        Op::Set { path: "/nope".into(), data: vec![], version: None },
        Op::Delete { path: "/".into(), version: None },
        Op::Delete { path: "/a".into(), version: Some(3) },
        Op::Delete { path: "/nope".into(), version: None },
    ];
    for (i, op) in bad.into_iter().enumerate() {
        assert!(run(&s, 2 + i as u64, 1, op.clone()).is_err(), "{op:?} succeeded");
    }
    assert_eq!(s.export().expect("export"), before);
}

#[test]
fn time_never_goes_backwards() {
    let s = state();
    run(&s, 1, 5000, create("/a")).expect("create");
    let Ok(Reply::Created { stat, .. }) = run(&s, 2, 10, create("/b")) else { panic!() };
    assert_eq!(stat.ctime, 5000, "a new leader with a slow clock must not move time back");
}

#[test]
fn same_commands_give_identical_state_and_snapshots_roundtrip() {
    let ops: Vec<Op> = (0..200)
        .map(|i| match i % 4 {
            0 => create(&format!("/k{}", i % 37)),
            1 => Op::Set { path: format!("/k{}", i % 37), data: vec![i as u8], version: None },
            2 => Op::Delete { path: format!("/k{}", (i * 7) % 37), version: None },
            _ => create(&format!("/k{}/c{}", i % 37, i)),
        })
        .collect();
    let (a, b) = (state(), state());
    for (i, op) in ops.iter().enumerate() {
        let ra = run(&a, i as u64 + 1, i as u64, op.clone());
        let rb = run(&b, i as u64 + 1, i as u64, op.clone());
        assert_eq!(ra, rb);
    }
    let exported = a.export().expect("export");
    assert_eq!(exported, b.export().expect("export"));
    let bytes = encode_snapshot(&exported);
    let c = state();
    c.replace_all(decode_snapshot(&bytes).expect("decode"), 200).expect("import");
    assert_eq!(c.export().expect("export"), exported);
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(decode_snapshot(&corrupt).is_err());
    assert!(decode_snapshot(&bytes[..bytes.len() / 2]).is_err());
}

fn in_session(s: &State, index: u64, ts: u64, session: u64, req: u64, op: Op) -> Result<Reply, Error> {
    let cmd = Command { session, req, ..Command::plain(ts, op) };
    s.with_txn(|t| s.apply(t, index, &cmd)).expect("store")
}

fn mode(f: impl FnOnce(&mut CreateMode)) -> CreateMode {
    let mut m = CreateMode::default();
    f(&mut m);
    m
}

fn new_session(s: &State, index: u64) -> u64 {
    let op = Op::CreateSession { timeout_ms: 5000, secret: vec![1, 2, 3] };
    let Ok(Reply::Session { id, .. }) = run(s, index, 1, op) else { panic!("no session") };
    assert_eq!(id, index, "a session's id is the index that created it");
    id
}

#[test]
fn ephemerals_belong_to_their_session_and_go_with_it() {
    let s = state();
    let sid = new_session(&s, 1);
    run(&s, 2, 1, create("/app")).expect("parent");
    let eph = |p: &str| Op::Create { path: p.into(), data: vec![], mode: mode(|m| m.ephemeral = true) };
    let Ok(Reply::Created { stat, .. }) = in_session(&s, 3, 1, sid, 1, eph("/app/e1")) else { panic!() };
    assert_eq!(stat.ephemeral_owner, sid);
    in_session(&s, 4, 1, sid, 2, eph("/app/e2")).expect("e2");
    assert!(matches!(run(&s, 5, 1, eph("/app/e3")), Err(Error::NoSession)), "ephemeral needs a session");
    assert!(in_session(&s, 6, 1, sid, 3, create("/app/e1/child")).is_err(), "ephemerals have no children");
    assert_eq!(s.children("/app").expect("store").expect("ls").len(), 2);

    run(&s, 7, 1, Op::ExpireSessions { ids: vec![sid] }).expect("expire");
    assert_eq!(s.children("/app").expect("store").expect("ls"), Vec::<String>::new());
    assert!(!s.session_exists(sid).expect("store"));
    assert!(matches!(in_session(&s, 8, 1, sid, 4, create("/app/x")), Err(Error::SessionExpired { .. })));
}

#[test]
fn a_resent_request_is_answered_once() {
    let s = state();
    let sid = new_session(&s, 1);
    let seq = || Op::Create { path: "/job-".into(), data: vec![], mode: mode(|m| m.sequential = true) };
    let first = in_session(&s, 2, 1, sid, 7, seq()).expect("create");
    let again = in_session(&s, 3, 1, sid, 7, seq()).expect("resend");
    assert_eq!(first, again, "the resend gets the first reply");
    assert_eq!(s.children("/").expect("store").expect("ls").len(), 1, "and creates nothing");
    let Ok(Reply::Created { path, .. }) = in_session(&s, 4, 1, sid, 8, seq()) else { panic!() };
    assert_eq!(path, "/job-00000000000000000001");
}

/// A copy of a request that reaches the log after the client already had its reply and moved
/// on (its next request's `done_below` passed it, so the stored reply is gone) is not applied
/// again. The nemesis found a queue put applied twice this way: two items, one put (a follower
/// paused while it held the put forwarded it when continued, after the client's resend had
/// been answered).
#[test]
fn a_late_copy_of_an_answered_request_is_not_applied() {
    let s = state();
    let sid = new_session(&s, 1);
    let seq = || Op::Create { path: "/job-".into(), data: vec![], mode: mode(|m| m.sequential = true) };
    let with = |index, req, done_below| {
        let cmd = Command { session: sid, req, done_below, ..Command::plain(1, seq()) };
        s.with_txn(|t| s.apply(t, index, &cmd)).expect("store")
    };
    with(2, 7, 7).expect("request 7");
    with(3, 8, 8).expect("request 8: the client has the reply to 7");
    let late = with(4, 7, 7);
    assert!(matches!(late, Err(Error::BadRequest { .. })), "{late:?}");
    assert_eq!(s.children("/").expect("store").expect("ls").len(), 2, "the late copy creates nothing");
    // Requests still unanswered are applied, and resends of them answered from the session.
    let first = with(5, 9, 8).expect("request 9");
    assert_eq!(with(6, 9, 8).expect("its resend"), first);
    assert_eq!(s.children("/").expect("store").expect("ls").len(), 3);
    // The floor goes with the session.
    run(&s, 7, 1, Op::ExpireSessions { ids: vec![sid] }).expect("expire");
    assert_eq!(s.with_txn(|t| super::session::answered_below(t, sid)).expect("store"), 0);
}

#[test]
fn sequential_names_increase_per_parent() {
    let s = state();
    let seq = |p: &str| Op::Create { path: p.into(), data: vec![], mode: mode(|m| m.sequential = true) };
    run(&s, 1, 1, create("/q")).expect("q");
    let mut names = Vec::new();
    for i in 0..5 {
        let Ok(Reply::Created { path, .. }) = run(&s, 2 + i, 1, seq("/q/item-")) else { panic!() };
        names.push(path);
    }
    let Ok(Reply::Created { path: other, .. }) = run(&s, 10, 1, seq("/other-")) else { panic!() };
    assert_eq!(names[0], "/q/item-00000000000000000000");
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(other, "/other-00000000000000000000", "counters are per parent");
}

#[test]
fn containers_go_with_their_last_child_and_ttl_nodes_when_stale_and_childless() {
    let s = state();
    let container = Op::Create { path: "/locks".into(), data: vec![], mode: mode(|m| m.container = true) };
    run(&s, 1, 1, container).expect("container");
    run(&s, 2, 1, create("/locks/a")).expect("a");
    run(&s, 3, 1, create("/locks/b")).expect("b");
    run(&s, 4, 1, Op::Delete { path: "/locks/a".into(), version: None }).expect("del a");
    assert!(s.get("/locks").expect("store").is_ok(), "a container with a child stays");
    run(&s, 5, 1, Op::Delete { path: "/locks/b".into(), version: None }).expect("del b");
    assert!(s.get("/locks").expect("store").is_err(), "an emptied container goes");

    let ttl = |p: &str| Op::Create { path: p.into(), data: vec![], mode: mode(|m| m.ttl_ms = Some(100)) };
    run(&s, 6, 1000, ttl("/t1")).expect("t1");
    run(&s, 7, 1000, ttl("/t2")).expect("t2");
    run(&s, 8, 1000, create("/t2/kid")).expect("kid");
    run(&s, 9, 1050, Op::Set { path: "/t1".into(), data: vec![1], version: None }).expect("touch t1");
    run(&s, 10, 1120, Op::Tick).expect("tick");
    assert!(s.get("/t1").expect("store").is_ok(), "modified at 1050: due at 1150");
    assert!(s.get("/t2").expect("store").is_ok(), "due, but it has a child");
    run(&s, 11, 1151, Op::Tick).expect("tick");
    assert!(s.get("/t1").expect("store").is_err(), "unmodified for its TTL");
    run(&s, 12, 1200, Op::Delete { path: "/t2/kid".into(), version: None }).expect("del kid");
    assert!(s.get("/t2").expect("store").is_err(), "childless and long due");
}

#[test]
fn multi_is_all_or_nothing() {
    let s = state();
    run(&s, 1, 1, create("/a")).expect("a");
    let before = s.export().expect("export");
    let ops = vec![
        MultiOp::Create { path: "/b".into(), data: vec![], mode: CreateMode::default() },
        MultiOp::Set { path: "/a".into(), data: b"new".to_vec(), version: Some(0) },
        MultiOp::Check { path: "/a".into(), version: Some(0) }, // now at 1: fails
    ];
    let res = run(&s, 2, 1, Op::Multi { ops });
    assert!(matches!(res, Err(Error::MultiFailed { op: 2, .. })), "{res:?}");
    assert_eq!(s.export().expect("export"), before, "nothing applied");
    let ops = vec![
        MultiOp::Check { path: "/a".into(), version: Some(0) },
        MultiOp::Create { path: "/b".into(), data: vec![], mode: CreateMode::default() },
        MultiOp::Delete { path: "/a".into(), version: None },
    ];
    let Ok(Reply::Multi(replies)) = run(&s, 3, 1, Op::Multi { ops }) else { panic!() };
    assert_eq!(replies.len(), 3);
    assert_eq!(s.children("/").expect("store").expect("ls"), vec!["b".to_string()]);
}

#[test]
fn limits_on_children_and_nodes_refuse_cleanly() {
    let s = state();
    let limited = |index: u64, p: &str, max_children: u64, max_nodes: u64| {
        let cmd = Command { limits: TreeLimits { max_children, max_nodes }, ..Command::plain(1, create(p)) };
        s.with_txn(|t| s.apply(t, index, &cmd)).expect("store")
    };
    limited(1, "/a", 2, 0).expect("a");
    limited(2, "/a/1", 2, 0).expect("a/1");
    limited(3, "/a/2", 2, 0).expect("a/2");
    assert!(matches!(limited(4, "/a/3", 2, 0), Err(Error::LimitReached { limit: 2, .. })));
    assert!(matches!(limited(5, "/b", 0, 3), Err(Error::LimitReached { limit: 3, .. })), "3 nodes exist");
    run(&s, 6, 1, Op::Delete { path: "/a/1".into(), version: None }).expect("delete");
    limited(7, "/b", 0, 3).expect("room again after a delete");
}

#[test]
fn acls_are_checked_in_apply_and_inherited_on_create() {
    let s = state();
    let as_user = |index: u64, who: &str, op: Op| {
        let cmd = Command {
            identity: who.into(),
            admin: who == "root",
            default_acl: corral_proto::acl::parse("*:rwcda").expect("acl"),
            ..Command::plain(1, op)
        };
        s.with_txn(|t| s.apply(t, index, &cmd)).expect("store")
    };
    as_user(1, "alice", create("/app")).expect("anyone may create under the open root");
    let acl = corral_proto::acl::parse("alice:rwcda,bob:r").expect("acl");
    as_user(2, "alice", Op::SetAcl { path: "/app".into(), acl: acl.clone() }).expect("alice is admin of /app");
    as_user(3, "alice", create("/app/x")).expect("alice may create children");
    assert_eq!(s.acl_of("/app/x").expect("store"), Some(acl), "a child inherits its parent's ACL");
    let denied = [
        as_user(4, "bob", Op::Set { path: "/app/x".into(), data: vec![1], version: None }),
        as_user(5, "bob", create("/app/y")),
        as_user(6, "bob", Op::Delete { path: "/app/x".into(), version: None }),
        as_user(7, "bob", Op::SetAcl { path: "/app".into(), acl: vec![] }),
    ];
    for d in denied {
        assert!(matches!(d, Err(Error::NoAuth { .. }) | Err(Error::BadRequest { .. })), "{d:?}");
    }
    as_user(8, "root", Op::Set { path: "/app/x".into(), data: vec![2], version: None }).expect("admins bypass");
}

#[test]
fn the_sink_hears_of_events_and_of_ended_sessions() {
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<(Vec<Event>, Vec<u64>)>);
    impl EventSink for Recorder {
        fn publish(&self, events: Vec<Event>) {
            self.0.lock().unwrap().0.extend(events);
        }
        fn reset(&self, _: u64) {}
        fn sessions_ended(&self, ids: &[u64]) {
            self.0.lock().unwrap().1.extend_from_slice(ids);
        }
    }
    let rec = Arc::new(Recorder::default());
    let s = State::new(Arc::new(MemStore::default())).with_sink(rec.clone());
    let sid = new_session(&s, 1);
    run(&s, 2, 1, create("/a")).expect("create");
    run(&s, 3, 1, Op::ExpireSessions { ids: vec![sid, 999] }).expect("expire");
    let (events, ended) = rec.0.lock().unwrap().clone();
    let kinds: Vec<(u64, u32, &str)> = events.iter().map(|e| (e.index, e.seq, e.path.as_str())).collect();
    assert_eq!(kinds, vec![(2, 0, "/a"), (2, 1, "/")], "a create: the node, then its parent");
    assert_eq!(ended, vec![sid], "only sessions that existed are reported");
}

#[test]
fn a_batch_entry_applies_each_write_as_if_alone() {
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Event>>);
    impl EventSink for Recorder {
        fn publish(&self, events: Vec<Event>) {
            self.0.lock().unwrap().extend(events);
        }
        fn reset(&self, _: u64) {}
        fn sessions_ended(&self, _: &[u64]) {}
    }
    let cmds: Vec<Command> = [
        create("/a"),
        Op::Set { path: "/a".into(), data: b"x".to_vec(), version: Some(7) }, // fails: BadVersion
        create("/b"),
        Op::Set { path: "/a".into(), data: b"y".to_vec(), version: Some(0) },
    ]
    .into_iter()
    .map(|op| Command::plain(10, op))
    .collect();

    // The same writes one entry each, on another replica.
    let alone = state();
    let expected: Vec<_> = cmds.iter().map(|c| alone.with_txn(|t| alone.apply(t, 4, c)).expect("store")).collect();

    let rec = Arc::new(Recorder::default());
    let s = State::new(Arc::new(MemStore::default())).with_sink(rec.clone());
    let got = s.with_txn(|t| s.apply_batch(t, 4, &cmds)).expect("store");
    assert_eq!(got, expected, "each command's own result, in order");
    assert!(matches!(got[1], Err(Error::BadVersion { .. })), "{:?}", got[1]);
    assert_eq!(s.export().expect("export"), alone.export().expect("export"), "the same state");
    assert_eq!(s.get("/a").expect("store").expect("a").0, b"y");

    // Watchers resume from (index, seq): the writes of one entry number their events on.
    let events = rec.0.lock().unwrap().clone();
    let ids: Vec<(u64, u32)> = events.iter().map(|e| (e.index, e.seq)).collect();
    assert_eq!(ids, (0..ids.len() as u32).map(|seq| (4, seq)).collect::<Vec<_>>());
    assert!(ids.len() >= 5, "two creates (node and parent each) and a set: {events:?}");

    // A batch nested in a batch is refused, not applied.
    let nested = vec![Command::plain(11, Op::Batch { cmds: vec![Command::plain(11, create("/c"))] })];
    let res = s.with_txn(|t| s.apply_batch(t, 5, &nested)).expect("store");
    assert!(matches!(res[..], [Err(Error::Internal { .. })]), "{res:?}");
    assert!(matches!(s.get("/c").expect("store"), Err(Error::NoNode { .. })));
}

/// Counts the store's scans under the TTL and timer prefixes.
#[derive(Default)]
struct ScanCounter {
    inner: MemStore,
    deadline_scans: std::sync::atomic::AtomicUsize,
}

impl KvStore for ScanCounter {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan_range_limit(&self, from: &[u8], prefix: &[u8], limit: usize) -> Result<Items, StoreError> {
        if prefix.starts_with(keys::TTL_PREFIX) || prefix.starts_with(keys::TIMER_PREFIX) {
            self.deadline_scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.scan_range_limit(from, prefix, limit)
    }
    fn commit(&self, writes: txn::Writes) -> Result<(), StoreError> {
        self.inner.commit(writes)
    }
    fn replace_all(&self, items: Items) -> Result<(), StoreError> {
        self.inner.replace_all(items)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn commands_look_for_due_ttl_nodes_and_timers_only_when_some_may_be_due() {
    let store = Arc::new(ScanCounter::default());
    let s = State::new(store.clone());
    let scans = || store.deadline_scans.load(std::sync::atomic::Ordering::SeqCst);
    run(&s, 1, 10, create("/a")).expect("a");
    let first = scans();
    let cmds: Vec<Command> =
        (0..64).map(|i| Command::plain(20 + i, Op::Set { path: "/a".into(), data: vec![1], version: None })).collect();
    s.with_txn(|t| s.apply_batch(t, 2, &cmds)).expect("store");
    assert_eq!(scans(), first, "nothing can be due: no scan");

    let ttl = Op::Create { path: "/t".into(), data: vec![], mode: mode(|m| m.ttl_ms = Some(100)) };
    run(&s, 3, 1000, ttl).expect("ttl");
    run(&s, 4, 1050, create("/b")).expect("b");
    let before_due = scans();
    run(&s, 5, 1060, create("/c")).expect("c");
    assert_eq!(scans(), before_due, "the TTL node is not due before 1100");
    run(&s, 6, 1101, create("/d")).expect("d");
    assert!(s.get("/t").expect("store").is_err(), "swept once due");
}

#[test]
fn a_restarted_replica_sweeps_like_one_that_kept_running() {
    let running = state();
    let ttl = |p: &str, ms| Op::Create { path: p.into(), data: vec![], mode: mode(|m| m.ttl_ms = Some(ms)) };
    run(&running, 1, 1000, ttl("/t1", 100)).expect("t1");
    run(&running, 2, 1010, create("/x")).expect("x");
    // A replica restarting here knows no bounds; the running one has learnt them.
    let restarted = state();
    restarted.replace_all(running.export().expect("export"), 2).expect("load");
    let steps = [
        (3, 1050, ttl("/t2", 20)),
        (4, 1060, create("/y")),
        (5, 1080, create("/z")),
        (6, 1100, create("/w")),
        (7, 1200, Op::Tick),
    ];
    for (index, ts, op) in steps {
        let a = run(&running, index, ts, op.clone());
        let b = run(&restarted, index, ts, op);
        assert_eq!(a, b, "entry {index}");
        assert_eq!(running.export().expect("export"), restarted.export().expect("export"), "entry {index}");
    }
    assert!(running.get("/t1").expect("store").is_err() && running.get("/t2").expect("store").is_err());
}

/// A long transaction (a plugin burning its fuel) must not hold up readers: they see the state
/// before it until it commits, then all of it.
#[test]
fn readers_do_not_wait_for_a_transaction_until_it_commits() {
    let s = state();
    run(&s, 1, 1000, create("/a")).expect("create");
    let (in_txn, go_on) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let writer = {
        let (s, entered, resume) = (s.clone(), in_txn.0, go_on.1);
        std::thread::spawn(move || {
            s.with_txn(|t| {
                let res = s.apply(
                    t,
                    2,
                    &Command::plain(1001, Op::Set { path: "/a".into(), data: b"new".to_vec(), version: None }),
                );
                entered.send(()).expect("test alive");
                // The transaction goes on until the reader below has been answered.
                let _ = resume.recv();
                res
            })
            .expect("store")
        })
    };
    in_txn.1.recv().expect("writer started");
    let (answer, got) = std::sync::mpsc::channel();
    let reader = s.clone();
    std::thread::spawn(move || {
        let _ = answer.send(reader.get("/a").expect("store").expect("a").0);
    });
    let seen = got.recv_timeout(std::time::Duration::from_secs(5));
    go_on.0.send(()).expect("writer alive");
    assert_eq!(seen.expect("the read waited for the transaction"), b"/a", "the state before the transaction");
    writer.join().expect("writer").expect("set");
    assert_eq!(s.get("/a").expect("store").expect("a").0, b"new");
}
