//! A hostile admission policy for the host's containment tests: its settings pick how it
//! misbehaves when evaluating. Never deploy it.

use palisade_sdk::wire::{AdmissionRequest, PatchOperation, PolicyMetadata, Verdict};
use palisade_sdk::{AdmissionPolicy, Host, PolicyError, PolicySettings, SettingsError};
use std::sync::atomic::{AtomicU64, Ordering};

/// How the policy misbehaves.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Behaves: allows everything.
    #[default]
    Allow,
    /// Spins forever.
    Loop,
    /// Allocates until memory runs out.
    GrowMemory,
    /// Panics (a trap under `panic = "abort"`).
    Trap,
    /// Recurses until the stack overflows.
    StackOverflow,
    /// Answers a verdict with an empty reason.
    EmptyReason,
    /// Says it cannot decide.
    Error,
    /// Panics when the request's name is `trap`, allows otherwise.
    TrapOnName,
    /// Denies everything with reason `hostile-deny`.
    Deny,
    /// Allows with a JSONPatch that adds the label `hostile: "true"`.
    Patch,
    /// Keeps a counter across calls in a global and reports it in the message: shows what an
    /// instance carries from one request to the next.
    Count,
    /// Allows, with one warning per capability saying what it answered: the clock (seconds),
    /// WASI's clock (seconds), the counter `calls` in the shared state (incremented), and
    /// `key` of the data table `table`.
    Capabilities,
    /// Denies with a 4 MiB message, 100,000 warnings and an annotation of 1 MiB: an answer
    /// that must not reach the HTTP response or the log whole.
    Flood,
    /// Denies with HTTP code 200.
    SuccessCodeDenial,
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Settings: which misbehaviour.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The misbehaviour on every evaluation.
    #[serde(default)]
    pub behaviour: Behaviour,
}

impl PolicySettings for Settings {
    fn validate(&self) -> Result<(), SettingsError> {
        Ok(())
    }
}

/// The hostile policy.
pub struct Hostile;

impl AdmissionPolicy for Hostile {
    type Settings = Settings;
    type Prepared = Settings;

    fn metadata() -> PolicyMetadata {
        PolicyMetadata {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            rules: Vec::new(),
            mutating: false,
        }
    }

    fn prepare(settings: Settings) -> Result<Settings, SettingsError> {
        Ok(settings)
    }

    fn evaluate(
        request: &AdmissionRequest,
        settings: &Settings,
        host: &dyn Host,
    ) -> Result<Verdict, PolicyError> {
        match settings.behaviour {
            Behaviour::Loop => spin(),
            Behaviour::GrowMemory => hoard(),
            #[expect(clippy::panic, reason = "trapping is this guest's purpose")]
            Behaviour::Trap => panic!("hostile guest panics on purpose"),
            Behaviour::StackOverflow => Ok(Verdict::deny("deep", recurse(1).to_string())),
            Behaviour::EmptyReason => Ok(Verdict::deny("", "no reason given")),
            Behaviour::Error => Err(PolicyError::Internal("hostile guest cannot decide".into())),
            #[expect(clippy::panic, reason = "trapping is this guest's purpose")]
            Behaviour::TrapOnName if request.name.as_deref() == Some("trap") => {
                panic!("asked to trap")
            }
            Behaviour::Allow | Behaviour::TrapOnName => Ok(Verdict::allow()),
            Behaviour::Deny => Ok(Verdict::deny("hostile-deny", "denied on purpose")),
            Behaviour::Patch => Ok(Verdict::allow().with_patch(vec![PatchOperation::Add {
                path: "/metadata/labels".into(),
                value: serde_json::json!({"hostile": "true"}),
            }])),
            Behaviour::Count => {
                let calls = CALLS.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                Ok(Verdict::allow().with_warning(format!("call {calls}")))
            }
            Behaviour::Flood => {
                let mut verdict = Verdict::deny("flood", "m".repeat(4 << 20));
                verdict.warnings = (0..100_000).map(|i| format!("warning {i}")).collect();
                verdict
                    .audit_annotations
                    .insert("flood".into(), "a".repeat(1 << 20));
                Ok(verdict)
            }
            Behaviour::SuccessCodeDenial => Ok(Verdict::deny("ok-denial", "denied").with_code(200)),
            Behaviour::Capabilities => Ok(Verdict::allow()
                .with_warning(format!("clock: {:?}", host.now().map(|t| t.as_secs())))
                .with_warning(format!(
                    "wasi clock: {:?}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|t| t.as_secs())
                ))
                .with_warning(format!(
                    "state: {:?}",
                    palisade_sdk::host::counter_add(host, "calls", 1)
                ))
                .with_warning(format!("data: {:?}", host.data("table", "key")))
                .with_warning(format!(
                    "rate-limit: {:?}",
                    host.take(
                        "bucket",
                        palisade_sdk::host::rate::Shape {
                            capacity: 2,
                            refill_tokens: 1,
                            refill_period_ms: 60_000,
                        },
                        1,
                    )
                    .map(|t| (
                        t.allowed,
                        t.remaining,
                        t.retry_after.as_millis()
                    ))
                ))),
        }
    }
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hoard() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used, not just reserved.
        kept.push(std::hint::black_box(vec![0xA5; 1 << 20]));
    }
}

#[expect(unconditional_recursion, reason = "overflowing the stack is the point")]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    frame
        .iter()
        .copied()
        .fold(0u64, u64::wrapping_add)
        .wrapping_add(recurse(depth.wrapping_add(1)))
}

#[cfg(all(target_arch = "wasm32", feature = "admission-component"))]
palisade_sdk::export_admission!(Hostile);
