use super::*;

fn counter() -> Vec<u8> {
    std::fs::read(format!("{BUNDLED_DIR}/probe.wasm")).expect("bundled plugin")
}

#[test]
fn a_compiled_plugin_is_cached_on_disk_under_its_engine_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Plugins::new(dir.path()).expect("runtime");
    let p = first.prepare(&counter()).expect("prepare");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(files.len(), 1, "one artifact: {files:?}");

    // A fresh runtime (a restarted node) loads it without the code.
    let second = Plugins::new(dir.path()).expect("runtime");
    second.compiled(&p.hash, || Ok(None)).expect("loaded from disk");

    // A corrupt artifact is recompiled from the code, not trusted.
    let path = dir.path().join(&files[0]);
    std::fs::write(&path, b"garbage").expect("write");
    let third = Plugins::new(dir.path()).expect("runtime");
    assert!(third.compiled(&p.hash, || Ok(None)).is_err(), "no code and no usable artifact");
    third.compiled(&p.hash, || Ok(Some(p.code.clone()))).expect("recompiled");
    // Code that does not match its hash is refused.
    let fourth = Plugins::new(tempfile::tempdir().expect("tempdir").path()).expect("runtime");
    assert!(fourth.compiled(&p.hash, || Ok(Some(b"other".to_vec()))).is_err());
}
