//! Tells which guest ABI a WebAssembly binary speaks, from its exports, before compiling it.

use wasmparser::{Encoding, Parser, Payload};

use crate::LoadError;

/// The interface a Palisade admission component exports, without its version.
pub(crate) const ADMISSION_INTERFACE: &str = "palisade:admission/policy";

/// The guest ABI of a WebAssembly binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abi {
    /// A component exporting `palisade:admission/policy@<version>`.
    Admission {
        /// The WIT package version it exports.
        version: String,
    },
    /// A core module exporting `proxy_abi_version_<x>_<y>_<z>`.
    ProxyWasm {
        /// The ABI version, dotted (`0.2.1`).
        version: String,
    },
    /// A core module exporting waPC's `__guest_call` (Kubewarden policies).
    Kubewarden,
    /// A core module exporting `_start` and no policy ABI: a WASI command, which is a policy
    /// when its Kubewarden metadata says `executionMode: wasi`.
    WasiCommand,
    /// A component of some other world.
    Component {
        /// Its top-level export names.
        exports: Vec<String>,
    },
    /// A core module with no policy ABI this host knows.
    Module,
}

impl std::fmt::Display for Abi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admission { version } => write!(
                f,
                "Palisade admission component ({ADMISSION_INTERFACE}@{version})"
            ),
            Self::ProxyWasm { version } => write!(f, "proxy-wasm filter (ABI {version})"),
            Self::Kubewarden => f.write_str("Kubewarden waPC policy"),
            Self::WasiCommand => f.write_str("WASI command (Kubewarden WASI-mode policy)"),
            Self::Component { exports } if exports.is_empty() => {
                f.write_str("component with no exports")
            }
            Self::Component { exports } => write!(
                f,
                "component of another world (exports {})",
                exports.join(", ")
            ),
            Self::Module => f.write_str("core WebAssembly module with no policy ABI"),
        }
    }
}

impl Abi {
    /// Reads the binary's header and exports.
    ///
    /// # Errors
    /// [`LoadError::NotWasm`] when the bytes are not WebAssembly; [`LoadError::Compile`] when
    /// the binary is malformed.
    pub fn detect(bytes: &[u8]) -> Result<Self, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm(bytes.iter().take(4).copied().collect()));
        }
        let mut depth = 0usize;
        let mut encoding = Encoding::Module;
        let mut core_exports = Vec::new();
        let mut component_exports = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| LoadError::Compile(e.into()))?;
            match payload {
                Payload::Version { encoding: e, .. } => {
                    if depth == 0 {
                        encoding = e;
                    }
                    depth = depth.saturating_add(1);
                }
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ExportSection(section) if depth == 1 => {
                    for export in section {
                        let export = export.map_err(|e| LoadError::Compile(e.into()))?;
                        core_exports.push(export.name.to_owned());
                    }
                }
                Payload::ComponentExportSection(section) if depth == 1 => {
                    for export in section {
                        let export = export.map_err(|e| LoadError::Compile(e.into()))?;
                        component_exports.push(export.name.name.to_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(match encoding {
            Encoding::Component => classify_component(component_exports),
            Encoding::Module => classify_module(&core_exports),
        })
    }
}

fn classify_component(exports: Vec<String>) -> Abi {
    let policy = exports.iter().find_map(|name| {
        name.strip_prefix(ADMISSION_INTERFACE)
            .and_then(|rest| rest.strip_prefix('@'))
    });
    match policy {
        Some(version) => Abi::Admission {
            version: version.to_owned(),
        },
        None => Abi::Component { exports },
    }
}

fn classify_module(exports: &[String]) -> Abi {
    if let Some(version) = exports
        .iter()
        .find_map(|n| n.strip_prefix("proxy_abi_version_"))
    {
        return Abi::ProxyWasm {
            version: version.replace('_', "."),
        };
    }
    if exports.iter().any(|n| n == "__guest_call") {
        return Abi::Kubewarden;
    }
    if exports.iter().any(|n| n == "_start") {
        return Abi::WasiCommand;
    }
    Abi::Module
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn detect(wat: &str) -> Abi {
        Abi::detect(&wat::parse_str(wat).unwrap()).unwrap()
    }

    #[test]
    fn recognises_proxy_wasm_by_its_version_marker() {
        let abi = detect(r#"(module (func (export "proxy_abi_version_0_2_1")))"#);
        assert_eq!(
            abi,
            Abi::ProxyWasm {
                version: "0.2.1".into()
            }
        );
    }

    #[test]
    fn recognises_kubewarden_by_guest_call() {
        assert_eq!(
            detect(
                r#"(module (func (export "__guest_call") (param i32 i32) (result i32) i32.const 0))"#
            ),
            Abi::Kubewarden
        );
    }

    #[test]
    fn tells_a_wasi_command_from_a_wapc_module_that_also_exports_start() {
        assert_eq!(
            detect(r#"(module (func (export "_start")))"#),
            Abi::WasiCommand
        );
        assert_eq!(
            detect(
                r#"(module (func (export "_start")) (func (export "__guest_call") (param i32 i32) (result i32) i32.const 0))"#
            ),
            Abi::Kubewarden
        );
    }

    #[test]
    fn recognises_admission_component_version() {
        let abi = detect(
            r#"(component (instance $i) (export "palisade:admission/policy@9.1.0" (instance $i)))"#,
        );
        assert_eq!(
            abi,
            Abi::Admission {
                version: "9.1.0".into()
            }
        );
    }

    #[test]
    fn ignores_exports_of_nested_modules() {
        let abi = detect(r#"(component (core module (func (export "proxy_abi_version_0_2_1"))))"#);
        assert_eq!(abi, Abi::Component { exports: vec![] });
    }

    #[test]
    fn rejects_non_wasm_bytes() {
        assert!(matches!(
            Abi::detect(b"{\"json\": 1}"),
            Err(LoadError::NotWasm(_))
        ));
    }
}
