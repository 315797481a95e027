use std::sync::Arc;

use super::*;

fn state() -> State {
    State::new(Arc::new(MemStore::default()))
}

fn run(s: &State, index: u64, ts: u64, op: Op) -> Result<Reply, Error> {
    s.with_txn(|t| State::apply(t, index, &Command { ts_ms: ts, op })).expect("store")
}

fn create(p: &str) -> Op {
    Op::Create { path: p.into(), data: p.as_bytes().to_vec() }
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
    c.replace_all(decode_snapshot(&bytes).expect("decode")).expect("import");
    assert_eq!(c.export().expect("export"), exported);
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(decode_snapshot(&corrupt).is_err());
    assert!(decode_snapshot(&bytes[..bytes.len() / 2]).is_err());
}
