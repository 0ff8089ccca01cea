//! What a module must be before we package it: a core wasm module exporting a proxy-wasm ABI
//! version function (proxy-wasm spec, `abi-versions/v0.2.1`: `proxy_abi_version_0_2_1`).

use sha2::{Digest, Sha256};
use wasmparser::{Encoding, ExternalKind, Parser, Payload};

/// The wasm binary magic, `\0asm` (WebAssembly core spec, 5.5.16 "Modules").
pub(crate) const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// ABI version exports a host recognises, newest first (proxy-wasm spec, "ABI versions").
const ABI_EXPORTS: [&str; 2] = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];

/// Why bytes are not a proxy-wasm module.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The bytes do not start with the wasm magic.
    #[error("not a wasm module (no \\0asm magic)")]
    NotWasm,
    /// A component, not a core module: proxy-wasm hosts load core modules only.
    #[error("a wasm component, not a core module")]
    Component,
    /// The binary does not parse.
    #[error("malformed wasm module")]
    Parse(#[source] wasmparser::BinaryReaderError),
    /// No `proxy_abi_version_*` function is exported.
    #[error("no proxy-wasm ABI version export (expected one of {})", ABI_EXPORTS.join(", "))]
    NoAbiExport,
}

/// A checked proxy-wasm module: its ABI version export, size and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyWasmModule {
    /// The ABI version function it exports, e.g. `proxy_abi_version_0_2_1`.
    pub abi_export: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes (what a WasmPlugin's `sha256` is for an http(s) url).
    pub sha256: String,
}

impl ProxyWasmModule {
    /// Checks that `bytes` are a core wasm module exporting a proxy-wasm ABI version function.
    ///
    /// # Errors
    /// [`ModuleError`] naming the first check that failed.
    pub fn parse(bytes: &[u8]) -> Result<Self, ModuleError> {
        if !bytes.starts_with(WASM_MAGIC) {
            return Err(ModuleError::NotWasm);
        }
        let mut abi_export = None;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(ModuleError::Parse)? {
                Payload::Version {
                    encoding: Encoding::Component,
                    ..
                } => return Err(ModuleError::Component),
                Payload::ExportSection(exports) => {
                    for export in exports {
                        let export = export.map_err(ModuleError::Parse)?;
                        if export.kind != ExternalKind::Func {
                            continue;
                        }
                        if let Some(rank) = ABI_EXPORTS.iter().position(|n| *n == export.name) {
                            // Keep the newest version (lowest rank) when a module exports both.
                            if abi_export.is_none_or(|current| rank < current) {
                                abi_export = Some(rank);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let abi_export = abi_export
            .and_then(|rank| ABI_EXPORTS.get(rank).copied())
            .ok_or(ModuleError::NoAbiExport)?;
        Ok(Self {
            abi_export,
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        })
    }

    /// The ABI version in the form the Wasm Artifact Image config uses, e.g. `v0.2.1`.
    #[must_use]
    pub fn abi_version(&self) -> String {
        let digits = self.abi_export.trim_start_matches("proxy_abi_version_");
        format!("v{}", digits.replace('_', "."))
    }
}

/// Lowercase hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap_or_else(|e| panic!("wat: {e}"))
    }

    #[test]
    fn accepts_a_module_exporting_the_0_2_1_abi() {
        let bytes = module(r#"(module (func (export "proxy_abi_version_0_2_1")))"#);
        let parsed = ProxyWasmModule::parse(&bytes).expect("proxy-wasm module");
        assert_eq!(parsed.abi_export, "proxy_abi_version_0_2_1");
        assert_eq!(parsed.abi_version(), "v0.2.1");
        assert_eq!(parsed.size, bytes.len() as u64);
        assert_eq!(parsed.sha256, sha256_hex(&bytes));
    }

    #[test]
    fn prefers_the_newest_abi_when_both_are_exported() {
        let bytes = module(
            r#"(module (func (export "proxy_abi_version_0_2_0")) (func (export "proxy_abi_version_0_2_1")))"#,
        );
        let parsed = ProxyWasmModule::parse(&bytes).expect("proxy-wasm module");
        assert_eq!(parsed.abi_version(), "v0.2.1");
    }

    #[test]
    fn refuses_bytes_without_the_wasm_magic() {
        let err = ProxyWasmModule::parse(b"#!/bin/sh\n").expect_err("not wasm");
        assert!(matches!(err, ModuleError::NotWasm), "{err:?}");
    }

    #[test]
    fn refuses_a_module_without_an_abi_export() {
        let bytes = module(r#"(module (func (export "_start")))"#);
        let err = ProxyWasmModule::parse(&bytes).expect_err("no abi export");
        assert!(matches!(err, ModuleError::NoAbiExport), "{err:?}");
    }

    #[test]
    fn refuses_an_abi_export_that_is_not_a_function() {
        let bytes =
            module(r#"(module (global (export "proxy_abi_version_0_2_1") i32 (i32.const 0)))"#);
        let err = ProxyWasmModule::parse(&bytes).expect_err("global, not function");
        assert!(matches!(err, ModuleError::NoAbiExport), "{err:?}");
    }

    #[test]
    fn refuses_a_truncated_module() {
        let mut bytes = module(r#"(module (func (export "proxy_abi_version_0_2_1")))"#);
        bytes.truncate(bytes.len() - 3);
        let err = ProxyWasmModule::parse(&bytes).expect_err("truncated");
        assert!(matches!(err, ModuleError::Parse(_)), "{err:?}");
    }
}
