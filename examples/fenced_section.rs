//! A critical section whose fencing token is checked by the resource it protects (the `lock`
//! recipe). Client A takes the lock, then stalls (a long GC pause, say) and loses its session;
//! B takes the lock with a newer token and writes. When A wakes and writes with its old token,
//! the resource refuses: the token, not the lock alone, keeps the two apart.
//!
//! `cargo run -p corral -- dev` in one terminal, then `cargo run -p corral-examples --example fenced_section`.

mod connect;

use corral_client::Client;

/// The protected resource: remembers the highest token it has seen, refuses older ones.
#[derive(Default)]
struct Storage {
    highest: u64,
    value: String,
}

impl Storage {
    fn write(&mut self, token: u64, value: &str) -> Result<(), String> {
        if token < self.highest {
            return Err(format!("stale token {token} (seen {})", self.highest));
        }
        self.highest = token;
        self.value = value.into();
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = connect::config()?;
    let name = format!("section-{}", std::process::id());
    let mut storage = Storage::default();

    let a = Client::connect(&cfg).await?;
    a.start_session(2_000).await?;
    let a_guard = a.lock(&name).acquire().await?;
    println!("A holds the lock with token {}", a_guard.token());
    storage.write(a_guard.token(), "written by A").map_err(anyhow::Error::msg)?;

    // A stalls; its session ends (here: closed; in life: it expires), so the lock passes on.
    let a_token = a_guard.token();
    std::mem::forget(a_guard);
    a.close_session().await?;

    let b = Client::connect(&cfg).await?;
    b.start_session(2_000).await?;
    let b_guard = b.lock(&name).acquire().await?;
    println!("B holds the lock with token {}", b_guard.token());
    storage.write(b_guard.token(), "written by B").map_err(anyhow::Error::msg)?;

    match storage.write(a_token, "late write by A") {
        Ok(()) => anyhow::bail!("the stale write was accepted"),
        Err(e) => println!("A wakes up and writes: refused ({e})"),
    }
    println!("the storage holds {:?}", storage.value);
    b_guard.release().await?;
    b.close_session().await?;
    Ok(())
}
