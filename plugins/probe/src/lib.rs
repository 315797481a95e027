//! The platform's behaviour plugin: a counter plus one input per host function, so tests can
//! drive every part of the contract. `probe-v2` is the same code at version 2 (for upgrades).

const VERSION: u32 = 1;

include!("plugin.rs");
