//! Building the C and AssemblyScript plugins (`plugins/c-counter`, `plugins/as-counter`) with
//! their own compilers, as a plugin author would: clang-19 with the C bindings shipped in
//! `guest-sdk/c`, and asc from `guest-sdk/assemblyscript` (`scripts/setup` installs both).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("{what}: cannot run ({e}); run scripts/setup first"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The C counter, built into `dir`.
pub fn build_c_counter(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let sdk = root().join("guest-sdk/c");
    let out = dir.join("c_counter.wasm");
    run(
        Command::new("clang-19")
            .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Werror", "-I"])
            .arg(&sdk)
            .arg(root().join("plugins/c-counter/counter.c"))
            .arg(sdk.join("plugin.c"))
            .arg(sdk.join("plugin_component_type.o"))
            .arg("-o")
            .arg(&out),
        "clang-19",
    )?;
    Ok(std::fs::read(out)?)
}

/// The AssemblyScript counter, built into `dir`.
pub fn build_as_counter(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let asc = root().join("guest-sdk/assemblyscript/node_modules/.bin/asc");
    let out = dir.join("as_counter.wasm");
    run(
        Command::new(asc)
            .current_dir(root().join("plugins/as-counter"))
            .args(["counter.ts", "-O3", "--runtime", "stub", "--use", "abort=", "-o"])
            .arg(&out),
        "asc",
    )?;
    Ok(std::fs::read(out)?)
}
