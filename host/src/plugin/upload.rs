//! What an upload may be, and turning it into the component every replica runs. Runs on the
//! leader before anything is proposed: a bad upload is a clear error and changes nothing.
//!
//! Three forms are accepted (DESIGN.md §7), so an author needs only their language's compiler:
//! - a component;
//! - a core module carrying wit-bindgen's `component-type` metadata (Rust, C): componentized
//!   here with `wit-component`;
//! - a bare core module written to the canonical ABI (AssemblyScript): the WIT is embedded here
//!   first, then it is componentized.

use wasmparser::{Parser, Payload};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// The contract, as the plugin SDK ships it.
pub const WIT: &str = include_str!("../../../guest-sdk/wit/plugin.wit");
/// The one import interface a plugin may use; its version is the contract's.
pub const HOST_INTERFACE: &str = "corral:plugin/host@1.0.0";
/// An upload larger than this is refused (it travels in a log entry and in every snapshot).
pub const MAX_UPLOAD_BYTES: usize = 8 << 20;

/// Why an upload is refused: shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refuse(msg: impl Into<String>) -> Refused {
    Refused(msg.into())
}

/// The component form of an upload.
pub fn to_component(bytes: &[u8]) -> Result<Vec<u8>, Refused> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(refuse(format!("the upload is {} bytes, over the limit of {MAX_UPLOAD_BYTES}", bytes.len())));
    }
    if Parser::is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    if !Parser::is_core_wasm(bytes) {
        return Err(refuse("not a WebAssembly module or component (bad magic number or version)"));
    }
    let core = CoreInfo::read(bytes)?;
    core.check_imports()?;
    let mut module = bytes.to_vec();
    if !core.has_metadata {
        embed_contract(&mut module, core.exports_migrate)?;
    }
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|mut enc| enc.encode())
        .map_err(|e| refuse(format!("cannot make a component of this module: {e:#}")))
}

/// Embed the contract's WIT in a bare core module (the world with `migrate` if it exports one).
fn embed_contract(module: &mut Vec<u8>, with_migrate: bool) -> Result<(), Refused> {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("plugin.wit", WIT).map_err(|e| refuse(format!("the built-in WIT: {e}")))?;
    let world = if with_migrate { "plugin-with-migrate" } else { "plugin" };
    let world = resolve.select_world(&[pkg], Some(world)).map_err(|e| refuse(format!("the built-in WIT: {e}")))?;
    wit_component::embed_component_metadata(module, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| refuse(format!("cannot embed the contract: {e:#}")))
}

/// What a core module imports and exports, read before it is componentized.
struct CoreInfo {
    imports: Vec<(String, String)>,
    exports_migrate: bool,
    has_metadata: bool,
}

impl CoreInfo {
    fn read(bytes: &[u8]) -> Result<CoreInfo, Refused> {
        let bad = |e: wasmparser::BinaryReaderError| refuse(format!("invalid wasm: {e}"));
        let mut info = CoreInfo { imports: Vec::new(), exports_migrate: false, has_metadata: false };
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(bad)? {
                Payload::ImportSection(reader) => {
                    for imp in reader.into_imports() {
                        let imp = imp.map_err(bad)?;
                        info.imports.push((imp.module.to_string(), imp.name.to_string()));
                    }
                }
                Payload::ExportSection(reader) => {
                    for exp in reader {
                        info.exports_migrate |= exp.map_err(bad)?.name == "migrate";
                    }
                }
                Payload::CustomSection(c) if c.name().starts_with("component-type") => info.has_metadata = true,
                _ => {}
            }
        }
        Ok(info)
    }

    /// Only the contract's host interface: no WASI, nothing else (strict linking would refuse
    /// them at instantiation anyway; this says why, before any work is done).
    fn check_imports(&self) -> Result<(), Refused> {
        match self.imports.iter().find(|(m, _)| m != HOST_INTERFACE) {
            None => Ok(()),
            Some((m, n)) if m.starts_with("corral:plugin/host@") => Err(refuse(format!(
                "the module imports {m}#{n}: it was built against another version of the plugin contract \
                 (this server speaks {HOST_INTERFACE})"
            ))),
            Some((m, n)) => Err(refuse(format!(
                "the module imports {m}::{n}: a plugin may import only {HOST_INTERFACE} (no WASI, no other host)"
            ))),
        }
    }
}
