//! Builds the bundled plugins (`plugins/`, their own workspace) for wasm32-unknown-unknown into
//! `target/plugins`, so `cargo build`, `cargo test` and `corral dev` always have them, and tells
//! the crate where they are (`CORRAL_PLUGINS_DIR`).
//!
//! A nested cargo: it gets its own target dir (no deadlock on the outer build's lock) and none
//! of the outer build's compiler settings (wrappers such as clippy's must not reach it).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ is inside the workspace").to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("plugins"),
        None => root.join("target").join("plugins"),
    };
    for dir in ["plugins", "guest-sdk/src", "guest-sdk/wit", "guest-sdk/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("plugins"))
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let outer = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key == "RUSTFLAGS"
            || key.starts_with("DEP_");
        if outer {
            cmd.env_remove(&key);
        }
    }
    let status = cmd.status().expect("running cargo for the bundled plugins");
    if !status.success() {
        panic!(
            "building the bundled plugins failed (is the wasm target installed? \
             `rustup target add wasm32-unknown-unknown`)"
        );
    }
    let out = target.join("wasm32-unknown-unknown").join("release");
    println!("cargo:rustc-env=CORRAL_PLUGINS_DIR={}", out.display());
}
