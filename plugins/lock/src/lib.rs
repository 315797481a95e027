//! lock: FIFO-fair mutexes with fencing tokens, held by sessions.
//!
//! - `acquire` grants at once if the lock is free (one round trip), else queues the caller's
//!   session; when its turn comes the grant is a notification `{"lock", "token"}` to that
//!   session: nobody polls, only the next waiter is woken.
//! - The fencing token is the log position (`ctx.index`) of the call that granted the lock:
//!   strictly increasing per lock (and across locks), the same on every replica.
//! - A holding or a wait ends with its session (`expire`): the lock passes on, unless the
//!   holder asked for a lock-delay (as Chubby), in which case it stays unavailable that long.
//! - `timeout_ms`: 0 is a try-lock (never queued); more gives up after that long (a
//!   notification `{"lock", "timeout": true}`).
//! - `reentrant`: the holding session may acquire again (counted; released as often).
//! - `revoke` (admins only) takes a lock from its holder and passes it on; the holder is told.

use corral_guest::{kv, Counted, Ctx, Plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Acquire {
        lock: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default)]
        reentrant: bool,
        /// If this holder's session ends while it holds the lock, nobody gets it for this long.
        #[serde(default)]
        delay_ms: u64,
    },
    Release {
        lock: String,
    },
    /// Admins only: take the lock from its holder (told `{"lock", "revoked": true}`) and pass
    /// it on.
    Revoke {
        lock: String,
    },
    /// Query: who holds `lock`, with which token, and how many wait.
    Holder {
        lock: String,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Granted { token: u64 },
    /// `at`: this call's log position, the order grants follow (calls may share an entry).
    Queued { position: u64, at: u64 },
    Busy,
    Released,
    Holder { session: Option<u64>, token: Option<u64>, waiting: u64, delayed_until: Option<u64> },
}

#[derive(Serialize, Deserialize)]
struct Holding {
    session: u64,
    token: u64,
    count: u32,
    delay_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Waiter {
    session: u64,
    delay_ms: u64,
    timeout: bool,
}

fn holder_key(lock: &str) -> Vec<u8> {
    format!("h/{lock}").into_bytes()
}
fn queue_prefix(lock: &str) -> Vec<u8> {
    format!("w/{lock}\0").into_bytes()
}
fn waiter_key(lock: &str, seq: u64) -> Vec<u8> {
    [queue_prefix(lock), seq.to_be_bytes().to_vec()].concat()
}
fn seq_key(lock: &str) -> Vec<u8> {
    format!("n/{lock}").into_bytes()
}
/// How many wait for the lock. Kept, not counted: a count scanned the whole queue on every
/// queued acquisition, O(waiters) each (6% of the machine's CPU at 64 contenders).
fn waiting_key(lock: &str) -> Vec<u8> {
    format!("q/{lock}").into_bytes()
}
fn delay_key(lock: &str) -> Vec<u8> {
    format!("d/{lock}").into_bytes()
}
/// What a session holds or waits for: `s/<session BE><lock>` → the waiter's seq (empty: holds).
fn session_prefix(session: u64) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes()].concat()
}
fn session_key(session: u64, lock: &str) -> Vec<u8> {
    [session_prefix(session), lock.as_bytes().to_vec()].concat()
}
fn timeout_tag(lock: &str, seq: u64) -> Vec<u8> {
    [b"t/".as_slice(), &seq.to_be_bytes(), lock.as_bytes()].concat()
}
fn delay_tag(lock: &str) -> Vec<u8> {
    [b"d/".as_slice(), lock.as_bytes()].concat()
}

fn note(session: u64, value: serde_json::Value) {
    corral_guest::notify(session, value.to_string().as_bytes());
}

/// The lock's wait queue, its length kept.
fn queue(lock: &str) -> Counted {
    Counted { prefix: queue_prefix(lock), count_key: waiting_key(lock), since_key: seq_key(lock) }
}

/// Put a waiter in `lock`'s queue; its place in it (1: next).
fn join_queue(lock: &str, seq: u64, w: &Waiter) -> Result<u64, String> {
    queue(lock).insert(&waiter_key(lock, seq), &serde_json::to_vec(w).map_err(|e| e.to_string())?)
}

/// Take the waiter `seq` out of `lock`'s queue, if it is still there.
fn leave_queue(lock: &str, seq: u64) -> Result<(), String> {
    queue(lock).remove(&waiter_key(lock, seq)).map(|_| ())
}

fn check_name(lock: &str) -> Result<(), String> {
    if lock.is_empty() || lock.len() > 256 || lock.contains('\0') {
        return Err("a lock name is 1 to 256 bytes, without NUL".into());
    }
    Ok(())
}

fn grant(ctx: &Ctx, lock: &str, session: u64, delay_ms: u64) -> Result<u64, String> {
    let token = ctx.index;
    kv::put_json(&holder_key(lock), &Holding { session, token, count: 1, delay_ms })?;
    kv::put(&session_key(session, lock), b"");
    Ok(token)
}

/// The lock is free: hand it to the first waiter, if any.
fn pass_on(ctx: &Ctx, lock: &str) -> Result<(), String> {
    let Some((key, value)) = kv::scan(&queue_prefix(lock), 1).into_iter().next() else { return Ok(()) };
    if !key.starts_with(&queue_prefix(lock)) {
        return Ok(());
    }
    let w: Waiter = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
    let seq = u64::from_be_bytes(key[key.len() - 8..].try_into().map_err(|_| "bad waiter key")?);
    leave_queue(lock, seq)?;
    if w.timeout {
        corral_guest::cancel_timer(&timeout_tag(lock, seq));
    }
    let token = grant(ctx, lock, w.session, w.delay_ms)?;
    note(w.session, serde_json::json!({ "lock": lock, "token": token }));
    Ok(())
}

fn free(lock: &str) -> Result<bool, String> {
    Ok(kv::get(&holder_key(lock)).is_none() && kv::get(&delay_key(lock)).is_none())
}

pub struct Lock;

impl Plugin for Lock {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        if let Input::Revoke { lock } = &input {
            if !ctx.admin {
                return Err(format!("only an admin may revoke a lock ({} is not one)", ctx.identity));
            }
            let Some(h) = kv::get_json::<Holding>(&holder_key(lock))? else {
                return Err(format!("lock {lock} is not held"));
            };
            kv::delete(&holder_key(lock));
            kv::delete(&session_key(h.session, lock));
            note(h.session, serde_json::json!({ "lock": lock, "revoked": true, "token": h.token }));
            pass_on(ctx, lock)?;
            return Ok(Output::Released);
        }
        if ctx.session == 0 && !matches!(input, Input::Holder { .. }) {
            return Err("locks are held by sessions: start one first".into());
        }
        match input {
            Input::Acquire { lock, timeout_ms, reentrant, delay_ms } => {
                check_name(&lock)?;
                if let Some(mut h) = kv::get_json::<Holding>(&holder_key(&lock))? {
                    if h.session == ctx.session {
                        if !reentrant {
                            return Err(format!("lock {lock} is already held by this session"));
                        }
                        h.count += 1;
                        kv::put_json(&holder_key(&lock), &h)?;
                        return Ok(Output::Granted { token: h.token });
                    }
                }
                if kv::get(&session_key(ctx.session, &lock)).is_some() {
                    return Err(format!("this session already waits for lock {lock}"));
                }
                let queue_empty = kv::scan(&queue_prefix(&lock), 1)
                    .first()
                    .is_none_or(|(k, _)| !k.starts_with(&queue_prefix(&lock)));
                if free(&lock)? && queue_empty {
                    corral_guest::watch_session(ctx.session);
                    return Ok(Output::Granted { token: grant(ctx, &lock, ctx.session, delay_ms)? });
                }
                if timeout_ms == Some(0) {
                    return Ok(Output::Busy);
                }
                let seq = kv::get_json::<u64>(&seq_key(&lock))?.unwrap_or(0) + 1;
                let w = Waiter { session: ctx.session, delay_ms, timeout: timeout_ms.is_some() };
                // Queued before the sequence is written: a lock's first wait needs no count.
                let position = join_queue(&lock, seq, &w)?;
                kv::put_json(&seq_key(&lock), &seq)?;
                kv::put(&session_key(ctx.session, &lock), &seq.to_be_bytes());
                if let Some(t) = timeout_ms {
                    corral_guest::set_timer(ctx.time_ms.saturating_add(t), &timeout_tag(&lock, seq));
                }
                corral_guest::watch_session(ctx.session);
                Ok(Output::Queued { position, at: ctx.index })
            }
            Input::Release { lock } => {
                let Some(mut h) = kv::get_json::<Holding>(&holder_key(&lock))? else {
                    return Err(format!("lock {lock} is not held"));
                };
                if h.session != ctx.session {
                    return Err(format!("lock {lock} is held by another session"));
                }
                if h.count > 1 {
                    h.count -= 1;
                    kv::put_json(&holder_key(&lock), &h)?;
                    return Ok(Output::Released);
                }
                kv::delete(&holder_key(&lock));
                kv::delete(&session_key(ctx.session, &lock));
                pass_on(ctx, &lock)?;
                Ok(Output::Released)
            }
            Input::Holder { lock } => Self::query(ctx, Input::Holder { lock }),
            Input::Revoke { .. } => Err("unreachable: handled above".into()),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::Holder { lock } = input else { return Err("only `holder` is a query".into()) };
        let h = kv::get_json::<Holding>(&holder_key(&lock))?;
        Ok(Output::Holder {
            session: h.as_ref().map(|h| h.session),
            token: h.as_ref().map(|h| h.token),
            waiting: queue(&lock).count()?,
            delayed_until: kv::get_json(&delay_key(&lock))?,
        })
    }

    fn expire(ctx: &Ctx, session: u64) {
        for (key, seq) in kv::scan_prefix(&session_prefix(session)) {
            kv::delete(&key);
            let Ok(lock) = String::from_utf8(key[session_prefix(session).len()..].to_vec()) else { continue };
            if seq.len() == 8 {
                // A wait: leave the queue.
                let seq = u64::from_be_bytes(seq.try_into().unwrap_or_default());
                let _ = leave_queue(&lock, seq);
                corral_guest::cancel_timer(&timeout_tag(&lock, seq));
                continue;
            }
            let Ok(Some(h)) = kv::get_json::<Holding>(&holder_key(&lock)) else { continue };
            if h.session != session {
                continue;
            }
            kv::delete(&holder_key(&lock));
            if h.delay_ms > 0 {
                let until = ctx.time_ms.saturating_add(h.delay_ms);
                let _ = kv::put_json(&delay_key(&lock), &until);
                corral_guest::set_timer(until, &delay_tag(&lock));
            } else {
                let _ = pass_on(ctx, &lock);
            }
        }
    }

    fn timer(ctx: &Ctx, tag: &[u8]) {
        if let Some(rest) = tag.strip_prefix(b"d/") {
            // A lock-delay ended.
            let Ok(lock) = String::from_utf8(rest.to_vec()) else { return };
            kv::delete(&delay_key(&lock));
            let _ = pass_on(ctx, &lock);
        } else if let Some(rest) = tag.strip_prefix(b"t/") {
            // A waiter's timeout.
            if rest.len() < 8 {
                return;
            }
            let seq = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
            let Ok(lock) = String::from_utf8(rest[8..].to_vec()) else { return };
            let Ok(Some(w)) = kv::get_json::<Waiter>(&waiter_key(&lock, seq)) else { return };
            if leave_queue(&lock, seq).is_err() {
                return;
            }
            kv::delete(&session_key(w.session, &lock));
            note(w.session, serde_json::json!({ "lock": lock, "timeout": true }));
        }
    }
}

corral_guest::export!(Lock);
