//! queue: a FIFO work queue with priorities, delayed delivery and at-least-once takes.
//!
//! - `put` stores an item (refused, clearly, once the queue holds `capacity` items).
//!   Higher `priority` first, then in order of arrival; `delay_ms` hides it until then.
//! - `take` hands the next ready item to the caller's session at once, or queues the session
//!   (FIFO among takers): the item then comes as a notification `{"queue", "id", "data"}` as
//!   soon as one is ready. Only the first waiting taker is woken per item.
//! - A taken item is in flight until `ack`. It returns to the queue, unacknowledged, when its
//!   taker's session ends or its visibility timeout passes; only the session it is in flight
//!   with may acknowledge it, so no item is acknowledged twice.

use corral_guest::{kv, Counted, Ctx, Plugin};
use serde::{Deserialize, Serialize};
use serde_json::json;

const DEFAULT_CAPACITY: u64 = 100_000;
const DEFAULT_VISIBILITY_MS: u64 = 30_000;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Put {
        queue: String,
        data: String,
        #[serde(default)]
        priority: i64,
        #[serde(default)]
        delay_ms: u64,
    },
    Take {
        queue: String,
        #[serde(default)]
        visibility_ms: Option<u64>,
    },
    Ack {
        queue: String,
        id: u64,
    },
    /// Set the most items the queue may hold.
    Configure {
        queue: String,
        capacity: u64,
    },
    /// Query: how many items it holds (ready, in flight or delayed), how many are ready, how
    /// many takers wait.
    Size {
        queue: String,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Put { id: u64 },
    Item { id: u64, data: String },
    Waiting { position: u64 },
    Acked,
    Configured,
    Size { items: u64, ready: u64, takers: u64 },
}

#[derive(Serialize, Deserialize)]
struct Item {
    data: String,
    priority: i64,
    /// Leased to this session (0: not in flight), with this visibility timeout.
    taker: u64,
    visibility_ms: u64,
}

fn p(kind: &str, q: &str) -> Vec<u8> {
    format!("{kind}/{q}\0").into_bytes()
}
fn with_u64(prefix: Vec<u8>, n: u64) -> Vec<u8> {
    [prefix, n.to_be_bytes().to_vec()].concat()
}
fn tail_u64(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or_default())
}
/// Ready items in delivery order: higher priority first, then by id.
fn ready_key(q: &str, priority: i64, id: u64) -> Vec<u8> {
    let order = !((priority as u64) ^ (1 << 63));
    [p("r", q), order.to_be_bytes().to_vec(), id.to_be_bytes().to_vec()].concat()
}
fn item_key(q: &str, id: u64) -> Vec<u8> {
    with_u64(p("i", q), id)
}
/// `s/<session BE><q>\0<kind><id BE>`: kind b'f' an item in flight, b't' a wait (taker seq).
fn session_prefix(session: u64) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes()].concat()
}
fn session_key(session: u64, q: &str, kind: u8, id: u64) -> Vec<u8> {
    [session_prefix(session), q.as_bytes().to_vec(), vec![0, kind], id.to_be_bytes().to_vec()].concat()
}
fn timer_tag(kind: u8, q: &str, id: u64) -> Vec<u8> {
    [vec![kind], id.to_be_bytes().to_vec(), q.as_bytes().to_vec()].concat()
}

fn count(q: &str) -> Result<u64, String> {
    Ok(kv::get_json::<u64>(&p("c", q))?.unwrap_or(0))
}

/// The takers waiting for an item, their number kept: a take that waits answers its position
/// without reading every taker.
fn takers(q: &str) -> Counted {
    Counted { prefix: p("t", q), count_key: p("w", q), since_key: p("k", q) }
}

fn next_seq(q: &str, kind: &str) -> Result<u64, String> {
    let n = kv::get_json::<u64>(&p(kind, q))?.unwrap_or(0) + 1;
    kv::put_json(&p(kind, q), &n)?;
    Ok(n)
}

fn first(prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    kv::scan(prefix, 1).into_iter().next().filter(|(k, _)| k.starts_with(prefix))
}

/// Lease item `id` to `session`.
fn lease(ctx: &Ctx, q: &str, id: u64, mut item: Item, session: u64, visibility_ms: u64) -> Result<Item, String> {
    kv::delete(&ready_key(q, item.priority, id));
    item.taker = session;
    item.visibility_ms = visibility_ms;
    kv::put_json(&item_key(q, id), &item)?;
    kv::put(&session_key(session, q, b'f', id), b"");
    corral_guest::set_timer(ctx.time_ms.saturating_add(visibility_ms), &timer_tag(b'v', q, id));
    Ok(item)
}

/// Hand ready items to waiting takers, first come first served.
fn deliver(ctx: &Ctx, q: &str) -> Result<(), String> {
    while let Some((tk, tv)) = first(&p("t", q)) {
        let Some((rk, _)) = first(&p("r", q)) else { return Ok(()) };
        let id = tail_u64(&rk);
        let Some(item) = kv::get_json::<Item>(&item_key(q, id))? else {
            kv::delete(&rk);
            continue;
        };
        #[derive(Deserialize)]
        struct Taker {
            session: u64,
            visibility_ms: u64,
        }
        let t: Taker = serde_json::from_slice(&tv).map_err(|e| e.to_string())?;
        takers(q).remove(&tk)?;
        kv::delete(&session_key(t.session, q, b't', tail_u64(&tk)));
        let item = lease(ctx, q, id, item, t.session, t.visibility_ms)?;
        let note = json!({ "queue": q, "id": id, "data": item.data });
        corral_guest::notify(t.session, note.to_string().as_bytes());
    }
    Ok(())
}

/// Item `id` is ready again (its taker went away, its lease or its delay ran out).
fn make_ready(ctx: &Ctx, q: &str, id: u64) -> Result<(), String> {
    let Some(mut item) = kv::get_json::<Item>(&item_key(q, id))? else { return Ok(()) };
    if item.taker != 0 {
        kv::delete(&session_key(item.taker, q, b'f', id));
        corral_guest::cancel_timer(&timer_tag(b'v', q, id));
        item.taker = 0;
        kv::put_json(&item_key(q, id), &item)?;
    }
    kv::put(&ready_key(q, item.priority, id), b"");
    deliver(ctx, q)
}

fn check_name(q: &str) -> Result<(), String> {
    if q.is_empty() || q.len() > 256 || q.contains('\0') {
        return Err("a queue name is 1 to 256 bytes, without NUL".into());
    }
    Ok(())
}

pub struct Queue;

impl Plugin for Queue {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        match input {
            Input::Put { queue: q, data, priority, delay_ms } => {
                check_name(&q)?;
                let capacity = kv::get_json::<u64>(&p("m", &q))?.unwrap_or(DEFAULT_CAPACITY);
                let n = count(&q)?;
                if n >= capacity {
                    return Err(format!("queue {q} is full ({capacity} items)"));
                }
                let id = next_seq(&q, "n")?;
                kv::put_json(&item_key(&q, id), &Item { data, priority, taker: 0, visibility_ms: 0 })?;
                kv::put_json(&p("c", &q), &(n + 1))?;
                if delay_ms > 0 {
                    corral_guest::set_timer(ctx.time_ms.saturating_add(delay_ms), &timer_tag(b'd', &q, id));
                } else {
                    kv::put(&ready_key(&q, priority, id), b"");
                    deliver(ctx, &q)?;
                }
                Ok(Output::Put { id })
            }
            Input::Take { queue: q, visibility_ms } => {
                check_name(&q)?;
                if ctx.session == 0 {
                    return Err("takes are leased to sessions: start one first".into());
                }
                let visibility_ms = visibility_ms.unwrap_or(DEFAULT_VISIBILITY_MS).max(1);
                corral_guest::watch_session(ctx.session);
                let nobody_waits = first(&p("t", &q)).is_none();
                if let (true, Some((rk, _))) = (nobody_waits, first(&p("r", &q))) {
                    let id = tail_u64(&rk);
                    let item = kv::get_json::<Item>(&item_key(&q, id))?.ok_or("a ready item is missing")?;
                    let item = lease(ctx, &q, id, item, ctx.session, visibility_ms)?;
                    return Ok(Output::Item { id, data: item.data });
                }
                let seq = kv::get_json::<u64>(&p("k", &q))?.unwrap_or(0) + 1;
                let taker = json!({ "session": ctx.session, "visibility_ms": visibility_ms });
                // Counted before the sequence is written: a queue's first taker needs no count.
                let position = takers(&q).insert(&with_u64(p("t", &q), seq), taker.to_string().as_bytes())?;
                kv::put_json(&p("k", &q), &seq)?;
                kv::put(&session_key(ctx.session, &q, b't', seq), b"");
                Ok(Output::Waiting { position })
            }
            Input::Ack { queue: q, id } => {
                let Some(item) = kv::get_json::<Item>(&item_key(&q, id))? else {
                    return Err(format!("no item {id} in queue {q} (already acknowledged?)"));
                };
                if item.taker != ctx.session || ctx.session == 0 {
                    return Err(format!("item {id} of queue {q} is not in flight with this session"));
                }
                kv::delete(&item_key(&q, id));
                kv::delete(&session_key(ctx.session, &q, b'f', id));
                corral_guest::cancel_timer(&timer_tag(b'v', &q, id));
                kv::put_json(&p("c", &q), &count(&q)?.saturating_sub(1))?;
                Ok(Output::Acked)
            }
            Input::Configure { queue: q, capacity } => {
                check_name(&q)?;
                kv::put_json(&p("m", &q), &capacity)?;
                Ok(Output::Configured)
            }
            Input::Size { queue } => Self::query(ctx, Input::Size { queue }),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::Size { queue: q } = input else { return Err("only `size` is a query".into()) };
        let ready = kv::scan_prefix(&p("r", &q)).len() as u64;
        Ok(Output::Size { items: count(&q)?, ready, takers: takers(&q).count()? })
    }

    fn expire(ctx: &Ctx, session: u64) {
        let prefix = session_prefix(session);
        for (k, _) in kv::scan_prefix(&prefix) {
            kv::delete(&k);
            let rest = &k[prefix.len()..];
            let Some(nul) = rest.iter().position(|b| *b == 0) else { continue };
            let Ok(q) = String::from_utf8(rest[..nul].to_vec()) else { continue };
            let id = tail_u64(&k);
            match rest.get(nul + 1) {
                Some(b'f') => {
                    let _ = make_ready(ctx, &q, id);
                }
                _ => {
                    let _ = takers(&q).remove(&with_u64(p("t", &q), id));
                }
            }
        }
    }

    fn timer(ctx: &Ctx, tag: &[u8]) {
        let Some((&kind, rest)) = tag.split_first() else { return };
        if rest.len() < 8 {
            return;
        }
        let id = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
        let Ok(q) = String::from_utf8(rest[8..].to_vec()) else { return };
        let _ = match kind {
            b'v' | b'd' => make_ready(ctx, &q, id),
            _ => Ok(()),
        };
    }
}

corral_guest::export!(Queue);
