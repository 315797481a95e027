//! The plugin platform inside the state machine, with the bundled test plugins (`plugins/`):
//! lifecycle, calls, hooks, mailboxes, hostile code, and determinism across replicas.

use std::sync::{Arc, OnceLock};

use corral_proto::{Error, Reply};

use super::*;
use crate::plugin::{Plugins, BUNDLED_DIR};

fn runtime() -> Arc<Plugins> {
    static RT: OnceLock<(tempfile::TempDir, Arc<Plugins>)> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = Plugins::new(dir.path()).expect("runtime");
        (dir, rt)
    })
    .1
    .clone()
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(format!("{BUNDLED_DIR}/{name}.wasm")).expect("bundled plugin (built by host/build.rs)")
}

fn state() -> State {
    State::new(Arc::new(MemStore::default())).with_plugins(runtime())
}

struct Replica {
    s: State,
    index: u64,
    ts: u64,
}

impl Replica {
    fn new() -> Replica {
        Replica { s: state(), index: 0, ts: 1_000 }
    }

    fn cmd(&mut self, session: u64, op: Op) -> Result<Reply, Error> {
        self.index += 1;
        self.ts += 10;
        let cmd = Command { session, req: self.index, ..Command::plain(self.ts, op) };
        self.s.with_txn(|t| self.s.apply(t, self.index, &cmd)).expect("store")
    }

    fn deploy(&mut self, name: &str, file: &str, fuel: u64) -> Result<Reply, Error> {
        let p = runtime().prepare(&wasm(file)).expect("valid plugin");
        let acl = Vec::new();
        self.cmd(0, Op::PluginDeploy { name: name.into(), code: p.code, hash: p.hash, fuel, quota: 1 << 20, acl })
    }

    fn call(&mut self, name: &str, input: &str) -> Result<String, Error> {
        self.call_as(0, name, input)
    }

    fn call_as(&mut self, session: u64, name: &str, input: &str) -> Result<String, Error> {
        match self.cmd(session, Op::PluginCall { name: name.into(), input: input.as_bytes().to_vec() })? {
            Reply::Plugin { output, .. } => Ok(String::from_utf8(output).expect("utf-8")),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    fn query(&self, name: &str, input: &str) -> Result<String, Error> {
        let ctx = crate::plugin::CallContext { index: self.index, ..Default::default() };
        match self.s.plugin_query(name, input.as_bytes(), ctx, true)? {
            Reply::Plugin { output, .. } => Ok(String::from_utf8(output).expect("utf-8")),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    fn session(&mut self) -> u64 {
        match self.cmd(0, Op::CreateSession { timeout_ms: 10_000, secret: vec![1; 16] }) {
            Ok(Reply::Session { id, .. }) => id,
            other => panic!("no session: {other:?}"),
        }
    }

    fn plugin_keys(&self) -> Vec<Vec<u8>> {
        self.s.export().expect("export").into_iter().map(|(k, _)| k).filter(|k| k.starts_with(b"p/k/")).collect()
    }
}

fn failed(r: Result<String, Error>) -> String {
    match r {
        Err(Error::PluginFailed { reason, .. }) => reason,
        other => panic!("expected the call to fail, got {other:?}"),
    }
}

#[test]
fn calls_apply_and_queries_read_without_writing() {
    let mut r = Replica::new();
    r.deploy("c", "probe", 10_000_000).expect("deploy");
    assert_eq!(r.call("c", r#"{"add":5}"#).expect("add"), "5");
    assert_eq!(r.call("c", r#"{"add":2}"#).expect("add"), "7");
    assert_eq!(r.query("c", r#""get""#).expect("query"), "7");
    let ctx: serde_json::Value = serde_json::from_str(&r.call("c", r#""context""#).expect("ctx")).expect("json");
    assert_eq!(ctx["index"], r.index, "the context carries the entry's log index");
    assert_eq!(ctx["time_ms"], r.ts);

    // A plugin's own error discards what it wrote.
    assert_eq!(failed(r.call("c", r#"{"fail":"no"}"#)), "error: no");
    assert_eq!(r.query("c", r#""get""#).expect("query"), "7");
    assert_eq!(r.query("c", r#"{"read":"poison"}"#).expect("query"), "null");

    assert!(matches!(r.call("nope", "1"), Err(Error::NoPlugin { .. })));
    assert!(matches!(r.deploy("c", "probe", 1), Err(Error::PluginExists { .. })));
    assert!(failed(r.call("c", "not json")).contains("bad input"));
}

#[test]
fn hostile_code_fails_only_its_own_call() {
    let mut r = Replica::new();
    // Fuel enough to build a 4 MiB output, so the output limit is what stops that one.
    r.deploy("h", "hostile", 100_000_000).expect("deploy");
    r.deploy("c", "probe", 10_000_000).expect("deploy");
    let cases = [
        ("loop", "ran out of fuel"),
        ("host-loop", "ran out of fuel"),
        ("bomb", "memory limit"),
        ("recurse", "stack overflow"),
        ("trap", "unreachable"),
        ("panic", "unreachable"),
        ("big-output", "over the limit"),
        ("quota", "quota"),
    ];
    for (attack, expect) in cases {
        let reason = failed(r.call("h", &format!("{attack:?}")));
        assert!(reason.contains(expect), "{attack}: {reason}");
        assert!(r.call("c", r#"{"add":1}"#).is_ok(), "others still serve after {attack}");
    }
    assert_eq!(r.call("h", r#""ok""#).expect("ok"), "\"ok 1\"", "the plugin itself still serves");
    assert_eq!(r.query("h", r#""read""#).expect("read"), "\"x\"", "no attack left anything behind");
    assert!(failed(r.query("h", r#""write""#)).contains("may not write"));
    assert!(failed(r.query("h", r#""loop""#)).contains("fuel"), "a query is bounded by fuel too");
}

#[test]
fn upload_forms_and_refusals() {
    let rt = runtime();
    let counter = wasm("probe");
    let p = rt.prepare(&counter).expect("a wit-bindgen core module");
    assert!(p.has_migrate);
    let again = rt.prepare(&p.code).expect("the component itself");
    assert_eq!(again.hash, p.hash);
    assert!(rt.prepare(b"not wasm at all").unwrap_err().contains("not a WebAssembly"));
    assert!(rt.prepare(&counter[..counter.len() / 2]).is_err(), "truncated");
    // A module importing WASI.
    let wasi = wat_module(&[("wasi_snapshot_preview1", "fd_write")]);
    assert!(rt.prepare(&wasi).unwrap_err().contains("no WASI"));
    let other = wat_module(&[("corral:plugin/host@2.0.0", "get")]);
    assert!(rt.prepare(&other).unwrap_err().contains("another version"));
    let none = wat_module(&[]);
    assert!(rt.prepare(&none).unwrap_err().contains("apply"), "no exports at all");
}

/// A core module with these function imports (no params, no results) and nothing else.
fn wat_module(imports: &[(&str, &str)]) -> Vec<u8> {
    use wasm_encoder::{EntityType, FunctionSection, ImportSection, Module, TypeSection};
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut imp = ImportSection::new();
    for (module, name) in imports {
        imp.import(module, name, EntityType::Function(0));
    }
    m.section(&imp);
    m.section(&FunctionSection::new());
    m.finish()
}

#[test]
fn upgrade_keeps_state_and_migrates_remove_frees_it() {
    let mut r = Replica::new();
    r.deploy("c", "probe", 10_000_000).expect("deploy");
    r.call("c", r#"{"add":41}"#).expect("add");
    assert_eq!(r.query("c", r#""version""#).expect("v"), r#"{"version":1,"migrated_from":null}"#);
    let v2 = runtime().prepare(&wasm("probe_v2")).expect("v2");
    r.cmd(0, Op::PluginUpgrade { name: "c".into(), code: v2.code, hash: v2.hash.clone(), fuel: None }).expect("up");
    assert_eq!(r.query("c", r#""version""#).expect("v"), r#"{"version":2,"migrated_from":1}"#);
    assert_eq!(r.call("c", r#"{"add":1}"#).expect("add"), "42", "state kept");
    let info = r.s.plugin_list().expect("list");
    assert_eq!((info[0].version, info[0].hash.as_str()), (2, v2.hash.as_str()));

    let denied =
        Command { admin: false, identity: "bob".into(), ..Command::plain(0, Op::PluginRemove { name: "c".into() }) };
    r.index += 1;
    let res = r.s.with_txn(|t| r.s.apply(t, r.index, &denied)).expect("store");
    assert!(matches!(res, Err(Error::NoAuth { .. })), "only admins manage plugins");

    assert!(!r.plugin_keys().is_empty());
    r.cmd(0, Op::PluginRemove { name: "c".into() }).expect("remove");
    assert!(r.plugin_keys().is_empty(), "the namespace is freed");
    assert!(matches!(r.call("c", r#""get""#), Err(Error::NoPlugin { .. })));
    r.deploy("c", "probe", 10_000_000).expect("deploy again");
    assert_eq!(r.query("c", r#""get""#).expect("get"), "0", "a new deploy starts empty");
}

#[test]
fn timers_sessions_and_mailboxes() {
    let mut r = Replica::new();
    r.deploy("c", "probe", 10_000_000).expect("deploy");
    let sid = r.session();
    let at = r.ts + 100;
    r.call("c", &format!(r#"{{"timer":{{"at_ms":{at},"tag":"t1"}}}}"#)).expect("timer");
    r.call("c", &format!(r#"{{"timer":{{"at_ms":{at},"tag":"t2"}}}}"#)).expect("timer");
    r.call("c", r#"{"cancel_timer":"t2"}"#).expect("cancel");
    assert_eq!(r.s.next_deadline().expect("deadline"), Some(at));
    r.cmd(0, Op::Tick).expect("tick");
    assert_eq!(r.query("c", r#"{"read":"fired/t1"}"#).expect("q"), "null", "not yet");
    while r.ts < at {
        r.cmd(0, Op::Tick).expect("tick");
    }
    assert_eq!(r.query("c", r#"{"read":"fired/t1"}"#).expect("q"), format!("\"{}\"", r.ts), "fired at leader time");
    assert_eq!(r.query("c", r#"{"read":"fired/t2"}"#).expect("q"), "null", "cancelled");
    assert_eq!(r.s.next_deadline().expect("deadline"), None);

    r.call("c", &format!(r#"{{"notify":{{"session":{sid},"msg":"hello"}}}}"#)).expect("notify");
    r.call("c", &format!(r#"{{"notify":{{"session":{sid},"msg":"again"}}}}"#)).expect("notify");
    r.call("c", r#"{"notify":{"session":999,"msg":"nobody"}}"#).expect("notify to no one");
    let mail = r.s.mailbox(sid, (0, 0), 10).expect("mailbox");
    let texts: Vec<&[u8]> = mail.iter().map(|n| n.payload.as_slice()).collect();
    assert_eq!(texts, vec![b"hello".as_slice(), b"again"]);
    r.cmd(sid, Op::AckNotifications { upto: mail[0].pos }).expect("ack");
    assert_eq!(r.s.mailbox(sid, (0, 0), 10).expect("mailbox").len(), 1, "acknowledged ones leave");

    r.call("c", &format!(r#"{{"watch":{sid}}}"#)).expect("watch");
    r.cmd(sid, Op::CloseSession).expect("close");
    assert_eq!(r.query("c", &format!(r#"{{"read":"expired/{sid}"}}"#)).expect("q"), "\"1\"");
    assert!(r.s.mailbox(sid, (0, 0), 10).expect("mailbox").is_empty(), "an ended session's mailbox goes");
    r.call("c", r#"{"watch":12345}"#).expect("watch a dead session");
    assert_eq!(r.query("c", r#"{"read":"expired/12345"}"#).expect("q"), "\"1\"", "expire runs at once");
}

#[test]
fn replicas_applying_the_same_entries_agree_byte_for_byte() {
    let run = || {
        let mut r = Replica::new();
        r.deploy("c", "probe", 10_000_000).expect("deploy");
        r.deploy("h", "hostile", 1_000_000).expect("deploy");
        for i in 0..50 {
            let _ = r.call("c", &format!(r#"{{"add":{i}}}"#));
            let _ = r.call("h", if i % 7 == 0 { r#""loop""# } else { r#""ok""# });
        }
        let (stored, full) = r.s.digest_check().expect("digest");
        assert_eq!(stored.1, full, "the running digest matches one computed from scratch");
        assert!(stored.0 > 0 && stored.0 <= r.index);
        r.s.export().expect("export")
    };
    assert_eq!(run(), run());
}

#[test]
fn calls_sharing_an_entry_get_positions_of_their_own() {
    let mut r = Replica::new();
    r.deploy("c", "probe", 10_000_000).expect("deploy");
    let call = |input: &str| {
        let op = Op::PluginCall { name: "c".into(), input: input.as_bytes().to_vec() };
        Command { req: 0, ..Command::plain(r.ts, op) }
    };
    let cmds = vec![call(r#""context""#), call(r#"{"fail":"no"}"#), call(r#""context""#), call(r#""context""#)];
    r.index += 1;
    let entry = r.index;
    let results = r.s.with_txn(|t| r.s.apply_batch(t, entry, &cmds)).expect("store");
    let index_of = |res: &Result<Reply, Error>| match res {
        Ok(Reply::Plugin { index, output }) => {
            assert_eq!(*index, entry, "the reply names the log entry");
            serde_json::from_slice::<serde_json::Value>(output).expect("json")["index"].as_u64().expect("index")
        }
        other => panic!("unexpected {other:?}"),
    };
    assert!(results[1].is_err(), "the failing call fails alone");
    let seen: Vec<u64> = [&results[0], &results[2], &results[3]].into_iter().map(index_of).collect();
    assert_eq!(seen, vec![entry, entry + 1, entry + 2], "unique and increasing, from the entry's index");

    // The next entry's call comes after them all, and a query never sees less.
    let ctx: serde_json::Value = serde_json::from_str(&r.call("c", r#""context""#).expect("ctx")).expect("json");
    assert_eq!((r.index, ctx["index"].as_u64()), (entry + 1, Some(entry + 3)));
    let q: serde_json::Value = serde_json::from_str(&r.query("c", r#""context""#).expect("query")).expect("json");
    assert_eq!(q["index"].as_u64(), Some(entry + 3));
    // But the query's reply names the log index: a client waits for the index it has seen,
    // and no log index may ever reach a position.
    let ctx = crate::plugin::CallContext { index: r.index, ..Default::default() };
    let reply = r.s.plugin_query("c", br#""context""#, ctx, true).expect("query");
    assert!(matches!(reply, Reply::Plugin { index, .. } if index == r.index), "{reply:?}");
    // Once the log has passed the positions (entries without calls), the index is the log's.
    for _ in 0..2 {
        r.cmd(0, Op::Tick).expect("tick");
    }
    let ctx: serde_json::Value = serde_json::from_str(&r.call("c", r#""context""#).expect("ctx")).expect("json");
    assert_eq!(ctx["index"].as_u64(), Some(r.index));
}

/// Where an entry is applied follows the plugin code it may run: cheap calls stay on the
/// worker, dear ones and work of unknown size go to the apply thread. Until a plugin's code has
/// run on this node its calls count at their budgets; then at what they have burned here, up
/// to `INLINE_BUDGET` granted in all, and a call that burns its budget puts its code back to
/// budgets.
#[test]
fn entries_that_may_run_long_are_told_apart_by_their_fuel() {
    // A runtime of its own: what other tests' calls burned must not count here.
    let dir = tempfile::tempdir().expect("tempdir");
    let own = Plugins::new(dir.path()).expect("runtime");
    let mut r = Replica { s: State::new(Arc::new(MemStore::default())).with_plugins(own), index: 0, ts: 1_000 };
    r.deploy("cheap", "counter", 10_000_000).expect("deploy");
    r.deploy("dear", "counter", INLINE_FUEL + 1).expect("deploy");
    r.deploy("h", "hostile", 10_000_000).expect("deploy");
    let call = |name: &str| Command::plain(2_000, Op::PluginCall { name: name.into(), input: b"1".to_vec() });
    let batch = |cmds: Vec<Command>| Command::plain(2_000, Op::Batch { cmds });
    let calls = |name: &str, n: u64| batch((0..n).map(|_| call(name)).collect());
    let long = |s: &State, cmds: Vec<Command>| s.may_run_long(cmds.iter()).expect("store");

    assert!(!long(&r.s, vec![call("cheap")]), "a lone call with the default budget");
    assert!(!long(&r.s, vec![call("nobody")]), "a call of no plugin runs nothing");
    assert!(long(&r.s, vec![call("dear")]));
    let by_budget = INLINE_FUEL / 10_000_000;
    assert!(!long(&r.s, vec![calls("cheap", by_budget)]));
    assert!(long(&r.s, vec![calls("cheap", by_budget + 1)]), "nothing has run yet: budgets add up");
    assert!(long(&r.s, vec![call("cheap"), batch(vec![call("cheap"), Command::plain(2_000, Op::CloseSession)])]));
    assert!(!long(&r.s, vec![Command::plain(2_000, Op::Tick)]), "no timer is set");

    // Once the counter's code has run here, its calls count at what they burned.
    r.call("cheap", r#"{"add":1}"#).expect("add");
    let granted = INLINE_BUDGET / 10_000_000;
    assert!(!long(&r.s, vec![calls("cheap", by_budget + 1)]), "cheap so far");
    assert!(!long(&r.s, vec![calls("cheap", granted)]));
    assert!(long(&r.s, vec![calls("cheap", granted + 1)]), "granted past INLINE_BUDGET");
    assert!(!long(&r.s, vec![call("dear")]), "the same code, so the same history");

    // Code that has burned its budget once counts at its budgets again.
    r.call("h", r#""ok""#).expect("ok");
    assert!(!long(&r.s, vec![calls("h", by_budget + 1)]));
    let looped = r.call("h", r#""loop""#).expect_err("runs out of fuel");
    assert!(looped.to_string().contains("fuel"), "{looped}");
    assert!(long(&r.s, vec![calls("h", by_budget + 1)]));
    assert!(!long(&r.s, vec![calls("cheap", by_budget + 1)]), "each code has its own history");
}

/// The calls of one entry share an instance while they succeed (the hostile plugin's
/// "hidden" counts calls in linear memory); a failed call takes the instance with it, and no
/// instance outlives its entry.
#[test]
fn calls_share_an_instance_within_their_entry_only() {
    let mut r = Replica::new();
    r.deploy("h", "hostile", 10_000_000).expect("deploy");
    r.deploy("c", "counter", 10_000_000).expect("deploy");
    let call = |name: &str, input: &str| {
        Command::plain(2_000, Op::PluginCall { name: name.into(), input: format!("\"{input}\"").into_bytes() })
    };
    let mut entry = |cmds: Vec<Command>| -> Vec<String> {
        r.index += 1;
        let index = r.index;
        let out = r.s.with_txn(|t| r.s.apply_batch(t, index, &cmds)).expect("store");
        out.into_iter()
            .map(|res| match res {
                Ok(Reply::Plugin { output, .. }) => String::from_utf8(output).expect("utf-8"),
                Ok(other) => panic!("{other:?}"),
                Err(e) => format!("failed: {e}"),
            })
            .collect()
    };
    let hidden = || call("h", "hidden");
    let got = entry(vec![hidden(), hidden(), call("h", "trap"), hidden(), call("c", "context"), hidden()]);
    assert_eq!(got[..2], ["\"1\"", "\"2\""], "{got:?}");
    assert!(got[2].contains("trap"), "{got:?}");
    assert_eq!(got[3], "\"1\"", "a trapped instance is not reused: {got:?}");
    assert_eq!(got[5], "\"1\"", "another plugin's call in between took the slot: {got:?}");
    assert_eq!(entry(vec![hidden(), hidden()]), ["\"1\"", "\"2\""], "a new entry starts fresh");
    assert_eq!(entry(vec![call("h", "bomb"), hidden()])[1], "\"1\"");
    assert_eq!(r.call("h", "\"hidden\"").expect("call"), "\"1\"");
}
