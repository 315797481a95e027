//! election: leader election among sessions, as Curator's LeaderLatch / etcd's election.
//!
//! - `campaign` makes the caller's session a candidate (FIFO); the first becomes leader at
//!   once, the others when their turn comes, told by a notification `{"election", "term"}`.
//! - A leader's `term` is the log position of the call that made it leader: a fencing token
//!   per term, strictly increasing per election.
//! - `resign`, or the end of the leader's session, passes leadership to the next candidate.
//! - `observe` subscribes a session to every change of leader (`{"election", "leader"}`);
//!   `leader` (a query) tells anyone who leads now.

use corral_guest::{kv, Ctx, Plugin};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Campaign {
        election: String,
        #[serde(default)]
        value: String,
    },
    Resign {
        election: String,
    },
    Observe {
        election: String,
    },
    /// Query: the current leader.
    Leader {
        election: String,
    },
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Leader {
    session: u64,
    value: String,
    term: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Elected { term: u64 },
    Candidate { position: u64 },
    Resigned,
    Observing { leader: Option<Leader> },
    Leader { leader: Option<Leader> },
}

#[derive(Serialize, Deserialize)]
struct Candidate {
    session: u64,
    value: String,
}

fn leader_key(e: &str) -> Vec<u8> {
    format!("l/{e}").into_bytes()
}
fn queue_prefix(e: &str) -> Vec<u8> {
    format!("c/{e}\0").into_bytes()
}
fn seq_key(e: &str) -> Vec<u8> {
    format!("n/{e}").into_bytes()
}
fn observers_prefix(e: &str) -> Vec<u8> {
    format!("o/{e}\0").into_bytes()
}
/// `s/<session BE><kind byte><election>` → the candidate seq (kind b'c'), or empty (b'l' leads,
/// b'o' observes).
fn session_key(session: u64, kind: u8, e: &str) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes(), &[kind], e.as_bytes()].concat()
}

fn queue(e: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    kv::scan_prefix(&queue_prefix(e))
}

fn check_name(e: &str) -> Result<(), String> {
    if e.is_empty() || e.len() > 256 || e.contains('\0') {
        return Err("an election name is 1 to 256 bytes, without NUL".into());
    }
    Ok(())
}

/// Tell every observer who leads now.
fn announce(e: &str, leader: Option<&Leader>) {
    let msg = json!({ "election": e, "leader": leader }).to_string();
    for (k, _) in kv::scan_prefix(&observers_prefix(e)) {
        if let Ok(b) = <[u8; 8]>::try_from(&k[k.len() - 8..]) {
            corral_guest::notify(u64::from_be_bytes(b), msg.as_bytes());
        }
    }
}

fn elect(ctx: &Ctx, e: &str, session: u64, value: String) -> Result<u64, String> {
    let leader = Leader { session, value, term: ctx.index };
    kv::put_json(&leader_key(e), &leader)?;
    kv::put(&session_key(session, b'l', e), b"");
    announce(e, Some(&leader));
    Ok(ctx.index)
}

/// Leadership is vacant: the first candidate takes it.
fn succeed(ctx: &Ctx, e: &str) -> Result<(), String> {
    match queue(e).into_iter().next() {
        Some((k, v)) => {
            let c: Candidate = serde_json::from_slice(&v).map_err(|e| e.to_string())?;
            kv::delete(&k);
            kv::delete(&session_key(c.session, b'c', e));
            let term = elect(ctx, e, c.session, c.value)?;
            corral_guest::notify(c.session, json!({ "election": e, "term": term }).to_string().as_bytes());
        }
        None => announce(e, None),
    }
    Ok(())
}

fn step_down(ctx: &Ctx, e: &str, session: u64) -> Result<bool, String> {
    match kv::get_json::<Leader>(&leader_key(e))? {
        Some(l) if l.session == session => {
            kv::delete(&leader_key(e));
            kv::delete(&session_key(session, b'l', e));
            succeed(ctx, e)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn leave_queue(e: &str, session: u64) {
    if let Some(seq) = kv::get(&session_key(session, b'c', e)) {
        kv::delete(&[queue_prefix(e), seq].concat());
        kv::delete(&session_key(session, b'c', e));
    }
}

pub struct Election;

impl Plugin for Election {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        if ctx.session == 0 && !matches!(input, Input::Leader { .. }) {
            return Err("elections are among sessions: start one first".into());
        }
        match input {
            Input::Campaign { election: e, value } => {
                check_name(&e)?;
                if let Some(l) = kv::get_json::<Leader>(&leader_key(&e))? {
                    if l.session == ctx.session {
                        return Ok(Output::Elected { term: l.term });
                    }
                }
                if kv::get(&session_key(ctx.session, b'c', &e)).is_some() {
                    return Err(format!("this session is already a candidate in {e}"));
                }
                corral_guest::watch_session(ctx.session);
                if kv::get(&leader_key(&e)).is_none() && queue(&e).is_empty() {
                    return Ok(Output::Elected { term: elect(ctx, &e, ctx.session, value)? });
                }
                let seq = kv::get_json::<u64>(&seq_key(&e))?.unwrap_or(0) + 1;
                kv::put_json(&seq_key(&e), &seq)?;
                let seq = seq.to_be_bytes();
                kv::put_json(&[queue_prefix(&e), seq.to_vec()].concat(), &Candidate { session: ctx.session, value })?;
                kv::put(&session_key(ctx.session, b'c', &e), &seq);
                Ok(Output::Candidate { position: queue(&e).len() as u64 })
            }
            Input::Resign { election: e } => {
                if !step_down(ctx, &e, ctx.session)? {
                    leave_queue(&e, ctx.session);
                }
                Ok(Output::Resigned)
            }
            Input::Observe { election: e } => {
                check_name(&e)?;
                corral_guest::watch_session(ctx.session);
                kv::put(&[observers_prefix(&e), ctx.session.to_be_bytes().to_vec()].concat(), b"");
                kv::put(&session_key(ctx.session, b'o', &e), b"");
                Ok(Output::Observing { leader: kv::get_json(&leader_key(&e))? })
            }
            Input::Leader { election } => Self::query(ctx, Input::Leader { election }),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::Leader { election } = input else { return Err("only `leader` is a query".into()) };
        Ok(Output::Leader { leader: kv::get_json(&leader_key(&election))? })
    }

    fn expire(ctx: &Ctx, session: u64) {
        let prefix = [b"s/".as_slice(), &session.to_be_bytes()].concat();
        for (k, _) in kv::scan_prefix(&prefix) {
            let Some((&kind, e)) = k[prefix.len()..].split_first() else { continue };
            let Ok(e) = String::from_utf8(e.to_vec()) else { continue };
            match kind {
                b'l' => {
                    let _ = step_down(ctx, &e, session);
                }
                b'c' => leave_queue(&e, session),
                _ => {
                    kv::delete(&[observers_prefix(&e), session.to_be_bytes().to_vec()].concat());
                    kv::delete(&k);
                }
            }
        }
    }
}

corral_guest::export!(Election);
