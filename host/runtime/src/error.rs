//! The host's error types: one for loading a policy, one for evaluating it.

use palisade_sdk::SettingsError;
use std::time::Duration;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (the file starts with {0:02x?}, not \\0asm)")]
    NotWasm(Vec<u8>),
    /// The module is WebAssembly but of another ABI than the one asked for.
    #[error("this is a {found} module, not a {expected}")]
    WrongAbi {
        /// The ABI the loader expected.
        expected: crate::Abi,
        /// The ABI the module has.
        found: crate::Abi,
    },
    /// The module speaks a version of the ABI this host does not support.
    #[error("the policy targets {found}, this host supports {supported}")]
    AbiVersion {
        /// The interface version the module exports.
        found: String,
        /// What this host supports.
        supported: String,
    },
    /// The module lacks an export the ABI requires.
    #[error("the module does not export {0}")]
    MissingExport(String),
    /// wasmtime rejected the module (invalid, or a feature this engine does not enable).
    #[error("compiling the module failed")]
    Compile(#[source] wasmtime::Error),
    /// The module's imports cannot be satisfied by this host.
    #[error("linking the module failed")]
    Link(#[source] wasmtime::Error),
    /// Reading or writing the compiled-module cache failed.
    #[error("compiled-module cache at {path}")]
    Cache {
        /// The cache entry involved.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The metadata embedded in the module cannot be used.
    #[error("the policy's metadata")]
    Metadata(#[source] crate::kubewarden::MetadataError),
    /// The policy's settings were rejected by the policy (`validate-settings`).
    #[error("invalid settings: {0}")]
    Settings(SettingsError),
    /// Calling the policy while loading it (metadata, settings) failed.
    #[error("calling the policy while loading it failed")]
    Eval(#[source] EvalError),
}

/// Why an evaluation produced no verdict.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The policy ran past its deadline and was interrupted.
    #[error("the policy ran past its deadline of {0:?}")]
    Timeout(Duration),
    /// The policy tried to grow its memory past the cap.
    #[error("the policy exceeded its memory limit of {limit} bytes (asked for {requested})")]
    MemoryLimit {
        /// The configured cap in bytes.
        limit: usize,
        /// The size the policy asked to grow to.
        requested: usize,
    },
    /// The policy trapped (panic, unreachable, out-of-bounds access, stack overflow).
    #[error("the policy trapped: {message}")]
    Trap {
        /// What trapped, plus what the guest wrote to stderr (a Rust panic message).
        message: String,
        /// The guest's wasm backtrace, for logs.
        backtrace: String,
    },
    /// The policy rejected its settings at evaluation time.
    #[error("invalid settings: {0}")]
    Settings(SettingsError),
    /// The policy said it could not decide.
    #[error("the policy could not decide: {0}")]
    Policy(palisade_sdk::PolicyError),
    /// The policy returned something that is not a valid answer.
    #[error("the policy returned an invalid answer: {0}")]
    BadOutput(String),
    /// The host could not set up the evaluation (instantiation failed).
    #[error("instantiating the policy failed")]
    Instantiate(#[source] wasmtime::Error),
    /// The guest called something this host does not support.
    #[error("the policy called {0}, which this host does not support")]
    Unsupported(String),
}

impl EvalError {
    /// Names what stopped a guest call: the memory cap when `refused` says it refused a growth
    /// ([`MemoryCap::refused`](crate::MemoryCap::refused)), the deadline on an epoch interrupt,
    /// otherwise a trap, whose message gets `guest_output` (what the guest said before dying, a
    /// Rust panic message) and whose backtrace is kept apart for logs. An error that is none of
    /// these (instantiation failed) is [`EvalError::Instantiate`].
    #[must_use]
    pub fn classify(
        error: wasmtime::Error,
        refused: Option<usize>,
        limits: crate::Limits,
        guest_output: &str,
    ) -> Self {
        if let Some(requested) = refused {
            return Self::MemoryLimit {
                limit: limits.memory,
                requested,
            };
        }
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return Self::Timeout(limits.timeout);
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Self::Timeout(limits.timeout),
            Some(_) => {
                // wasmtime adds the backtrace as the outermost context; keep it out of the message.
                let backtrace = error
                    .downcast_ref::<wasmtime::WasmBacktrace>()
                    .map(ToString::to_string);
                let mut message = error
                    .chain()
                    .skip(usize::from(backtrace.is_some()))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": ");
                if !guest_output.is_empty() {
                    message.push_str("; guest stderr: ");
                    message.push_str(guest_output);
                }
                Self::Trap {
                    message,
                    backtrace: backtrace.unwrap_or_default(),
                }
            }
            None => Self::Instantiate(error),
        }
    }

    /// A short, stable, kebab-case name of the error kind (for metrics and logs).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::Trap { .. } => "trap",
            Self::Settings(_) => "settings",
            Self::Policy(_) => "policy",
            Self::BadOutput(_) => "bad-output",
            Self::Instantiate(_) => "instantiate",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// A host call (a capability) outlived the evaluation's deadline: the host stopped waiting,
/// and the call ends as a timeout, as if an epoch interrupt had fired.
#[derive(Debug, thiserror::Error)]
#[error("the deadline passed while the policy waited on the host")]
pub(crate) struct DeadlineExceeded;

/// An error and its causes on one line, joined by `": "`, as reports and logs show them.
#[must_use]
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
