//! counter: named 64-bit counters with atomic add, get and compare-and-set, and sequence
//! generators (gap-free, increasing numbers). Every operation is one round trip.
//!
//! Inputs (JSON): `{"add": N}` / `"get"` work on the default counter (the C and
//! AssemblyScript twins in `plugins/c-counter`, `plugins/as-counter` implement exactly these);
//! `{"add_to": {"name", "delta"}}`, `{"value": {"name"}}`, `{"cas": {"name", "expect", "new"}}`
//! and `{"next": {"name"}}` (the sequence: 1, 2, 3, ...) on named ones.

use corral_guest::{kv, Ctx, Plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Add(i64),
    Get,
    AddTo { name: String, delta: i64 },
    Value { name: String },
    Cas { name: String, expect: i64, new: i64 },
    Next { name: String },
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Output {
    Number(i64),
    Swapped { swapped: bool, value: i64 },
}

/// A counter's key (`c/`), or a sequence's (`s/`).
fn key(space: &str, name: &str) -> Result<Vec<u8>, String> {
    if name.len() > 256 {
        return Err("a counter name is at most 256 bytes".into());
    }
    Ok(format!("{space}/{name}").into_bytes())
}

fn load(key: &[u8]) -> Result<i64, String> {
    Ok(kv::get_json::<i64>(key)?.unwrap_or(0))
}

fn add(key: &[u8], delta: i64) -> Result<Output, String> {
    let n = load(key)?.checked_add(delta).ok_or("overflow")?;
    kv::put_json(key, &n)?;
    Ok(Output::Number(n))
}

pub struct Counter;

impl Plugin for Counter {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        match input {
            Input::Add(delta) => add(&key("c", "")?, delta),
            Input::AddTo { name, delta } => add(&key("c", &name)?, delta),
            Input::Next { name } => add(&key("s", &name)?, 1),
            Input::Cas { name, expect, new } => {
                let k = key("c", &name)?;
                let now = load(&k)?;
                if now != expect {
                    return Ok(Output::Swapped { swapped: false, value: now });
                }
                kv::put_json(&k, &new)?;
                Ok(Output::Swapped { swapped: true, value: new })
            }
            other => Self::query(ctx, other),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        match input {
            Input::Get => Ok(Output::Number(load(&key("c", "")?)?)),
            Input::Value { name } => Ok(Output::Number(load(&key("c", &name)?)?)),
            _ => Err("not a query: add, add_to, cas and next are calls".into()),
        }
    }
}

corral_guest::export!(Counter);
