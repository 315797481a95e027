//! A plugin that misbehaves on request: each input is one of the attacks the sandbox must
//! contain (the platform's tests send each, and check the cluster keeps serving).

use corral_guest::{kv, Ctx, Plugin};

pub struct Hostile;

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Not a tail call, and nothing on the shadow stack: only the wasm stack grows.
    recurse(n - 1).wrapping_mul(3).wrapping_add(n)
}

impl Plugin for Hostile {
    type Input = String;
    type Output = String;

    fn apply(_ctx: &Ctx, attack: String) -> Result<String, String> {
        match attack.as_str() {
            "ok" => {
                let n = kv::get(b"ok").map_or(0, |v| v.len()) + 1;
                kv::put(b"ok", &vec![b'x'; n]);
                Ok(format!("ok {n}"))
            }
            "loop" => {
                kv::put(b"half-done", b"1");
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            "host-loop" => loop {
                std::hint::black_box(kv::get(b"ok"));
            },
            "bomb" => {
                // Grab memory without touching it (touching costs fuel per byte, and fuel would
                // run out first).
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = Vec::with_capacity(1 << 20);
                    chunk.push(1u8);
                    hoard.push(chunk);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Ok(recurse(u64::MAX).to_string()),
            "trap" => {
                kv::put(b"half-done", b"1");
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_arch = "wasm32"))]
                unreachable!()
            }
            "panic" => panic!("hostile panic"),
            "big-output" => Ok("x".repeat(4 << 20)),
            // State kept in linear memory instead of the namespace: how many calls this
            // instance has served (the host promises a fresh instance per entry, no more).
            "hidden" => {
                static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                Ok((CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1).to_string())
            }
            "quota" => {
                for i in 0..10_000u32 {
                    kv::put(&i.to_be_bytes(), &[0u8; 1024]);
                }
                Ok("stored 10 MB".into())
            }
            other => Err(format!("unknown attack {other:?}")),
        }
    }

    fn query(_ctx: &Ctx, attack: String) -> Result<String, String> {
        match attack.as_str() {
            "write" => {
                kv::put(b"from-query", b"1");
                Ok("wrote".into())
            }
            "loop" => loop {
                std::hint::black_box(());
            },
            _ => Ok(String::from_utf8_lossy(&kv::get(b"ok").unwrap_or_default()).into()),
        }
    }
}

corral_guest::export!(Hostile);
