//! The waPC guest protocol (wapc-guest 1.2.0 `protocol.rs`; wapc-rs wasmtime-provider
//! `callbacks.rs`): the nine `wapc` imports, and one call of `__guest_call` per operation. The
//! host never allocates in the guest: it tells the guest the lengths of the operation name and
//! payload, the guest allocates both and asks for them with `__guest_request`, then answers
//! with `__guest_response` or `__guest_error`. Host calls go the other way: the guest passes
//! binding, namespace, operation and payload to `__host_call`, which returns 1 with an answer
//! or 0 with an error the guest then reads with `__host_response` / `__host_error`.
//!
//! Protocol breaches (a buffer outside the guest's memory, no exported `memory`) end the call
//! with [`Breach`], which the classifier reports as an invalid answer.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Caller, Extern, Linker, Memory};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::host_call;
use crate::capabilities::Scope;
use crate::limits::MemoryCap;

/// The import module of every waPC function.
const MODULE: &str = "wapc";

/// Per-instance state: WASI, limits, the operation in flight and the last host call's answer.
pub(crate) struct State {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) cap: MemoryCap,
    pub(crate) stderr: MemoryOutputPipe,
    /// The id the host knows the policy by (logs).
    pub(crate) policy: Arc<str>,
    /// What the policy may use; `None` while loading (protocol version, settings checks).
    pub(crate) scope: Option<Arc<Scope>>,
    /// When the call in progress must stop.
    pub(crate) deadline: Instant,
    /// The operation in flight and its payload, for `__guest_request`.
    pub(crate) operation: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    /// What the guest answered (`__guest_response`) or why it failed (`__guest_error`).
    pub(crate) response: Option<Vec<u8>>,
    pub(crate) error: Option<String>,
    /// The last host call's answer or error.
    host_response: Option<Vec<u8>>,
    host_error: Option<Vec<u8>>,
}

impl State {
    pub(crate) fn new(
        wasi: WasiP1Ctx,
        cap: MemoryCap,
        stderr: MemoryOutputPipe,
        policy: Arc<str>,
        scope: Option<Arc<Scope>>,
    ) -> Self {
        Self {
            wasi,
            cap,
            stderr,
            policy,
            scope,
            deadline: Instant::now(),
            operation: Vec::new(),
            payload: Vec::new(),
            response: None,
            error: None,
            host_response: None,
            host_error: None,
        }
    }

    /// Sets up one guest call of `operation` with `payload`.
    pub(crate) fn begin(&mut self, operation: &str, payload: Vec<u8>) {
        self.operation = operation.as_bytes().to_vec();
        self.payload = payload;
        self.response = None;
        self.error = None;
    }
}

/// The guest broke the waPC protocol.
#[derive(Debug, thiserror::Error)]
#[error("waPC protocol: {0}")]
pub(crate) struct Breach(pub(crate) String);

fn memory<T>(caller: &mut Caller<'_, T>) -> wasmtime::Result<Memory> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| {
            wasmtime::Error::new(Breach(
                "the module does not export its linear memory as \"memory\"".to_owned(),
            ))
        })
}

/// A wasm32 pointer or length (an `i32` the guest means as unsigned).
fn unsigned(value: i32) -> usize {
    usize::try_from(value.cast_unsigned()).unwrap_or(usize::MAX)
}

/// `len` bytes of the guest's memory at `ptr`, or a [`Breach`] naming `what` they were.
fn read<T>(
    caller: &mut Caller<'_, T>,
    ptr: i32,
    len: i32,
    what: &str,
) -> wasmtime::Result<Vec<u8>> {
    let memory = memory(caller)?;
    let (start, len) = (unsigned(ptr), unsigned(len));
    start
        .checked_add(len)
        .and_then(|end| memory.data(&caller).get(start..end))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            wasmtime::Error::new(Breach(format!(
                "the guest passed {what} of {len} bytes at {start}, outside its memory"
            )))
        })
}

fn write<T>(
    caller: &mut Caller<'_, T>,
    ptr: i32,
    bytes: &[u8],
    what: &str,
) -> wasmtime::Result<()> {
    let memory = memory(caller)?;
    memory
        .write(&mut *caller, unsigned(ptr), bytes)
        .map_err(|_| {
            wasmtime::Error::new(Breach(format!(
                "the guest asked for {what} ({} bytes) at {}, outside its memory",
                bytes.len(),
                unsigned(ptr)
            )))
        })
}

/// Bytes the guest sent as text (invalid UTF-8 replaced).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn length(bytes: Option<&Vec<u8>>) -> i32 {
    bytes.map_or(0, |b| i32::try_from(b.len()).unwrap_or(i32::MAX))
}

/// The eight `i32`s of a host call (waPC's `__host_call`, WASI mode's `host.call`): pointer
/// and length of the binding, the namespace, the operation and the payload.
pub(super) type HostCallArgs = (i32, i32, i32, i32, i32, i32, i32, i32);

/// What the host needs of a guest's state to answer its host calls.
pub(super) trait Calls {
    /// The id the host knows the policy by (logs).
    fn policy(&self) -> &str;
    /// What the policy may use; `None` while loading.
    fn scope(&self) -> Option<&Arc<Scope>>;
    /// When the call in progress must stop.
    fn deadline(&self) -> Instant;
}

impl Calls for State {
    fn policy(&self) -> &str {
        &self.policy
    }

    fn scope(&self) -> Option<&Arc<Scope>> {
        self.scope.as_ref()
    }

    fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Reads a host call from the guest's memory and answers it from the policy's scope.
pub(super) async fn host_call<T: Calls>(
    caller: &mut Caller<'_, T>,
    (bd_ptr, bd_len, ns_ptr, ns_len, op_ptr, op_len, ptr, len): HostCallArgs,
) -> wasmtime::Result<host_call::Answer> {
    let binding = text(read(caller, bd_ptr, bd_len, "the binding")?);
    let namespace = text(read(caller, ns_ptr, ns_len, "the namespace")?);
    let operation = text(read(caller, op_ptr, op_len, "the operation")?);
    let payload = read(caller, ptr, len, "the payload")?;
    let state = caller.data();
    let call = host_call::Call {
        binding: &binding,
        namespace: &namespace,
        operation: &operation,
        payload: &payload,
    };
    host_call::answer(state.policy(), state.scope(), state.deadline(), call).await
}

/// Adds the nine `wapc` imports.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "__guest_request",
        |mut caller: Caller<'_, State>, op_ptr: i32, ptr: i32| -> wasmtime::Result<()> {
            let operation = std::mem::take(&mut caller.data_mut().operation);
            let payload = std::mem::take(&mut caller.data_mut().payload);
            write(&mut caller, op_ptr, &operation, "the operation name")?;
            write(&mut caller, ptr, &payload, "the payload")?;
            caller.data_mut().operation = operation;
            caller.data_mut().payload = payload;
            Ok(())
        },
    )?;
    linker.func_wrap(
        MODULE,
        "__guest_response",
        |mut caller: Caller<'_, State>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let bytes = read(&mut caller, ptr, len, "its response")?;
            caller.data_mut().response = Some(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        MODULE,
        "__guest_error",
        |mut caller: Caller<'_, State>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let bytes = read(&mut caller, ptr, len, "its error")?;
            caller.data_mut().error = Some(text(bytes));
            Ok(())
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "__host_call",
        |mut caller: Caller<'_, State>, args: HostCallArgs| {
            Box::new(async move {
                let state = caller.data_mut();
                state.host_response = None;
                state.host_error = None;
                let answer = host_call(&mut caller, args).await?;
                let state = caller.data_mut();
                Ok(match answer {
                    Ok(bytes) => {
                        state.host_response = Some(bytes);
                        1
                    }
                    Err(message) => {
                        state.host_error = Some(message.into_bytes());
                        0
                    }
                })
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "__host_response_len",
        |caller: Caller<'_, State>| -> i32 { length(caller.data().host_response.as_ref()) },
    )?;
    linker.func_wrap(
        MODULE,
        "__host_response",
        |mut caller: Caller<'_, State>, ptr: i32| -> wasmtime::Result<()> {
            let bytes = caller.data().host_response.clone().unwrap_or_default();
            write(&mut caller, ptr, &bytes, "the host's response")
        },
    )?;
    linker.func_wrap(
        MODULE,
        "__host_error_len",
        |caller: Caller<'_, State>| -> i32 { length(caller.data().host_error.as_ref()) },
    )?;
    linker.func_wrap(
        MODULE,
        "__host_error",
        |mut caller: Caller<'_, State>, ptr: i32| -> wasmtime::Result<()> {
            let bytes = caller.data().host_error.clone().unwrap_or_default();
            write(&mut caller, ptr, &bytes, "the host's error")
        },
    )?;
    linker.func_wrap(
        MODULE,
        "__console_log",
        |mut caller: Caller<'_, State>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let line = text(read(&mut caller, ptr, len, "a log line")?);
            let policy = &*caller.data().policy;
            tracing::info!(policy, "{line}");
            Ok(())
        },
    )?;
    Ok(())
}
