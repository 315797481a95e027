//! barrier: Curator's two barriers.
//!
//! - **Barrier** (`set` / `remove` / `wait`): while set, `wait` holds its session until someone
//!   removes it; then every waiter gets `{"barrier", "open": true}`.
//! - **Double barrier** (`enter` / `leave`): `enter` waits until `count` sessions have entered
//!   (each then gets `{"barrier", "entered": true}`); `leave` waits until all of them have left
//!   (`{"barrier", "left": true}`). A session that ends counts as having left (or, before the
//!   barrier filled, as never having entered).

use corral_guest::{kv, Ctx, Plugin};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Set { barrier: String },
    Remove { barrier: String },
    Wait { barrier: String },
    Enter { barrier: String, count: u32 },
    Leave { barrier: String },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Done,
    Open,
    Waiting { count: u64 },
    Entered,
    Left,
}

fn key(kind: &str, b: &str) -> Vec<u8> {
    format!("{kind}/{b}").into_bytes()
}
fn member_prefix(kind: &str, b: &str) -> Vec<u8> {
    format!("{kind}/{b}\0").into_bytes()
}
fn member(kind: &str, b: &str, session: u64) -> Vec<u8> {
    [member_prefix(kind, b), session.to_be_bytes().to_vec()].concat()
}
/// `s/<session BE><b>`: the double barriers (and barrier waits) a session is in.
fn session_key(session: u64, b: &str) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes(), b.as_bytes()].concat()
}
fn sessions_of(prefix: &[u8]) -> Vec<(Vec<u8>, u64, Vec<u8>)> {
    kv::scan_prefix(prefix)
        .into_iter()
        .map(|(k, v)| {
            let s = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or_default());
            (k, s, v)
        })
        .collect()
}
fn tell(session: u64, msg: serde_json::Value) {
    corral_guest::notify(session, msg.to_string().as_bytes());
}

fn check(b: &str) -> Result<(), String> {
    if b.is_empty() || b.len() > 256 || b.contains('\0') {
        return Err("a barrier name is 1 to 256 bytes, without NUL".into());
    }
    Ok(())
}

/// Open the barrier: wake every waiter.
fn open(b: &str) {
    for (k, s, _) in sessions_of(&member_prefix("w", b)) {
        kv::delete(&k);
        tell(s, json!({ "barrier": b, "open": true }));
    }
}

/// Participant `session` leaves double barrier `b` (its session ended, or it asked).
/// Returns whether everybody has now left.
fn leave(b: &str, session: u64, waiting_reply: bool) -> Result<bool, String> {
    let running = kv::get(&key("r", b)).is_some();
    if !running {
        // Still gathering: withdraw.
        kv::delete(&member("d", b, session));
        kv::delete(&session_key(session, b));
        return Ok(false);
    }
    kv::put(&member("d", b, session), b"leaving");
    let members = sessions_of(&member_prefix("d", b));
    if members.iter().any(|(_, _, v)| v.as_slice() != b"leaving") {
        return Ok(false);
    }
    for (k, s, _) in members {
        kv::delete(&k);
        kv::delete(&session_key(s, b));
        if s != session || !waiting_reply {
            tell(s, json!({ "barrier": b, "left": true }));
        }
    }
    kv::delete(&key("r", b));
    kv::delete(&key("n", b));
    Ok(true)
}

pub struct Barrier;

impl Plugin for Barrier {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        let need_session = matches!(input, Input::Wait { .. } | Input::Enter { .. } | Input::Leave { .. });
        if need_session && ctx.session == 0 {
            return Err("waiting needs a session: start one first".into());
        }
        match input {
            Input::Set { barrier: b } => {
                check(&b)?;
                kv::put(&key("b", &b), b"");
                Ok(Output::Done)
            }
            Input::Remove { barrier: b } => {
                kv::delete(&key("b", &b));
                open(&b);
                Ok(Output::Done)
            }
            Input::Wait { barrier: b } => {
                check(&b)?;
                if kv::get(&key("b", &b)).is_none() {
                    return Ok(Output::Open);
                }
                corral_guest::watch_session(ctx.session);
                kv::put(&member("w", &b, ctx.session), b"");
                kv::put(&session_key(ctx.session, &b), b"");
                Ok(Output::Waiting { count: sessions_of(&member_prefix("w", &b)).len() as u64 })
            }
            Input::Enter { barrier: b, count } => {
                check(&b)?;
                if count == 0 {
                    return Err("a double barrier needs a count of at least 1".into());
                }
                match kv::get_json::<u32>(&key("n", &b))? {
                    Some(n) if n != count => return Err(format!("double barrier {b} is for {n}, not {count}")),
                    _ => kv::put_json(&key("n", &b), &count)?,
                }
                if kv::get(&key("r", &b)).is_some() {
                    return Err(format!("double barrier {b} is running: wait until everyone has left"));
                }
                corral_guest::watch_session(ctx.session);
                kv::put(&member("d", &b, ctx.session), b"in");
                kv::put(&session_key(ctx.session, &b), b"");
                let members = sessions_of(&member_prefix("d", &b));
                if (members.len() as u32) < count {
                    return Ok(Output::Waiting { count: members.len() as u64 });
                }
                kv::put(&key("r", &b), b"");
                for (_, s, _) in members.iter().filter(|(_, s, _)| *s != ctx.session) {
                    tell(*s, json!({ "barrier": b, "entered": true }));
                }
                Ok(Output::Entered)
            }
            Input::Leave { barrier: b } => {
                if kv::get(&member("d", &b, ctx.session)).is_none() {
                    return Err(format!("this session is not in double barrier {b}"));
                }
                let remaining = || sessions_of(&member_prefix("d", &b)).iter().filter(|(_, _, v)| v != b"leaving").count();
                match leave(&b, ctx.session, true)? {
                    true => Ok(Output::Left),
                    false => Ok(Output::Waiting { count: remaining() as u64 }),
                }
            }
        }
    }

    fn expire(_ctx: &Ctx, session: u64) {
        let prefix = [b"s/".as_slice(), &session.to_be_bytes()].concat();
        for (k, _) in kv::scan_prefix(&prefix) {
            kv::delete(&k);
            let Ok(b) = String::from_utf8(k[prefix.len()..].to_vec()) else { continue };
            kv::delete(&member("w", &b, session));
            if kv::get(&member("d", &b, session)).is_some() {
                let _ = leave(&b, session, false);
            }
        }
    }
}

corral_guest::export!(Barrier);
