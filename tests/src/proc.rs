//! Locating the `corral` binary and running it as a child that cannot outlive the test.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `$CORRAL_BIN`, else `target/<profile>/corral` next to the test executable, built first
/// when run by cargo (`cargo test`, `cargo run --bin nemesis`) or when missing.
///
/// Built every time under cargo because `cargo test -p corral-tests` builds no other package's
/// binary: a `corral` left over from an earlier build would be tested silently, old code
/// passing for new. When it is up to date the build is a check of a second or so.
pub fn corral_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CORRAL_BIN") {
            return PathBuf::from(p);
        }
        // Test executables live in target/<profile>/deps, the nemesis binary in target/<profile>.
        let exe = std::env::current_exe().expect("current_exe");
        let here = exe.parent().expect("exe dir");
        let profile_dir = if here.ends_with("deps") { here.parent().expect("target dir") } else { here };
        let bin = profile_dir.join("corral");
        let under_cargo = std::env::var_os("CARGO").is_some();
        if under_cargo || !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../host/Cargo.toml");
            let mut build = Command::new(cargo);
            build.args(["build", "--quiet", "--manifest-path", manifest, "--bin", "corral"]);
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let ok = build.status().map(|s| s.success()).unwrap_or(false);
            assert!(ok, "could not build the corral binary");
        }
        bin
    })
    .clone()
}

/// A `corral` command whose process gets SIGKILL if the test process dies.
pub fn corral_cmd() -> Command {
    let mut cmd = Command::new(corral_bin());
    cmd.stdin(Stdio::null());
    die_with_parent(&mut cmd);
    cmd
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A bundled plugin's wasm (`plugins/`, built for wasm32 by the corral crate's build script
/// into `target/plugins`).
pub fn plugin_wasm(name: &str) -> Vec<u8> {
    let bin = corral_bin();
    let target = bin.parent().and_then(|p| p.parent()).expect("target dir");
    let path = target.join("plugins/wasm32-unknown-unknown/release").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("bundled plugin {}: {e}", path.display()))
}
