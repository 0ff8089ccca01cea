//! Kubewarden's WASI mode (`executionMode: wasi`; policy-evaluator `runtimes/wasi_cli`): the
//! policy is a WASI preview 1 command, run once per operation in a fresh instance. `validate`
//! runs `_start` with argv `["policy.wasm", "validate"]` and `{"request", "settings"}` on stdin;
//! `validate-settings` with the settings object on stdin. The answer is what the command writes
//! to stdout; what it writes to stderr is logged. Returning from `_start` or `proc_exit(0)` is
//! success; another exit code is the policy's failure, explained by its stderr.
//!
//! Host capabilities go through the import `host.call` (and `kubewarden:javy/host.call`, which
//! Kubewarden's JavaScript SDK imports) with waPC's eight arguments, but it returns **0 on
//! success and 1 on failure**, the inverse of waPC, and the answer or error is appended to
//! stdin: the guest has read its input to the end, and reads on to the end again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use wasmtime::{Caller, InstancePre, Linker, Store};
use wasmtime_wasi::cli::{IsTerminal, StdinStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

use super::wapc::{Calls, HostCallArgs, host_call};
use crate::capabilities::Scope;
use crate::component::{guard, guest_output, sandbox};
use crate::limits::MemoryCap;
use crate::{EvalError, Limits};

/// The program name policy-evaluator passes as `argv[0]`.
const PROGRAM: &str = "policy.wasm";

/// The most a command may write to stdout: its answer is bounded like its memory, within reason.
const STDOUT_CAPACITY: usize = 64 << 20;

/// The import modules of `call`: Kubewarden's and its JavaScript SDK's (javy).
const HOST_MODULES: [&str; 2] = ["host", "kubewarden:javy/host"];

/// Per-run state: WASI with the pipes, limits, and what the policy may use.
pub(crate) struct State {
    wasi: WasiP1Ctx,
    cap: MemoryCap,
    stderr: MemoryOutputPipe,
    stdin: Stdin,
    policy: Arc<str>,
    scope: Option<Arc<Scope>>,
    deadline: Instant,
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

/// Links WASI preview 1 and `host.call`.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, |s: &mut State| &mut s.wasi)?;
    for module in HOST_MODULES {
        linker.func_wrap_async(
            module,
            "call",
            |mut caller: Caller<'_, State>, args: HostCallArgs| {
                Box::new(async move {
                    let answer = host_call(&mut caller, args).await?;
                    let stdin = &caller.data().stdin;
                    Ok(match answer {
                        Ok(bytes) => {
                            stdin.append(&bytes);
                            0
                        }
                        Err(message) => {
                            stdin.append(message.as_bytes());
                            1
                        }
                    })
                })
            },
        )?;
    }
    Ok(())
}

/// How a run ended, short of a trap.
pub(crate) enum Ended {
    /// Exit code 0, or `_start` returned: what it wrote to stdout.
    Success(Vec<u8>),
    /// Another exit code; the policy failed.
    Failure { code: i32, stderr: String },
}

/// Runs the command once with `operation` as its argument and `input` on stdin, in a fresh
/// instance under `limits`; capability calls answer from `scope` (none while loading).
pub(crate) async fn run(
    engine: &wasmtime::Engine,
    pre: &InstancePre<State>,
    operation: &str,
    input: Vec<u8>,
    limits: Limits,
    policy: Arc<str>,
    scope: Option<Arc<Scope>>,
) -> Result<Ended, EvalError> {
    let (mut wasi, stderr) = sandbox(scope.as_ref());
    let stdin = Stdin::new(input);
    let stdout = MemoryOutputPipe::new(STDOUT_CAPACITY.min(limits.memory.max(1 << 20)));
    wasi.args(&[PROGRAM, operation])
        .stdin(stdin.clone())
        .stdout(stdout.clone());
    let state = State {
        wasi: wasi.build_p1(),
        cap: MemoryCap::new(limits.memory),
        stderr,
        stdin,
        policy,
        scope,
        deadline: Instant::now() + limits.timeout,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.cap);
    guard(&mut store, |s: &State| s.deadline);
    store.set_epoch_deadline(1);
    let result = async {
        let instance = pre.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call_async(&mut store, ()).await
    }
    .await;
    let log = guest_output(&store.data().stderr);
    let exit = match result {
        Ok(()) => 0,
        Err(error) => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(wasmtime_wasi::I32Exit(code)) => *code,
            None => {
                return Err(EvalError::classify(
                    error,
                    store.data().cap.refused,
                    limits,
                    &log,
                ));
            }
        },
    };
    if !log.is_empty() {
        let policy = &*store.data().policy;
        tracing::warn!(policy, operation, "stderr: {log}");
    }
    Ok(if exit == 0 {
        Ended::Success(stdout.contents().to_vec())
    } else {
        Ended::Failure {
            code: exit,
            stderr: log,
        }
    })
}

/// Stdin that the host appends to: the input, then each host call's answer.
#[derive(Clone)]
struct Stdin(Arc<Mutex<VecDeque<u8>>>);

impl Stdin {
    fn new(input: Vec<u8>) -> Self {
        Self(Arc::new(Mutex::new(input.into())))
    }

    fn append(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(bytes);
    }

    /// Takes up to `size` bytes; none once everything appended so far has been read.
    fn take(&self, size: usize) -> Vec<u8> {
        let mut buffer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let size = size.min(buffer.len());
        buffer.drain(..size).collect()
    }
}

impl IsTerminal for Stdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for Stdin {
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
}

impl InputStream for Stdin {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let bytes = self.take(size);
        if bytes.is_empty() && size > 0 {
            // The end, for now: a host call may append more, and the guest reads on.
            return Err(StreamError::Closed);
        }
        Ok(Bytes::from(bytes))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Stdin {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncRead for Stdin {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        buf.put_slice(&self.take(buf.remaining()));
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn stdin_ends_then_goes_on_with_what_is_appended() {
        let mut stdin = Stdin::new(b"input".to_vec());
        assert_eq!(&InputStream::read(&mut stdin, 3).unwrap()[..], b"inp");
        assert_eq!(&InputStream::read(&mut stdin, 10).unwrap()[..], b"ut");
        assert!(matches!(
            InputStream::read(&mut stdin, 10),
            Err(StreamError::Closed)
        ));
        stdin.clone().append(b"answer");
        assert_eq!(&InputStream::read(&mut stdin, 10).unwrap()[..], b"answer");
    }
}
