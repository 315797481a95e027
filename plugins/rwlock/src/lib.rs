//! rwlock: fair readers-writer locks held by sessions. Many readers or one writer; requests
//! are served in arrival order, and a reader arriving while a writer waits queues behind it,
//! so writers never starve. Grants after waiting come as `{"lock", "mode", "token"}`; the token
//! is the granting call's log position. A session's end releases what it holds and its waits.

use corral_guest::{kv, Counted, Ctx, Plugin};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Read,
    Write,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Acquire { lock: String, mode: Mode },
    Release { lock: String },
    State { lock: String },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Granted { token: u64 },
    Queued { position: u64 },
    Released,
    State { writer: Option<u64>, readers: Vec<u64>, waiting: u64 },
}

#[derive(Serialize, Deserialize)]
struct Waiter {
    session: u64,
    mode: Mode,
}

fn writer_key(l: &str) -> Vec<u8> {
    format!("w/{l}").into_bytes()
}
fn readers_prefix(l: &str) -> Vec<u8> {
    format!("r/{l}\0").into_bytes()
}
fn reader_key(l: &str, s: u64) -> Vec<u8> {
    [readers_prefix(l), s.to_be_bytes().to_vec()].concat()
}
fn queue_prefix(l: &str) -> Vec<u8> {
    format!("q/{l}\0").into_bytes()
}
/// `s/<session BE><lock>` → b"r", b"w", or the waiter's seq (8 bytes).
fn session_key(s: u64, l: &str) -> Vec<u8> {
    [b"s/".as_slice(), &s.to_be_bytes(), l.as_bytes()].concat()
}
/// How many wait. Kept, not counted: counting read the whole queue at every acquire.
fn waiting_key(l: &str) -> Vec<u8> {
    format!("c/{l}").into_bytes()
}
fn seq_key(l: &str) -> Vec<u8> {
    format!("n/{l}").into_bytes()
}
fn tail_u64(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or_default())
}

fn readers(l: &str) -> Vec<u64> {
    kv::scan_prefix(&readers_prefix(l)).iter().map(|(k, _)| tail_u64(k)).collect()
}
fn writer(l: &str) -> Option<u64> {
    kv::get(&writer_key(l)).map(|v| u64::from_be_bytes(v.try_into().unwrap_or_default()))
}
fn can_grant(l: &str, mode: Mode) -> bool {
    writer(l).is_none() && (mode == Mode::Read || kv::scan_prefix_first(&readers_prefix(l), 1).is_empty())
}

/// The wait queue, its length kept.
fn queue(l: &str) -> Counted {
    Counted { prefix: queue_prefix(l), count_key: waiting_key(l), since_key: seq_key(l) }
}
fn grant(l: &str, session: u64, mode: Mode) {
    match mode {
        Mode::Read => {
            kv::put(&reader_key(l, session), b"");
            kv::put(&session_key(session, l), b"r");
        }
        Mode::Write => {
            kv::put(&writer_key(l), &session.to_be_bytes());
            kv::put(&session_key(session, l), b"w");
        }
    }
}

/// Grant waiting requests from the head of the queue while they fit, reading the queue a page
/// at a time: only as far as what is granted, not the whole queue.
fn pass_on(ctx: &Ctx, l: &str) -> Result<(), String> {
    for (k, v) in kv::iter_prefix(&queue_prefix(l), 64) {
        let w: Waiter = serde_json::from_slice(&v).map_err(|e| e.to_string())?;
        if !can_grant(l, w.mode) {
            break;
        }
        queue(l).remove(&k)?;
        grant(l, w.session, w.mode);
        let note = json!({ "lock": l, "mode": w.mode, "token": ctx.index });
        corral_guest::notify(w.session, note.to_string().as_bytes());
        if w.mode == Mode::Write {
            break;
        }
    }
    Ok(())
}

fn release(ctx: &Ctx, l: &str, session: u64) -> Result<bool, String> {
    match kv::get(&session_key(session, l)).as_deref() {
        Some(b"r") => kv::delete(&reader_key(l, session)),
        Some(b"w") => kv::delete(&writer_key(l)),
        Some(seq) if seq.len() == 8 => {
            queue(l).remove(&[queue_prefix(l), seq.to_vec()].concat())?;
        }
        _ => return Ok(false),
    }
    kv::delete(&session_key(session, l));
    pass_on(ctx, l)?;
    Ok(true)
}

pub struct RwLock;

impl Plugin for RwLock {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        if ctx.session == 0 && !matches!(input, Input::State { .. }) {
            return Err("locks are held by sessions: start one first".into());
        }
        match input {
            Input::Acquire { lock: l, mode } => {
                if l.is_empty() || l.len() > 256 || l.contains('\0') {
                    return Err("a lock name is 1 to 256 bytes, without NUL".into());
                }
                if kv::get(&session_key(ctx.session, &l)).is_some() {
                    return Err(format!("this session already holds or waits for {l}"));
                }
                corral_guest::watch_session(ctx.session);
                let nobody_waits = kv::scan_prefix_first(&queue_prefix(&l), 1).is_empty();
                if nobody_waits && can_grant(&l, mode) {
                    grant(&l, ctx.session, mode);
                    return Ok(Output::Granted { token: ctx.index });
                }
                let seq = kv::get_json::<u64>(&seq_key(&l))?.unwrap_or(0) + 1;
                // Queued before the sequence is written: a lock's first wait needs no count.
                let key = [queue_prefix(&l), seq.to_be_bytes().to_vec()].concat();
                let waiter = serde_json::to_vec(&Waiter { session: ctx.session, mode }).map_err(|e| e.to_string())?;
                let position = queue(&l).insert(&key, &waiter)?;
                kv::put_json(&seq_key(&l), &seq)?;
                kv::put(&session_key(ctx.session, &l), &seq.to_be_bytes());
                Ok(Output::Queued { position })
            }
            Input::Release { lock: l } => match release(ctx, &l, ctx.session)? {
                true => Ok(Output::Released),
                false => Err(format!("this session neither holds nor waits for {l}")),
            },
            Input::State { lock } => Self::query(ctx, Input::State { lock }),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::State { lock: l } = input else { return Err("only `state` is a query".into()) };
        Ok(Output::State { writer: writer(&l), readers: readers(&l), waiting: queue(&l).count()? })
    }

    fn expire(ctx: &Ctx, session: u64) {
        let prefix = [b"s/".as_slice(), &session.to_be_bytes()].concat();
        for (k, _) in kv::scan_prefix(&prefix) {
            if let Ok(l) = String::from_utf8(k[prefix.len()..].to_vec()) {
                let _ = release(ctx, &l, session);
            }
        }
    }
}

corral_guest::export!(RwLock);
