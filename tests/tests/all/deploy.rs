//! The kustomize base in `deploy/kustomize` renders, and what it deploys is right: a webhook
//! pod that itself passes the restricted Pod Security Standard, probes on the HTTPS port, a
//! valid server configuration, and webhook rules equal to each policy's own metadata. The Helm
//! chart in `deploy/helm/palisade`: its values and schema, and its rendering where helm exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_sdk::AdmissionPolicy;
use palisade_sdk::testing::complete_request;
use pod_security::PodSecurity;
use serde::Deserialize;
use serde_json::{Value, json};

/// The rendered objects, or `None` (with a note) where kubectl is not installed.
fn render() -> Option<Vec<Value>> {
    let dir = e2e::workspace_root().join("deploy/kustomize");
    let output = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            e2e::skip("kubectl is not installed, so the kustomize base is not rendered");
            return None;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    Some(
        serde_yaml::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).expect("YAML document"))
            .collect(),
    )
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn renders_every_object_in_one_namespace() {
    let Some(objects) = render() else { return };
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
    ] {
        find(&objects, kind);
    }
    for object in objects
        .iter()
        .filter(|o| o["kind"] != "Namespace" && o["kind"] != "ValidatingWebhookConfiguration")
    {
        assert_eq!(
            object["metadata"]["namespace"], "palisade",
            "{}",
            object["kind"]
        );
    }
}

#[test]
fn webhook_deployment_passes_the_restricted_standard() {
    let Some(objects) = render() else { return };
    let deployment = find(&objects, "Deployment").clone();
    let request = complete_request(json!({"object": deployment}), "deploy").expect("request");
    let settings =
        palisade_sdk::parse_settings::<pod_security::Settings>(r#"{"level": "restricted"}"#)
            .expect("settings");
    let verdict = pod_security::evaluate(&request, &settings).expect("verdict");
    assert!(verdict.allowed, "{}", verdict.message);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(container["ports"][0]["containerPort"], 8443);
}

#[test]
fn configuration_is_valid_and_every_webhook_names_a_policy() {
    let Some(objects) = render() else { return };
    let text = find(&objects, "ConfigMap")["data"]["palisade.yaml"]
        .as_str()
        .expect("palisade.yaml")
        .to_owned();
    let config = palisade_webhook::Config::parse(&text).expect("the server configuration parses");
    config
        .validate()
        .expect("the server configuration is valid");
    let deployment = find(&objects, "Deployment");
    probes_need_no_client_certificate(
        "kustomize",
        &deployment["spec"]["template"]["spec"]["containers"][0],
        &config,
    );
    assert_eq!(config.listen.port(), 8443);
    let webhooks = find(&objects, "ValidatingWebhookConfiguration")["webhooks"]
        .as_array()
        .expect("webhooks")
        .clone();
    assert!(!webhooks.is_empty());
    for webhook in &webhooks {
        let path = webhook["clientConfig"]["service"]["path"]
            .as_str()
            .expect("path");
        let id = path.strip_prefix("/validate/").expect("a validate path");
        assert!(
            config.policies.iter().any(|p| p.id == id),
            "{path} names no configured policy"
        );
        assert_eq!(
            webhook["clientConfig"]["service"]["name"],
            find(&objects, "Service")["metadata"]["name"]
        );
        assert_eq!(webhook["sideEffects"], "None");
    }
}

#[test]
fn pod_security_webhook_rules_match_the_policy_metadata() {
    let Some(objects) = render() else { return };
    let webhooks = &find(&objects, "ValidatingWebhookConfiguration")["webhooks"];
    let webhook = webhooks
        .as_array()
        .expect("webhooks")
        .iter()
        .find(|w| w["name"] == "pod-security.palisade.dev")
        .expect("pod-security webhook");
    let rendered: Vec<(Value, Value, Value, Value)> = webhook["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["apiGroups"].clone(),
                r["apiVersions"].clone(),
                r["resources"].clone(),
                r["operations"].clone(),
            )
        })
        .collect();
    let declared: Vec<(Value, Value, Value, Value)> = PodSecurity::metadata()
        .rules
        .iter()
        .map(|r| {
            (
                json!(r.api_groups),
                json!(r.api_versions),
                json!(r.resources),
                json!(r.operations),
            )
        })
        .collect();
    assert_eq!(
        rendered, declared,
        "deploy/kustomize/validatingwebhookconfiguration.yaml drifted from pod-security's metadata"
    );
}

// The Helm chart. helm is not needed for the default run: the values are checked against the
// chart's schema as helm would merge them, and every `.Values.<path>` of the templates against
// values.yaml; `helm lint` and `helm template` run only where helm is installed.

fn chart_dir() -> PathBuf {
    e2e::workspace_root().join("deploy/helm/palisade")
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Helm's coalescing of a values file over the chart's values.yaml: maps merge key by key, a
/// `null` deletes the key, anything else (lists included) replaces.
fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key)
                    && existing.is_object()
                    && value.is_object()
                {
                    merge(existing, value);
                } else {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// The chart's values.yaml with `overlay` merged over it.
fn values_with(overlay: &Value) -> Value {
    let mut values = read_yaml(&chart_dir().join("values.yaml"));
    merge(&mut values, overlay);
    values
}

/// The example values files of `ci/` (as chart-testing names them), sorted.
fn ci_values_files() -> Vec<PathBuf> {
    let dir = chart_dir().join("ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn schema_validator() -> jsonschema::Validator {
    let path = chart_dir().join("values.schema.json");
    let text = std::fs::read_to_string(&path).expect("values.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "helm validates draft-07 schemas everywhere"
    );
    jsonschema::validator_for(&schema).expect("values.schema.json compiles")
}

fn schema_errors(validator: &jsonschema::Validator, values: &Value) -> Vec<String> {
    validator
        .iter_errors(values)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn helm_chart_metadata_matches_the_workspace() {
    let chart = read_yaml(&chart_dir().join("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "palisade");
    assert_eq!(chart["type"], "application");
    assert_eq!(chart["version"], "0.1.0");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "the chart's appVersion is the image tag it deploys by default"
    );
}

#[test]
fn helm_default_values_match_the_schema() {
    let values = values_with(&json!({}));
    let errors = schema_errors(&schema_validator(), &values);
    assert!(
        errors.is_empty(),
        "values.yaml does not match values.schema.json:\n{}",
        errors.join("\n")
    );
}

#[test]
fn helm_ci_values_match_the_schema() {
    let files = ci_values_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "cert-manager-values.yaml",
        "secret-values.yaml",
        "groups-values.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "ci/{expected} is missing"
        );
    }
    let validator = schema_validator();
    for file in &files {
        let values = values_with(&read_yaml(file));
        let errors = schema_errors(&validator, &values);
        assert!(
            errors.is_empty(),
            "{} does not match values.schema.json:\n{}",
            file.display(),
            errors.join("\n")
        );
    }
    // What each example is there to show.
    let by_name = |name: &str| values_with(&read_yaml(&chart_dir().join("ci").join(name)));
    assert_eq!(
        by_name("cert-manager-values.yaml")["tls"]["mode"],
        "certManager"
    );
    assert_eq!(by_name("secret-values.yaml")["tls"]["mode"], "secret");
    let groups = by_name("groups-values.yaml");
    assert_eq!(groups["policies"].as_array().map(Vec::len), Some(2));
    assert!(
        groups["policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["mode"] == "monitor"))
    );
    assert_eq!(groups["groups"].as_array().map(Vec::len), Some(1));
}

#[test]
fn helm_schema_rejects_bad_values() {
    let validator = schema_validator();
    let pod_security = |extra: Value| {
        let mut policy = json!({"id": "pod-security", "module": "pod_security.wasm"});
        merge(&mut policy, &extra);
        json!({"policies": [policy]})
    };
    // (what is wrong, where every error must point, the values over values.yaml)
    let cases = [
        (
            "an unknown tls.mode",
            "/tls/mode",
            json!({"tls": {"mode": "letsencrypt"}}),
        ),
        (
            "a policy without id",
            "/policies/0",
            json!({"policies": [{"module": "pod_security.wasm"}]}),
        ),
        ("an unknown top-level key", "", json!({"replicas": 3})),
        (
            "a Redis store without its url",
            "/server/rateLimit/redis",
            json!({"server": {"rateLimit": {"redis": {"timeout": "1s"}}}}),
        ),
        (
            "a negative default webhook timeout",
            "/webhook/timeoutSeconds",
            json!({"webhook": {"timeoutSeconds": -1}}),
        ),
        (
            "a negative webhook timeout of a policy",
            "/policies/0/webhook/timeoutSeconds",
            pod_security(json!({"webhook": {"timeoutSeconds": -5}})),
        ),
        (
            "a webhook timeout over the API server's 30 s",
            "/webhook/timeoutSeconds",
            json!({"webhook": {"timeoutSeconds": 31}}),
        ),
        (
            "a wrong failurePolicy",
            "/policies/0/failurePolicy",
            pod_security(json!({"failurePolicy": "Deny"})),
        ),
        (
            "a wrong policy mode",
            "/policies/0/mode",
            pod_security(json!({"mode": "audit"})),
        ),
        (
            "a policy timeout that is not a duration",
            "/policies/0/timeout",
            pod_security(json!({"timeout": "2 seconds"})),
        ),
        (
            "a policy id that is no DNS name part",
            "/policies/0/id",
            pod_security(json!({"id": "Pod_Security"})),
        ),
        (
            "an unknown key in a policy",
            "/policies/0",
            pod_security(json!({"timeoutSeconds": 5})),
        ),
        (
            "a rule with an unknown operation",
            "/policies/0/webhook/rules/0/operations/0",
            pod_security(json!({"webhook": {"rules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                "operations": ["PATCH"],
            }]}})),
        ),
        ("no policy at all", "/policies", json!({"policies": []})),
        (
            "a group without an expression",
            "/groups/0",
            json!({"groups": [{"id": "all"}]}),
        ),
        (
            "secret mode without the Secret and its CA",
            "/tls/secret",
            json!({"tls": {"mode": "secret"}}),
        ),
        (
            "a caBundle that is PEM, not base64 of PEM",
            "/tls/secret/caBundle",
            json!({"tls": {"mode": "secret", "secret": {
                "name": "palisade-tls", "caBundle": "-----BEGIN CERTIFICATE-----",
            }}}),
        ),
        (
            "modules from an image without the image",
            "/modules/image/repository",
            json!({"modules": {"source": "image"}}),
        ),
        (
            "an unknown modules source",
            "/modules/source",
            json!({"modules": {"source": "http"}}),
        ),
        (
            "an unknown server limit",
            "/server/limits",
            json!({"server": {"limits": {"maxBody": 1}}}),
        ),
        (
            "a privileged server port",
            "/server/port",
            json!({"server": {"port": 443}}),
        ),
        (
            "a pull policy that does not exist",
            "/image/pullPolicy",
            json!({"image": {"pullPolicy": "Sometimes"}}),
        ),
        (
            "a PodDisruptionBudget minAvailable that is neither a count nor a percentage",
            "/podDisruptionBudget/minAvailable",
            json!({"podDisruptionBudget": {"minAvailable": "half"}}),
        ),
    ];
    for (why, pointer, overlay) in &cases {
        let values = values_with(overlay);
        let errors: Vec<(String, String)> = validator
            .iter_errors(&values)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect();
        assert!(
            !errors.is_empty(),
            "values.schema.json accepts {why}: {overlay}"
        );
        // Failing for another reason would hide a schema that is too loose here.
        for (path, error) in &errors {
            assert!(
                path.starts_with(pointer),
                "{why}: expected errors at {pointer:?}, got {error} at {path:?}"
            );
        }
    }
}

/// What `palisade serve` would read from the chart's ConfigMap: each policy and group as given
/// in values without the chart-only `webhook` key, and the limits.
fn server_configuration(values: &Value) -> palisade_webhook::Config {
    let strip = |entries: &Value| -> Vec<Value> {
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        let mut entry = entry.clone();
                        if let Some(entry) = entry.as_object_mut() {
                            entry.remove("webhook");
                        }
                        entry
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // As templates/_helpers.tpl builds it.
    let mut tls = json!({"cert": "/etc/palisade/tls/tls.crt", "key": "/etc/palisade/tls/tls.key"});
    if values["tls"]["clientCaSecret"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        tls["clientCa"] = json!("/etc/palisade/client-ca/ca.crt");
    }
    let mut config = json!({
        "listen": format!("0.0.0.0:{}", values["server"]["port"]),
        "tls": tls,
        "probes": {"listen": format!("0.0.0.0:{}", values["server"]["probesPort"])},
        "limits": values["server"]["limits"],
        "policies": strip(&values["policies"]),
        "groups": strip(&values["groups"]),
    });
    if values["server"]["rateLimit"]
        .as_object()
        .is_some_and(|r| !r.is_empty())
    {
        config["rateLimit"] = values["server"]["rateLimit"].clone();
    }
    palisade_webhook::Config::parse(&config.to_string())
        .unwrap_or_else(|e| panic!("the server rejects the configuration: {e}\n{config:#}"))
}

/// The kubelet's probes (no client certificate, no CA) go to the plain-HTTP probes listener,
/// never to the admission listener, which may require a client certificate (`tls.clientCa`).
fn probes_need_no_client_certificate(
    label: &str,
    container: &Value,
    config: &palisade_webhook::Config,
) {
    let probes = config
        .probes
        .unwrap_or_else(|| panic!("{label}: no probes listener configured"));
    assert_ne!(probes.listen.port(), config.listen.port(), "{label}");
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert!(
            get["scheme"].is_null() || get["scheme"] == "HTTP",
            "{label}: {probe} {get}"
        );
        let port = container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == get["port"] || p["containerPort"] == get["port"])
            .unwrap_or_else(|| panic!("{label}: {probe} names no container port: {get}"));
        assert_eq!(
            port["containerPort"].as_u64(),
            Some(u64::from(probes.listen.port())),
            "{label}: {probe} does not reach the probes listener"
        );
    }
}

#[test]
fn helm_values_make_valid_server_configurations() {
    let mut overlays = vec![("values.yaml".to_owned(), json!({}))];
    overlays.extend(ci_values_files().iter().map(|f| {
        (
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            read_yaml(f),
        )
    }));
    for (name, overlay) in &overlays {
        let values = values_with(overlay);
        let config = server_configuration(&values);
        config
            .validate()
            .unwrap_or_else(|e| panic!("{name}: the server configuration is invalid: {e}"));
        let client_auth = values["tls"]["clientCaSecret"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        assert_eq!(
            config
                .tls
                .as_ref()
                .and_then(|t| t.client_ca.as_ref())
                .is_some(),
            client_auth,
            "{name}"
        );
        assert!(
            config
                .probes
                .is_some_and(|p| p.listen.port() != config.listen.port()),
            "{name}: the probes need a listener of their own"
        );
        // server.rateLimit reaches the server as its rateLimit (Redis shared by replicas).
        assert_eq!(
            config.rate_limit.redis.as_ref().map(|r| r.url.as_str()),
            values["server"]["rateLimit"]["redis"]["url"].as_str(),
            "{name}"
        );
        // The API server must wait longer than the server's own deadline (which is longer
        // than every policy's), or the policies' failurePolicy never answers a timeout.
        let default_timeout = values["webhook"]["timeoutSeconds"]
            .as_u64()
            .expect("timeout");
        let entries = values["policies"].as_array().expect("policies").iter();
        let groups = values["groups"].as_array().into_iter().flatten();
        for entry in entries.chain(groups) {
            let seconds = entry["webhook"]["timeoutSeconds"]
                .as_u64()
                .unwrap_or(default_timeout);
            assert!(
                std::time::Duration::from_secs(seconds) > config.limits.request_timeout,
                "{name}: the webhook of {} times out after {seconds}s, before the server's \
                 requestTimeout of {:?}",
                entry["id"],
                config.limits.request_timeout
            );
        }
    }
}

/// Every `.Values.<path>` in the template text, without a trailing dot.
fn values_references(text: &str) -> Vec<String> {
    const MARKER: &str = ".Values.";
    let mut references = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARKER) {
        rest = &rest[at + MARKER.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches('.');
        if !path.is_empty() {
            references.push(path.to_owned());
        }
        rest = &rest[end..];
    }
    references
}

fn lookup<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(values, |value, key| value.as_object()?.get(key))
}

#[test]
fn helm_templates_reference_only_defined_values() {
    let values = read_yaml(&chart_dir().join("values.yaml"));
    assert!(lookup(&values, "tls.mode").is_some());
    assert!(
        lookup(&values, "tls.mdoe").is_none(),
        "the lookup must not be vacuous"
    );
    let dir = chart_dir().join("templates");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("templates/")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    let mut checked = 0;
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("template");
        for path in values_references(&text) {
            checked += 1;
            if lookup(&values, &path).is_none() {
                missing.push(format!(
                    "{}: .Values.{path}",
                    file.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} .Values references found: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "templates use values that values.yaml does not define:\n{}",
        missing.join("\n")
    );
    assert_eq!(
        values_references("{{ $root.Values.tls.mode }} {{ .Values.a_b.c2. }} .Values."),
        ["tls.mode", "a_b.c2"]
    );
}

/// Runs helm; `None` where helm is not installed.
fn helm(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("helm").args(args).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running helm: {e}"),
    }
}

#[test]
fn helm_lint_and_template_render_a_hardened_webhook() {
    if helm(&["version"]).is_none() {
        e2e::skip("helm is not installed, so the chart is not linted or rendered");
        return;
    }
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let mut files: Vec<Option<PathBuf>> = vec![None];
    files.extend(ci_values_files().into_iter().map(Some));
    for file in &files {
        let mut extra = Vec::new();
        if let Some(file) = file {
            extra.extend(["--values", file.to_str().expect("UTF-8 path")]);
        }
        let label = file
            .as_ref()
            .map_or_else(|| "values.yaml".to_owned(), |f| f.display().to_string());
        let lint = helm(&[&["lint", chart][..], &extra].concat()).expect("helm");
        assert!(
            lint.status.success(),
            "helm lint with {label}:\n{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        let args = [
            &["template", "palisade", chart, "--namespace", "palisade"][..],
            &extra,
        ]
        .concat();
        let output = helm(&args).expect("helm");
        assert!(
            output.status.success(),
            "helm template with {label}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).expect("utf-8");
        let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).expect("YAML document"))
            .filter(|o| !o.is_null())
            .collect();
        let values = values_with(
            &file
                .as_ref()
                .map_or_else(|| json!({}), |file| read_yaml(file)),
        );
        check_rendered_chart(&label, &objects, &values);
    }
    let bad = helm(&[
        "template",
        "palisade",
        chart,
        "--set",
        "tls.mode=letsencrypt",
    ])
    .expect("helm");
    assert!(
        !bad.status.success(),
        "helm applies values.schema.json: an unknown tls.mode must fail"
    );
}

fn check_rendered_chart(label: &str, objects: &[Value], values: &Value) {
    let deployment = find(objects, "Deployment").clone();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{label}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{label}"
    );
    let containers = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["initContainers"].as_array().into_iter().flatten());
    for container in containers {
        let context = &container["securityContext"];
        assert_eq!(context["allowPrivilegeEscalation"], false, "{label}");
        assert_eq!(context["readOnlyRootFilesystem"], true, "{label}");
        assert_eq!(context["capabilities"]["drop"], json!(["ALL"]), "{label}");
    }
    let server = &pod["containers"][0];
    assert_eq!(server["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(server["readinessProbe"]["httpGet"]["path"], "/readyz");
    let client_auth = values["tls"]["clientCaSecret"]
        .as_str()
        .is_some_and(|s| !s.is_empty());
    let mounts_client_ca = server["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["mountPath"] == "/etc/palisade/client-ca");
    assert_eq!(mounts_client_ca, client_auth, "{label}");
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"].is_string(),
        "{label}: no checksum/config annotation"
    );
    let request = complete_request(json!({"object": deployment}), "deploy").expect("request");
    let settings =
        palisade_sdk::parse_settings::<pod_security::Settings>(r#"{"level": "restricted"}"#)
            .expect("settings");
    let verdict = pod_security::evaluate(&request, &settings).expect("verdict");
    assert!(verdict.allowed, "{label}: {}", verdict.message);

    let text = find(objects, "ConfigMap")["data"]["palisade.yaml"]
        .as_str()
        .expect("palisade.yaml")
        .to_owned();
    let config = palisade_webhook::Config::parse(&text).expect("the server configuration parses");
    config
        .validate()
        .expect("the server configuration is valid");
    probes_need_no_client_certificate(label, server, &config);

    let with_rules = |entries: &Value, mutating: bool| -> Vec<String> {
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["webhook"]["rules"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                    && (!mutating || e["webhook"]["mutating"] == true)
            })
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect()
    };
    let mut validating = with_rules(&values["policies"], false);
    validating.extend(with_rules(&values["groups"], false));
    let mutating = with_rules(&values["policies"], true);
    for (kind, endpoint, ids) in [
        ("ValidatingWebhookConfiguration", "validate", validating),
        ("MutatingWebhookConfiguration", "mutate", mutating),
    ] {
        let paths: Vec<Value> = objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .flat_map(|o| o["webhooks"].as_array().cloned().unwrap_or_default())
            .inspect(|webhook| {
                assert_eq!(webhook["sideEffects"], "None", "{label}");
                assert_eq!(
                    webhook["admissionReviewVersions"],
                    json!(["v1", "v1beta1"]),
                    "{label}"
                );
                let excluded = &webhook["namespaceSelector"]["matchExpressions"][0]["values"];
                assert!(
                    excluded
                        .as_array()
                        .is_some_and(|v| v.contains(&json!("palisade"))),
                    "{label}: the release namespace is not excluded"
                );
            })
            .map(|webhook| webhook["clientConfig"]["service"]["path"].clone())
            .collect();
        let expected: Vec<Value> = ids
            .iter()
            .map(|id| json!(format!("/{endpoint}/{id}")))
            .collect();
        assert_eq!(paths, expected, "{label}: {kind}");
    }
}
