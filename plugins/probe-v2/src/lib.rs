//! `probe` at version 2: the upgrade target in the platform's tests.

const VERSION: u32 = 2;

include!("../../probe/src/plugin.rs");
