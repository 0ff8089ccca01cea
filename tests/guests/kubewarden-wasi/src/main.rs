//! A Kubewarden policy in WASI mode (`executionMode: wasi`), the way Kubewarden's WASI policies
//! (Go's policy-sdk-go `wasi` build, JavaScript through javy) work: a command that reads its
//! operation from argv (`validate` or `validate-settings`), its input from stdin, and writes
//! its answer, kubewarden-policy-sdk's `ValidationResponse` or `SettingsValidationResponse`, to
//! stdout. (kubewarden-policy-sdk cannot build one: it always links wapc-guest, whose
//! `__guest_call` imports `wapc`, which no WASI runtime links.) Host capabilities go through the import `host.call`, which returns 0 on success and
//! appends the answer (or the error) to stdin. Its settings choose what it does:
//!
//! - `denyPrivileged`: reject Pods with a privileged container (code 403 unless `code`);
//! - `addLabel`: add a label to objects that lack it (`mutated_object`);
//! - `raw`: call `host.call` with a binding, namespace, operation and payload, and answer with
//!   what came back (accepted, `ok: <answer>` as the message) or the error (rejected, 500);
//! - `stderr`: write a line to stderr and carry on;
//! - `hostile`: misbehave (`loop`, `memory`, `trap`, `garbage`, `exit`).
//!
//! Its metadata, `io.kubewarden.metadata`, is embedded as kwctl annotate would write it.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[expect(
    unsafe_code,
    reason = "a custom section is a static with a link section"
)]
#[unsafe(link_section = "io.kubewarden.metadata")]
#[used]
static METADATA: [u8; include_bytes!("../metadata.json").len()] =
    *include_bytes!("../metadata.json");

/// kubewarden-policy-sdk's `ValidationResponse`, field for field.
#[derive(Debug, Serialize)]
struct ValidationResponse {
    accepted: bool,
    message: Option<String>,
    code: Option<u16>,
    mutated_object: Option<Value>,
    audit_annotations: Option<std::collections::HashMap<String, String>>,
    warnings: Option<Vec<String>>,
}

/// kubewarden-policy-sdk's `SettingsValidationResponse`.
#[derive(Debug, Serialize)]
struct SettingsValidationResponse {
    valid: bool,
    message: Option<String>,
}

/// The probe's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    deny_privileged: bool,
    code: Option<u16>,
    add_label: Option<(String, String)>,
    raw: Option<RawCall>,
    stderr: Option<String>,
    hostile: Option<String>,
}

/// Any host call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    binding: String,
    namespace: String,
    operation: String,
    payload: Value,
}

const HOSTILE: [&str; 5] = ["loop", "memory", "trap", "garbage", "exit"];

/// What `validate` reads on stdin.
#[derive(Debug, Deserialize)]
struct Input {
    request: Value,
    settings: Settings,
}

fn main() {
    let operation = std::env::args().nth(1).unwrap_or_default();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        fail(&format!("reading stdin: {e}"));
    }
    let answer = match operation.as_str() {
        "validate" => validate(&input),
        "validate-settings" => serde_json::to_vec(&check_settings(&input)),
        other => fail(&format!("unknown operation {other:?}")),
    };
    match answer {
        Ok(bytes) => {
            let mut stdout = std::io::stdout();
            if stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                fail("writing the answer");
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Says why on stderr and exits with 1, as a failing Go policy does.
fn fail(why: &str) -> ! {
    eprintln!("{why}");
    std::process::exit(1)
}

fn check_settings(input: &[u8]) -> SettingsValidationResponse {
    let invalid = |message: String| SettingsValidationResponse {
        valid: false,
        message: Some(message),
    };
    let settings: Settings = match serde_json::from_slice(input) {
        Ok(settings) => settings,
        Err(e) => return invalid(format!("cannot parse the settings: {e}")),
    };
    if let Some(code) = settings.code
        && !(400..=599).contains(&code)
    {
        return invalid(format!("code {code} is not an HTTP error code (400-599)"));
    }
    if let Some(hostile) = &settings.hostile
        && !HOSTILE.contains(&hostile.as_str())
    {
        return invalid(format!(
            "hostile {hostile:?} is not one of {}",
            HOSTILE.join(", ")
        ));
    }
    SettingsValidationResponse {
        valid: true,
        message: None,
    }
}

fn response(accepted: bool, message: Option<String>, code: Option<u16>) -> ValidationResponse {
    ValidationResponse {
        accepted,
        message,
        code,
        mutated_object: None,
        audit_annotations: None,
        warnings: None,
    }
}

fn validate(input: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let Input { request, settings } = serde_json::from_slice(input)?;
    if let Some(line) = &settings.stderr {
        eprintln!("{line}");
    }
    if let Some(hostile) = &settings.hostile {
        return misbehave(hostile);
    }
    if let Some(raw) = &settings.raw {
        let payload = serde_json::to_vec(&raw.payload)?;
        let answer = match host_call(&raw.binding, &raw.namespace, &raw.operation, &payload) {
            Ok(bytes) => response(
                true,
                Some(format!("ok: {}", String::from_utf8_lossy(&bytes))),
                None,
            ),
            Err(error) => response(false, Some(format!("host error: {error}")), Some(500)),
        };
        return serde_json::to_vec(&answer);
    }
    let object = request.get("object").cloned().unwrap_or(Value::Null);
    if settings.deny_privileged && request.pointer("/kind/kind") == Some(&json!("Pod")) {
        let privileged: Vec<&str> = object
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.pointer("/securityContext/privileged") == Some(&json!(true)))
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect();
        if !privileged.is_empty() {
            return serde_json::to_vec(&response(
                false,
                Some(format!(
                    "privileged containers are not allowed: {}",
                    privileged.join(", ")
                )),
                Some(settings.code.unwrap_or(403)),
            ));
        }
    }
    if let Some((key, value)) = &settings.add_label
        && object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .is_none()
    {
        let mut mutated = object;
        if let Some(metadata) = mutated.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(key.clone(), Value::String(value.clone()));
            }
        }
        return serde_json::to_vec(&ValidationResponse {
            mutated_object: Some(mutated),
            ..response(true, None, None)
        });
    }
    serde_json::to_vec(&response(true, None, None))
}

fn misbehave(how: &str) -> Result<Vec<u8>, serde_json::Error> {
    match how {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => std::process::abort(),
        "garbage" => Ok(b"this is not a ValidationResponse".to_vec()),
        _ => fail("the probe was told to exit with 1"),
    }
}

/// Calls `host.call`; the answer (or the error) is what the host appended to stdin.
fn host_call(
    binding: &str,
    namespace: &str,
    operation: &str,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let failed = raw_host_call(binding, namespace, operation, payload)?;
    let mut appended = Vec::new();
    std::io::stdin()
        .read_to_end(&mut appended)
        .map_err(|e| format!("reading the host's answer from stdin: {e}"))?;
    if failed {
        Err(String::from_utf8_lossy(&appended).into_owned())
    } else {
        Ok(appended)
    }
}

#[cfg(target_family = "wasm")]
mod host {
    #[expect(unsafe_code, reason = "the host's import")]
    #[link(wasm_import_module = "host")]
    unsafe extern "C" {
        pub(crate) fn call(
            bd_ptr: *const u8,
            bd_len: usize,
            ns_ptr: *const u8,
            ns_len: usize,
            op_ptr: *const u8,
            op_len: usize,
            ptr: *const u8,
            len: usize,
        ) -> u32;
    }
}

/// Whether the host call failed (`host.call` returns 0 on success, 1 on failure).
#[cfg(target_family = "wasm")]
fn raw_host_call(
    binding: &str,
    namespace: &str,
    operation: &str,
    payload: &[u8],
) -> Result<bool, String> {
    #[expect(unsafe_code, reason = "calling the host's import with live buffers")]
    // SAFETY: every pointer and length is of a live buffer for the duration of the call.
    let code = unsafe {
        host::call(
            binding.as_ptr(),
            binding.len(),
            namespace.as_ptr(),
            namespace.len(),
            operation.as_ptr(),
            operation.len(),
            payload.as_ptr(),
            payload.len(),
        )
    };
    match code {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("host.call returned {other}")),
    }
}

/// Natively there is no host to call.
#[cfg(not(target_family = "wasm"))]
fn raw_host_call(_: &str, _: &str, _: &str, _: &[u8]) -> Result<bool, String> {
    Err("host.call exists only in a wasm host".to_owned())
}
