//! multilock: acquire a set of locks atomically — all of them or, until they are all free,
//! none (so no holder ever waits while holding: no deadlock). Requests are served in arrival
//! order: a later request that shares a lock with an earlier waiting one waits behind it, so
//! none starves. A grant after waiting comes as `{"grant", "locks"}`, where `grant` (the
//! granting call's log position) is also the fencing token and what `release` names.

use corral_guest::{kv, Ctx, Plugin};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A request may name at most this many locks.
const MAX_LOCKS: usize = 64;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Acquire { locks: Vec<String> },
    Release { grant: u64 },
    /// Query: who holds `lock` (its grant), if anyone.
    Holder { lock: String },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Granted { grant: u64 },
    Queued { position: u64 },
    Released,
    Holder { grant: Option<u64> },
}

#[derive(Serialize, Deserialize)]
struct Request {
    session: u64,
    locks: Vec<String>,
}

fn held_key(lock: &str) -> Vec<u8> {
    format!("h/{lock}").into_bytes()
}
fn grant_key(grant: u64) -> Vec<u8> {
    [b"g/".as_slice(), &grant.to_be_bytes()].concat()
}
const QUEUE: &[u8] = b"q/";
/// `s/<session BE><kind><id BE>`: kind b'g' a grant it holds, b'q' a waiting request's seq.
fn session_key(session: u64, kind: u8, id: u64) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes(), &[kind], &id.to_be_bytes()].concat()
}

fn all_free(locks: &[String]) -> bool {
    locks.iter().all(|l| kv::get(&held_key(l)).is_none())
}

/// Grant `req` under id `grant`: each of its locks now names the grant.
fn grant(req: &Request, grant: u64) -> Result<(), String> {
    for l in &req.locks {
        kv::put(&held_key(l), &grant.to_be_bytes());
    }
    kv::put_json(&grant_key(grant), req)?;
    kv::put(&session_key(req.session, b'g', grant), b"");
    Ok(())
}

/// Serve waiting requests in arrival order; one blocked request reserves its locks against
/// the requests behind it.
fn pass_on(ctx: &Ctx) -> Result<(), String> {
    let mut reserved: Vec<String> = Vec::new();
    let mut n = 0u64;
    for (k, v) in kv::scan_prefix(QUEUE) {
        let req: Request = serde_json::from_slice(&v).map_err(|e| e.to_string())?;
        if all_free(&req.locks) && !req.locks.iter().any(|l| reserved.contains(l)) {
            kv::delete(&k);
            let seq = u64::from_be_bytes(k[QUEUE.len()..].try_into().map_err(|_| "bad key")?);
            kv::delete(&session_key(req.session, b'q', seq));
            // Several grants may happen in one entry: the index, then numbers above it.
            let id = (ctx.index << 8) + n;
            n += 1;
            grant(&req, id)?;
            corral_guest::notify(req.session, json!({ "grant": id, "locks": req.locks }).to_string().as_bytes());
        } else {
            reserved.extend(req.locks);
        }
    }
    Ok(())
}

fn release(ctx: &Ctx, id: u64, session: u64) -> Result<bool, String> {
    let Some(req) = kv::get_json::<Request>(&grant_key(id))? else { return Ok(false) };
    if req.session != session {
        return Err(format!("grant {id} is another session's"));
    }
    for l in &req.locks {
        kv::delete(&held_key(l));
    }
    kv::delete(&grant_key(id));
    kv::delete(&session_key(session, b'g', id));
    pass_on(ctx)?;
    Ok(true)
}

pub struct MultiLock;

impl Plugin for MultiLock {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        if ctx.session == 0 && !matches!(input, Input::Holder { .. }) {
            return Err("locks are held by sessions: start one first".into());
        }
        match input {
            Input::Acquire { mut locks } => {
                locks.sort();
                locks.dedup();
                if locks.is_empty() || locks.len() > MAX_LOCKS {
                    return Err(format!("name 1 to {MAX_LOCKS} locks"));
                }
                if locks.iter().any(|l| l.is_empty() || l.len() > 256) {
                    return Err("a lock name is 1 to 256 bytes".into());
                }
                corral_guest::watch_session(ctx.session);
                let req = Request { session: ctx.session, locks };
                let queue = kv::scan_prefix(QUEUE);
                let overlaps_waiting = queue.iter().any(|(_, v)| {
                    serde_json::from_slice::<Request>(v).is_ok_and(|w| w.locks.iter().any(|l| req.locks.contains(l)))
                });
                if all_free(&req.locks) && !overlaps_waiting {
                    let id = ctx.index << 8;
                    grant(&req, id)?;
                    return Ok(Output::Granted { grant: id });
                }
                let seq = kv::get_json::<u64>(b"n")?.unwrap_or(0) + 1;
                kv::put_json(b"n", &seq)?;
                kv::put_json(&[QUEUE, &seq.to_be_bytes()].concat(), &req)?;
                kv::put(&session_key(ctx.session, b'q', seq), b"");
                Ok(Output::Queued { position: queue.len() as u64 + 1 })
            }
            Input::Release { grant } => match release(ctx, grant, ctx.session)? {
                true => Ok(Output::Released),
                false => Err(format!("no grant {grant}")),
            },
            Input::Holder { lock } => Self::query(ctx, Input::Holder { lock }),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::Holder { lock } = input else { return Err("only `holder` is a query".into()) };
        Ok(Output::Holder { grant: kv::get(&held_key(&lock)).map(|v| u64::from_be_bytes(v.try_into().unwrap_or_default())) })
    }

    fn expire(ctx: &Ctx, session: u64) {
        let prefix = [b"s/".as_slice(), &session.to_be_bytes()].concat();
        for (k, _) in kv::scan_prefix(&prefix) {
            kv::delete(&k);
            let id = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or_default());
            match k[prefix.len()] {
                b'g' => {
                    if let Ok(Some(req)) = kv::get_json::<Request>(&grant_key(id)) {
                        for l in &req.locks {
                            kv::delete(&held_key(l));
                        }
                        kv::delete(&grant_key(id));
                    }
                }
                _ => kv::delete(&[QUEUE, &id.to_be_bytes()].concat()),
            }
        }
        let _ = pass_on(ctx);
    }
}

corral_guest::export!(MultiLock);
