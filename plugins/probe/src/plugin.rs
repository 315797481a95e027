// Shared by `probe` (version 1) and `probe-v2` (version 2): each defines VERSION first.

use corral_guest::{kv, Ctx, Plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Add to the counter; returns the new value.
    Add(i64),
    /// The counter (a query, or a write that reads).
    Get,
    /// Which code runs, and what `migrate` recorded.
    Version,
    /// Write then fail: nothing may stay.
    Fail(String),
    Notify { session: u64, msg: String },
    Timer { at_ms: u64, tag: String },
    CancelTimer(String),
    Watch(u64),
    /// The call's context, as the plugin saw it.
    Context,
    /// A stored value by key.
    Read(String),
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Output {
    Number(i64),
    Text(Option<String>),
    Version { version: u32, migrated_from: Option<u32> },
    Context { index: u64, time_ms: u64, session: u64, identity: String },
    Done(()),
}

pub struct Probe;

fn counter() -> Result<i64, String> {
    Ok(kv::get_json::<i64>(b"n")?.unwrap_or(0))
}

impl Plugin for Probe {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        match input {
            Input::Add(d) => {
                let n = counter()?.checked_add(d).ok_or("overflow")?;
                kv::put_json(b"n", &n)?;
                Ok(Output::Number(n))
            }
            Input::Fail(why) => {
                kv::put_json(b"n", &-1)?;
                kv::put(b"poison", b"1");
                Err(why)
            }
            Input::Notify { session, msg } => {
                corral_guest::notify(session, msg.as_bytes());
                Ok(Output::Done(()))
            }
            Input::Timer { at_ms, tag } => {
                corral_guest::set_timer(at_ms, tag.as_bytes());
                Ok(Output::Done(()))
            }
            Input::CancelTimer(tag) => {
                corral_guest::cancel_timer(tag.as_bytes());
                Ok(Output::Done(()))
            }
            Input::Watch(session) => {
                corral_guest::watch_session(session);
                Ok(Output::Done(()))
            }
            other => Self::query(ctx, other),
        }
    }

    fn query(ctx: &Ctx, input: Input) -> Result<Output, String> {
        match input {
            Input::Get => Ok(Output::Number(counter()?)),
            Input::Version => {
                Ok(Output::Version { version: VERSION, migrated_from: kv::get_json(b"migrated_from")? })
            }
            Input::Context => Ok(Output::Context {
                index: ctx.index,
                time_ms: ctx.time_ms,
                session: ctx.session,
                identity: ctx.identity.clone(),
            }),
            Input::Read(key) => Ok(Output::Text(kv::get(key.as_bytes()).map(|v| String::from_utf8_lossy(&v).into()))),
            _ => Err("not a query".into()),
        }
    }

    fn expire(_ctx: &Ctx, session: u64) {
        kv::put(format!("expired/{session}").as_bytes(), b"1");
    }

    fn timer(ctx: &Ctx, tag: &[u8]) {
        let key = [b"fired/".as_slice(), tag].concat();
        kv::put(&key, ctx.time_ms.to_string().as_bytes());
    }

    fn migrate(_ctx: &Ctx, from_version: u32) -> Result<(), String> {
        kv::put_json(b"migrated_from", &from_version)
    }
}

corral_guest::export!(Probe);
