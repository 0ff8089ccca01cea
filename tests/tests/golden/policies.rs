//! Every policy's fixtures through its compiled wasm in the host, for each of its homes.
//! Admission homes: the verdicts must equal the expected files the native runs produce, the
//! host giving what the fixture says (time, data tables, empty state, every capability granted).
//! Proxy filters: each fixture becomes a scenario in the proxy-wasm host (the request `repeat`
//! times, on one worker), and what the upstream and the client see of the last request must be
//! what the expected verdict says (request-id values drawn from the nonce excepted: in the proxy
//! the adapter draws its own). Plus completeness, for every policy whatever its homes: allow
//! and deny cases and a built artefact for each home.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use e2e::{ADMISSION_COMPONENT, KUBEWARDEN, PROXY_WASM, PolicyCrate, policy_crates};
use libtest_mimic::{Failed, Trial};
use palisade_proxy::{Filter, RunOptions, Scenario, run};
use palisade_runtime::admission::{Options, Prepared};
use palisade_runtime::capabilities::{
    Capabilities, Clock, DataTables, Grants, MemoryStore, StateLimits,
};
use palisade_runtime::{Engine, EngineConfig, EvalError, LoadError};
use palisade_sdk::testing::{
    Expand, FIXTURE_EPOCH, Fixture, Outcome, check, fixture_paths, load_expanded_fixtures,
};
use palisade_sdk::wire::{
    AdmissionRequest, HeaderChange, HttpRequest, HttpVerdict, PatchOperation, Verdict,
};

/// Every policy's trials: its completeness check and its fixtures per home; a discovery error
/// is one failing trial naming it.
pub(crate) fn trials() -> Vec<Trial> {
    match discover() {
        Ok(trials) => trials,
        Err(e) => {
            let message = format!("{e:#}");
            vec![Trial::test("policies::discover", move || {
                Err(message.into())
            })]
        }
    }
}

fn discover() -> anyhow::Result<Vec<Trial>> {
    let engine = Arc::new(Engine::new(EngineConfig::default())?);
    let mut trials = Vec::new();
    for policy in policy_crates()? {
        if policy.is_policy() {
            trials.push(completeness(&policy));
        }
        for (home, _) in &policy.homes {
            if !policy.fixtures(home).is_dir() {
                continue;
            }
            match home.as_str() {
                PROXY_WASM => trials.extend(proxy_trials(&engine, &policy)?),
                ADMISSION_COMPONENT | KUBEWARDEN => {
                    trials.extend(admission_trials(&engine, &policy, home)?);
                }
                other => anyhow::bail!("{}: no fixture runner for the home {other}", policy.name),
            }
        }
    }
    Ok(trials)
}

/// What a policy's own fixture runner writes into its fixtures at test time (keys, tokens).
fn expander(policy: &str) -> Expand {
    match policy {
        "zero-trust" => zero_trust::testing::expand,
        _ => Ok,
    }
}

fn admission_trials(
    engine: &Engine,
    policy: &PolicyCrate,
    home: &str,
) -> anyhow::Result<Vec<Trial>> {
    let prepared = match policy.artefact(home) {
        Ok(bytes) => Prepared::new(engine, &bytes)
            .map(Arc::new)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
        Err(e) => Err(format!("{e:#}")),
    };
    let mut trials = Vec::new();
    let dir = policy.fixtures(home);
    for fixture in load_expanded_fixtures::<AdmissionRequest>(&dir, expander(&policy.name))? {
        let prepared = prepared.clone();
        let home = home.to_owned();
        trials.push(Trial::test(
            format!("{}::{home}::{}", policy.name, fixture.name),
            move || {
                let prepared = prepared.map_err(Failed::from)?;
                let mut outcome = evaluate(&prepared, &fixture);
                if home == KUBEWARDEN {
                    outcome = as_kubewarden_answers(&fixture, outcome)?;
                }
                check(&fixture, &outcome).map_err(|e| format!("{e:#}").into())
            },
        ));
    }
    Ok(trials)
}

/// What differs by construction through the Kubewarden home, and only that: a policy's own
/// error crosses waPC as its message (the host cannot tell an invalid request from another
/// failure), and a patch crosses as the patched object, which the host diffs back into a patch
/// as policy-server does: the same change, possibly in other operations. When the fixture's
/// expected patch makes the same object, the expected operations stand in for the diff's.
fn as_kubewarden_answers(fixture: &Fixture, outcome: Outcome) -> Result<Outcome, Failed> {
    Ok(match outcome {
        Outcome::Error(message) => Outcome::Error(
            message
                .strip_prefix("internal policy error: ")
                .map_or(message.clone(), str::to_owned),
        ),
        Outcome::Verdict(mut verdict) if verdict.patch.is_some() => {
            let expected = std::fs::read_to_string(fixture.expected_path())
                .map_err(|e| format!("{}: {e}", fixture.expected_path().display()))?;
            if let Ok(Outcome::Verdict(Verdict {
                patch: Some(expected),
                ..
            })) = serde_json::from_str::<Outcome>(&expected)
                && let Some(object) = &fixture.request.object
            {
                let object: serde_json::Value = serde_json::from_str(object.get())
                    .map_err(|e| format!("the fixture's object: {e}"))?;
                let apply = |patch: &[PatchOperation]| -> Result<serde_json::Value, Failed> {
                    let mut document = object.clone();
                    let patch: json_patch::Patch =
                        serde_json::from_value(serde_json::to_value(patch)?)?;
                    json_patch::patch(&mut document, &patch)?;
                    Ok(document)
                };
                let actual = verdict.patch.as_deref().unwrap_or_default();
                if apply(actual)? == apply(&expected)? {
                    verdict.patch = Some(expected);
                }
            }
            Outcome::Verdict(verdict)
        }
        other => other,
    })
}

/// The outcome as `palisade run` would see it, with the host the fixture describes: settings
/// rejected at configure time, then a verdict or the policy's own error (of the last of
/// `repeat` evaluations).
fn evaluate(prepared: &Arc<Prepared>, fixture: &Fixture) -> Outcome {
    let clock = Arc::new(SteppedClock(std::sync::Mutex::new(fixture.host.now)));
    let capabilities = Capabilities::new(
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::new(MemoryStore::new(StateLimits::default())),
        DataTables::new(fixture.host.data.clone()),
    );
    let options = Options {
        capabilities: Some(Arc::new(capabilities)),
        grants: Grants::all(),
        ..Options::default()
    };
    match prepared.configure(&fixture.settings, options) {
        Err(LoadError::Settings(e)) => Outcome::SettingsError(e.to_string()),
        Err(e) => Outcome::Error(format!("host error: {e}")),
        Ok(policy) => {
            let mut outcome = Outcome::Error("the fixture was not evaluated".into());
            for _ in 0..fixture.repeat {
                outcome = match policy.evaluate_blocking(&fixture.request).result {
                    Ok(verdict) => Outcome::Verdict(verdict),
                    Err(EvalError::Policy(e)) => Outcome::Error(e.to_string()),
                    Err(e) => Outcome::Error(format!("host error: {e}")),
                };
                clock.advance(Duration::from_millis(fixture.host.advance_ms));
            }
            outcome
        }
    }
}

/// The fixture's clock: it reads the fixture's time, moved by `advanceMs` after each
/// evaluation of a repeated request, as the native runner's test host does.
#[derive(Debug)]
struct SteppedClock(std::sync::Mutex<Duration>);

impl SteppedClock {
    fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.saturating_add(by);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Duration {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn proxy_trials(engine: &Engine, policy: &PolicyCrate) -> anyhow::Result<Vec<Trial>> {
    let filter = match policy.artefact(PROXY_WASM) {
        Ok(bytes) => Filter::new(engine, &bytes)
            .map(Arc::new)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
        Err(e) => Err(format!("{e:#}")),
    };
    let mut trials = Vec::new();
    let dir = policy.fixtures(PROXY_WASM);
    for fixture in load_expanded_fixtures::<HttpRequest>(&dir, expander(&policy.name))? {
        let filter = filter.clone();
        trials.push(Trial::test(
            format!("{}::{PROXY_WASM}::{}", policy.name, fixture.name),
            move || {
                let filter = filter.map_err(Failed::from)?;
                let expected = std::fs::read_to_string(fixture.expected_path())
                    .map_err(|e| format!("reading the expected outcome: {e}"))?;
                let expected: Outcome<HttpVerdict> =
                    serde_json::from_str(&expected).map_err(|e| e.to_string())?;
                proxy_agrees(&filter, &fixture, &expected).map_err(Failed::from)
            },
        ));
    }
    Ok(trials)
}

/// The fixture as a scenario on one worker: the clock moved to the fixture's time, then the
/// request `repeat` times.
fn scenario(fixture: &Fixture<HttpRequest>) -> Result<Scenario, String> {
    let r = &fixture.request;
    let c = &r.connection;
    let mut connection = serde_json::json!({"mtls": c.mtls});
    if let Some(source) = &c.source_address {
        connection["sourceAddress"] = source.clone().into();
    }
    match (&c.destination_address, c.destination_port) {
        (Some(address), _) => connection["destinationAddress"] = address.clone().into(),
        (None, Some(port)) => connection["destinationAddress"] = format!("10.0.0.1:{port}").into(),
        (None, None) => {}
    }
    if let Some(principal) = &c.peer_principal {
        connection["peerUriSans"] = serde_json::json!([principal]);
    }
    if let Some(sni) = &c.requested_server_name {
        connection["requestedServerName"] = sni.clone().into();
    }
    let settings: serde_json::Value = serde_json::from_str(&fixture.settings).unwrap_or_default();
    let mut steps = Vec::new();
    if let Some(later) = fixture.host.now.checked_sub(FIXTURE_EPOCH)
        && !later.is_zero()
    {
        steps.push(serde_json::json!({"advance": format!("{}ms", later.as_millis())}));
    }
    if !fixture.host.fetched.is_empty() {
        // The fetches made at configure time answer before the first request, as they do in a
        // proxy that has been up for a moment.
        steps.push(serde_json::json!({"advance": "1ms"}));
    }
    let mut request = serde_json::json!({"request": {
        "method": r.method, "path": r.path, "authority": r.authority, "scheme": r.scheme,
        "headers": r.headers,
    }});
    if !r.body.is_empty() {
        // In two chunks, so that a filter holding the body sees it grow as in Envoy.
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let mut half = text.len() / 2;
        while !text.is_char_boundary(half) {
            half += 1;
        }
        let (first, second) = text.split_at(half);
        request["request"]["body"] = serde_json::json!([first, second]);
    }
    if !r.route.is_empty() {
        request["request"]["route"] = serde_json::json!({
            "name": r.route.name.clone().unwrap_or_default(),
            "cluster": r.route.cluster,
        });
    }
    for i in 0..fixture.repeat {
        if i > 0 && fixture.host.advance_ms > 0 {
            steps.push(serde_json::json!({"advance": format!("{}ms", fixture.host.advance_ms)}));
        }
        steps.push(request.clone());
    }
    // The fixture's answers to background fetches and to calls come from clusters of those
    // names, in order.
    let mut clusters: serde_json::Map<String, serde_json::Value> = fixture
        .host
        .fetched
        .iter()
        .map(|(cluster, body)| {
            (
                cluster.clone(),
                serde_json::json!([{"status": 200, "body": body}]),
            )
        })
        .collect();
    for (cluster, answers) in &fixture.host.callouts {
        let answers = serde_json::to_value(answers).map_err(|e| e.to_string())?;
        if clusters.insert(cluster.clone(), answers).is_some() {
            return Err(format!(
                "cluster {cluster:?} is both in host.fetched and in host.callouts"
            ));
        }
    }
    let text = serde_json::json!({
        "plugin": {"workers": 1, "configuration": if settings.is_null() { serde_json::Value::Null } else { settings }},
        "connection": connection,
        "clusters": clusters,
        "steps": steps,
    });
    serde_json::from_value(text).map_err(|e| format!("building the scenario: {e}"))
}

/// Whether what the proxy did is what the expected verdict says.
fn proxy_agrees(
    filter: &Filter,
    fixture: &Fixture<HttpRequest>,
    expected: &Outcome<HttpVerdict>,
) -> Result<(), String> {
    let (report, _) = run(filter, &scenario(fixture)?, RunOptions::default());
    let nonce_id = fixture.request.nonce.uuid_v4();
    // A value drawn from the fixture's nonce matches any UUID v4 the filter drew in the proxy.
    let same = |want: &str, got: &str| {
        want == got
            || (want == nonce_id
                && got.len() == 36
                && got.chars().nth(14) == Some('4')
                && got.chars().filter(|c| *c == '-').count() == 4)
    };
    let request = report.requests.last();
    match expected {
        Outcome::SettingsError(_) => {
            if report.accepted {
                return Err("the settings are invalid, but the proxy accepted the plugin".into());
            }
            Ok(())
        }
        Outcome::Verdict(HttpVerdict::Call { callout }) => Err(format!(
            "a fixture's outcome cannot be a call (the runner answers calls): {callout:?}"
        )),
        Outcome::Error(_) => match request.and_then(|r| r.response.as_ref()) {
            Some(response) if response.status == 403 => Ok(()),
            other => Err(format!("expected a fail-closed 403, got {other:?}")),
        },
        Outcome::Verdict(HttpVerdict::Deny {
            status,
            body,
            headers,
            ..
        }) => {
            let request = request.ok_or("no request in the report")?;
            let response = request.response.as_ref().ok_or("no response")?;
            // To a gRPC request Envoy's local reply is a trailers-only gRPC response: status
            // 200, no body, the body as grpc-message.
            let grpc = fixture.request.is_grpc();
            let (want_status, want_body) = if grpc {
                (200, String::new())
            } else {
                (*status, body.clone())
            };
            if request.outcome != palisade_proxy::Outcome::LocalReply
                || response.status != want_status
                || response.body != want_body
            {
                return Err(format!(
                    "expected a local reply {want_status} {want_body:?}, got {} {} {:?}",
                    request.outcome, response.status, response.body
                ));
            }
            if grpc
                && !(response.headers.0.iter().any(|(k, _)| k == "grpc-status")
                    && (body.is_empty()
                        || response.headers.0.iter().any(|(k, _)| k == "grpc-message")))
            {
                return Err(format!(
                    "the gRPC local reply lacks grpc-status or grpc-message: {:?}",
                    response.headers
                ));
            }
            for (name, value) in headers {
                if !response
                    .headers
                    .0
                    .iter()
                    .any(|(k, v)| k == name && same(value, v))
                {
                    return Err(format!("the local reply lacks {name}: {value}"));
                }
            }
            // A content-type the filter gives replaces the proxy's text/plain, as in Envoy.
            let types = response
                .headers
                .0
                .iter()
                .filter(|(k, _)| k == "content-type")
                .count();
            if !grpc && headers.iter().any(|(k, _)| k == "content-type") && types != 1 {
                return Err(format!(
                    "the local reply has {types} content-types: {:?}",
                    response.headers
                ));
            }
            Ok(())
        }
        Outcome::Verdict(HttpVerdict::Continue {
            request_headers,
            response_headers,
        }) => {
            let request = request.ok_or("no request in the report")?;
            let upstream = request
                .upstream
                .as_ref()
                .ok_or_else(|| format!("expected the request upstream, got {}", request.outcome))?;
            for change in request_headers {
                let ok = match change {
                    HeaderChange::Set { name, value } | HeaderChange::Add { name, value } => {
                        upstream
                            .headers_added
                            .iter()
                            .any(|(k, v)| k == name && same(value, v))
                    }
                    HeaderChange::Remove { name } => {
                        upstream.headers_removed.iter().any(|(k, _)| k == name)
                    }
                };
                if !ok {
                    return Err(format!("upstream did not see {change:?}: {upstream:?}"));
                }
            }
            let response = request.response.as_ref().ok_or("no response")?;
            for change in response_headers {
                let ok = match change {
                    HeaderChange::Set { name, value } | HeaderChange::Add { name, value } => {
                        response
                            .headers
                            .0
                            .iter()
                            .any(|(k, v)| k == name && same(value, v))
                    }
                    HeaderChange::Remove { name } => response.headers.get(name).is_none(),
                };
                if !ok {
                    return Err(format!("the client did not see {change:?}: {response:?}"));
                }
            }
            Ok(())
        }
    }
}

fn completeness(policy: &PolicyCrate) -> Trial {
    let policy = policy.clone();
    Trial::test(format!("{}::complete", policy.name), move || {
        for (home, target) in &policy.homes {
            let dir = policy.fixtures(home);
            let names: BTreeMap<String, ()> = fixture_paths(&dir)
                .map_err(|e| format!("{e:#}"))?
                .iter()
                .filter_map(|p| Some((p.file_name()?.to_str()?.to_owned(), ())))
                .collect();
            for prefix in ["allow-", "deny-"] {
                if !names.keys().any(|name| name.starts_with(prefix)) {
                    return Err(format!(
                        "{} has no {prefix} fixture for {home} in {}",
                        policy.name,
                        dir.display()
                    )
                    .into());
                }
            }
            let artefact = policy.artefact_path(home);
            if !artefact.is_file() {
                return Err(format!(
                    "{} has no built artefact for {home} at {} (built for {target})",
                    policy.name,
                    artefact.display()
                )
                .into());
            }
        }
        Ok(())
    })
}
