//! semaphore: N permits, granted FIFO, each held by a session until released or until the
//! session ends. A permit is identified by its lease: the log position of the call that
//! granted it.
//!
//! `{"acquire": {"semaphore", "permits"}}` grants at once if a permit is free and nobody
//! waits, else queues the session (a notification `{"semaphore", "lease"}` grants it later).
//! `permits` fixes the semaphore's size on first use; later acquires must agree.
//! `{"release": {"semaphore", "lease"}}`; `{"state": {"semaphore"}}` (query).

use corral_guest::{kv, Counted, Ctx, Plugin};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Acquire { semaphore: String, permits: u32 },
    Release { semaphore: String, lease: u64 },
    State { semaphore: String },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Granted { lease: u64 },
    Queued { position: u64 },
    Released,
    State { permits: u32, held: Vec<(u64, u64)>, waiting: u64 },
}

fn size_key(s: &str) -> Vec<u8> {
    format!("p/{s}").into_bytes()
}
fn held_prefix(s: &str) -> Vec<u8> {
    format!("h/{s}\0").into_bytes()
}
/// `h/<sem>\0<lease BE>` → the holding session.
fn held_key(s: &str, lease: u64) -> Vec<u8> {
    [held_prefix(s), lease.to_be_bytes().to_vec()].concat()
}
fn queue_prefix(s: &str) -> Vec<u8> {
    format!("w/{s}\0").into_bytes()
}
fn seq_key(s: &str) -> Vec<u8> {
    format!("n/{s}").into_bytes()
}
/// How many wait. Kept, not counted: counting read the whole queue at every acquire.
fn waiting_key(s: &str) -> Vec<u8> {
    format!("c/{s}").into_bytes()
}
/// `s/<session BE><sem>\0<kind><id BE>`: kind b'h' a lease it holds, b'w' a wait's seq.
fn session_prefix(session: u64) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes()].concat()
}
fn session_key(session: u64, s: &str, kind: u8, id: u64) -> Vec<u8> {
    [session_prefix(session), s.as_bytes().to_vec(), vec![0, kind], id.to_be_bytes().to_vec()].concat()
}

fn tail_u64(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or_default())
}

fn held(s: &str) -> Vec<(u64, u64)> {
    kv::scan_prefix(&held_prefix(s))
        .into_iter()
        .map(|(k, v)| (tail_u64(&k), u64::from_be_bytes(v.try_into().unwrap_or_default())))
        .collect()
}

fn grant(ctx: &Ctx, s: &str, session: u64) -> u64 {
    // Two grants in one entry (a release frees one permit; an expiry may free several) need
    // distinct leases: the entry's index, then the next free number above it.
    let mut lease = ctx.index << 8;
    while kv::get(&held_key(s, lease)).is_some() {
        lease += 1;
    }
    kv::put(&held_key(s, lease), &session.to_be_bytes());
    kv::put(&session_key(session, s, b'h', lease), b"");
    lease
}

/// The wait queue, its length kept.
fn queue(s: &str) -> Counted {
    Counted { prefix: queue_prefix(s), count_key: waiting_key(s), since_key: seq_key(s) }
}

/// Hand free permits to waiters, first come first served. Reads only the queue's head.
fn pass_on(ctx: &Ctx, s: &str) -> Result<(), String> {
    let size = kv::get_json::<u32>(&size_key(s))?.unwrap_or(0) as usize;
    let free = size.saturating_sub(held(s).len());
    if free == 0 {
        return Ok(());
    }
    for (k, v) in kv::scan_prefix_first(&queue_prefix(s), free.min(u32::MAX as usize) as u32) {
        let session = u64::from_be_bytes(v.try_into().map_err(|_| "bad waiter")?);
        queue(s).remove(&k)?;
        kv::delete(&session_key(session, s, b'w', tail_u64(&k)));
        let lease = grant(ctx, s, session);
        corral_guest::notify(session, json!({ "semaphore": s, "lease": lease }).to_string().as_bytes());
    }
    Ok(())
}

pub struct Semaphore;

impl Plugin for Semaphore {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        if ctx.session == 0 && !matches!(input, Input::State { .. }) {
            return Err("permits are held by sessions: start one first".into());
        }
        match input {
            Input::Acquire { semaphore: s, permits } => {
                if s.is_empty() || s.len() > 256 || s.contains('\0') || permits == 0 {
                    return Err("a semaphore needs a name (1 to 256 bytes, no NUL) and at least 1 permit".into());
                }
                match kv::get_json::<u32>(&size_key(&s))? {
                    Some(n) if n != permits => return Err(format!("semaphore {s} has {n} permits, not {permits}")),
                    Some(_) => {}
                    None => kv::put_json(&size_key(&s), &permits)?,
                }
                corral_guest::watch_session(ctx.session);
                let nobody_waits = kv::scan_prefix_first(&queue_prefix(&s), 1).is_empty();
                if nobody_waits && held(&s).len() < permits as usize {
                    return Ok(Output::Granted { lease: grant(ctx, &s, ctx.session) });
                }
                let seq = kv::get_json::<u64>(&seq_key(&s))?.unwrap_or(0) + 1;
                // Queued before the sequence is written: a semaphore's first wait needs no count.
                let key = [queue_prefix(&s), seq.to_be_bytes().to_vec()].concat();
                let position = queue(&s).insert(&key, &ctx.session.to_be_bytes())?;
                kv::put_json(&seq_key(&s), &seq)?;
                kv::put(&session_key(ctx.session, &s, b'w', seq), b"");
                Ok(Output::Queued { position })
            }
            Input::Release { semaphore: s, lease } => {
                match kv::get(&held_key(&s, lease)) {
                    Some(v) if v == ctx.session.to_be_bytes() => {}
                    Some(_) => return Err(format!("lease {lease} of {s} is another session's")),
                    None => return Err(format!("no lease {lease} on semaphore {s}")),
                }
                kv::delete(&held_key(&s, lease));
                kv::delete(&session_key(ctx.session, &s, b'h', lease));
                pass_on(ctx, &s)?;
                Ok(Output::Released)
            }
            Input::State { semaphore } => Self::query(ctx, Input::State { semaphore }),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::State { semaphore: s } = input else { return Err("only `state` is a query".into()) };
        Ok(Output::State {
            permits: kv::get_json(&size_key(&s))?.unwrap_or(0),
            held: held(&s),
            waiting: queue(&s).count()?,
        })
    }

    fn expire(ctx: &Ctx, session: u64) {
        let mut touched = Vec::new();
        for (k, _) in kv::scan_prefix(&session_prefix(session)) {
            kv::delete(&k);
            let rest = &k[session_prefix(session).len()..];
            let Some(nul) = rest.iter().position(|b| *b == 0) else { continue };
            let Ok(s) = String::from_utf8(rest[..nul].to_vec()) else { continue };
            let id = tail_u64(&k);
            match rest.get(nul + 1) {
                Some(b'h') => kv::delete(&held_key(&s, id)),
                _ => {
                    let _ = queue(&s).remove(&[queue_prefix(&s), id.to_be_bytes().to_vec()].concat());
                }
            }
            if !touched.contains(&s) {
                touched.push(s);
            }
        }
        for s in touched {
            let _ = pass_on(ctx, &s);
        }
    }
}

corral_guest::export!(Semaphore);
