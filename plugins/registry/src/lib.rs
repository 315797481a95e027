//! registry: service discovery with load balancing. Instances register under a service,
//! tied to their session (gone when it ends), with metadata and a weight. `lookup` (a query)
//! lists a service's instances; `pick` (a call: it changes the balancing state, the same on
//! every replica) chooses one — weighted round-robin, or the least assigned relative to its
//! weight — so every client sees one consistent balancing.

use corral_guest::{kv, Ctx, Plugin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastAssigned,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Register {
        service: String,
        instance: String,
        #[serde(default)]
        meta: String,
        #[serde(default = "one")]
        weight: u32,
    },
    Deregister {
        service: String,
        instance: String,
    },
    Lookup {
        service: String,
    },
    Pick {
        service: String,
        strategy: Strategy,
    },
}

fn one() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Instance {
    instance: String,
    meta: String,
    weight: u32,
    session: u64,
    /// How many times `pick` chose it.
    assigned: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Registered,
    Deregistered,
    Instances(Vec<Instance>),
    Picked(Instance),
}

fn prefix(service: &str) -> Vec<u8> {
    format!("i/{service}\0").into_bytes()
}
fn key(service: &str, instance: &str) -> Vec<u8> {
    [prefix(service), instance.as_bytes().to_vec()].concat()
}
/// `s/<session BE><service>\0<instance>`: what a session registered.
fn session_key(session: u64, service: &str, instance: &str) -> Vec<u8> {
    [b"s/".as_slice(), &session.to_be_bytes(), service.as_bytes(), b"\0", instance.as_bytes()].concat()
}

fn instances(service: &str) -> Result<Vec<Instance>, String> {
    kv::scan_prefix(&prefix(service)).iter().map(|(_, v)| serde_json::from_slice(v).map_err(|e| e.to_string())).collect()
}

fn check(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 || name.contains('\0') {
        return Err(format!("a {what} name is 1 to 256 bytes, without NUL"));
    }
    Ok(())
}

pub struct Registry;

impl Plugin for Registry {
    type Input = Input;
    type Output = Output;

    fn apply(ctx: &Ctx, input: Input) -> Result<Output, String> {
        match input {
            Input::Register { service, instance, meta, weight } => {
                check(&service, "service")?;
                check(&instance, "instance")?;
                if ctx.session == 0 {
                    return Err("an instance lives as long as its session: start one first".into());
                }
                if weight == 0 {
                    return Err("a weight is at least 1".into());
                }
                if let Some(other) = kv::get_json::<Instance>(&key(&service, &instance))? {
                    if other.session != ctx.session {
                        return Err(format!("instance {instance} of {service} is registered by another session"));
                    }
                }
                corral_guest::watch_session(ctx.session);
                let inst = Instance { instance: instance.clone(), meta, weight, session: ctx.session, assigned: 0 };
                kv::put_json(&key(&service, &instance), &inst)?;
                kv::put(&session_key(ctx.session, &service, &instance), b"");
                Ok(Output::Registered)
            }
            Input::Deregister { service, instance } => {
                match kv::get_json::<Instance>(&key(&service, &instance))? {
                    Some(i) if i.session == ctx.session => {}
                    Some(_) => return Err(format!("instance {instance} of {service} is another session's")),
                    None => return Err(format!("no instance {instance} of {service}")),
                }
                kv::delete(&key(&service, &instance));
                kv::delete(&session_key(ctx.session, &service, &instance));
                Ok(Output::Deregistered)
            }
            Input::Pick { service, strategy } => {
                let all = instances(&service)?;
                if all.is_empty() {
                    return Err(format!("service {service} has no instances"));
                }
                let chosen = match strategy {
                    Strategy::RoundRobin => {
                        // Weighted round-robin: a cursor over the instances, each taking
                        // `weight` consecutive turns.
                        let total: u64 = all.iter().map(|i| i.weight as u64).sum();
                        let cursor_key = format!("c/{service}").into_bytes();
                        let cursor = kv::get_json::<u64>(&cursor_key)?.unwrap_or(0) % total;
                        kv::put_json(&cursor_key, &(cursor + 1))?;
                        let mut acc = 0;
                        all.iter().find(|i| {
                            acc += i.weight as u64;
                            cursor < acc
                        })
                    }
                    Strategy::LeastAssigned => all.iter().min_by(|a, b| {
                        // assigned / weight, compared without division; ties by name.
                        (a.assigned as u128 * b.weight as u128)
                            .cmp(&(b.assigned as u128 * a.weight as u128))
                            .then(a.instance.cmp(&b.instance))
                    }),
                };
                let mut chosen = chosen.cloned().ok_or("no instance")?;
                chosen.assigned += 1;
                kv::put_json(&key(&service, &chosen.instance), &chosen)?;
                Ok(Output::Picked(chosen))
            }
            Input::Lookup { service } => Self::query(ctx, Input::Lookup { service }),
        }
    }

    fn query(_ctx: &Ctx, input: Input) -> Result<Output, String> {
        let Input::Lookup { service } = input else { return Err("only `lookup` is a query".into()) };
        Ok(Output::Instances(instances(&service)?))
    }

    fn expire(_ctx: &Ctx, session: u64) {
        let p = [b"s/".as_slice(), &session.to_be_bytes()].concat();
        for (k, _) in kv::scan_prefix(&p) {
            kv::delete(&k);
            let rest = &k[p.len()..];
            let Some(nul) = rest.iter().position(|b| *b == 0) else { continue };
            let (service, instance) = (&rest[..nul], &rest[nul + 1..]);
            kv::delete(&[b"i/".as_slice(), service, b"\0", instance].concat());
        }
    }
}

corral_guest::export!(Registry);
