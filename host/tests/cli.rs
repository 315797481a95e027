//! The `corral` binary's own behaviour: a bad config is one line naming the file and the
//! field, with a non-zero exit; client commands without a cluster say how to point at one.
//! (Being an integration test of this package also makes `cargo test` build the binary that
//! the cluster tests in `tests/` run.)

use std::process::Command;

fn corral(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .current_dir(dir)
        .env_remove("CORRAL_CONFIG")
        .output()
        .expect("run corral");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    lines[0]
}

#[test]
fn bad_config_files_fail_with_one_line_naming_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    assert!(corral(&["certs", "ca", "--dir", d], dir.path()).0);
    assert!(corral(&["certs", "node", "--dir", d, "--id", "1"], dir.path()).0);
    let good = "id = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = \"n1\"\n[tls]\nca = \"ca.pem\"\ncert = \"node1.pem\"\nkey = \"node1.key\"\n";
    let cases = [
        (good.replace("id = 1", "id = -4"), "field `id`"),
        (good.replace("node1.pem", "missing.pem"), "field `tls.cert`"),
        (good.replace("node1.key", "ca.pem"), "field `tls.key`"),
        (format!("{good}[raft]\nelection_min_ms = 900\n"), "field `raft.election_min_ms`"),
        ("id = [".to_string(), "node.toml"),
    ];
    for (text, want) in cases {
        let cfg = dir.path().join("node.toml");
        std::fs::write(&cfg, &text).expect("write");
        let (ok, stderr) = corral(&["serve", "--config", cfg.to_str().expect("utf-8")], dir.path());
        assert!(!ok, "serve accepted {text:?}");
        let line = one_line_error(&stderr);
        assert!(line.contains("node.toml") || line.contains(".pem"), "{line:?} names no file");
        assert!(line.contains(want), "{line:?} does not mention {want:?}");
    }
}

#[test]
fn client_commands_without_a_cluster_explain_where_they_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, stderr) = corral(&["get", "/x"], dir.path());
    assert!(!ok);
    assert!(one_line_error(&stderr).contains(".corral-dev/client.toml"), "{stderr}");
}
