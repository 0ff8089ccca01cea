//! The rego policy's Gatekeeper home through `palisade serve`, configured as a Gatekeeper user
//! keeps things: a template file, a directory of Constraints and a directory of inventory
//! objects (`settingsFrom`). Denials carry Gatekeeper's `[constraint] message`; editing a
//! Constraint file reloads the policy with it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serving::{post_review, serve};

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: requiredlabels}
spec:
  crd:
    spec:
      names: {kind: RequiredLabels}
      validation:
        openAPIV3Schema: {type: object, properties: {labels: {type: array, items: {type: string}}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package requiredlabels
        violation[{"msg": msg}] {
          provided := {k | input.review.object.metadata.labels[k]}
          missing := {k | k := input.parameters.labels[_]} - provided
          count(missing) > 0
          msg := sprintf("you must provide labels: %v", [missing])
        }
"#;

fn constraint(action: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: RequiredLabels\nmetadata: {{name: tenant-pods-need-owner}}\nspec:\n  enforcementAction: {action}\n  match:\n    kinds: [{{apiGroups: [\"\"], kinds: [Pod]}}]\n    namespaceSelector: {{matchLabels: {{tier: tenant}}}}\n  parameters: {{labels: [owner]}}\n"
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, text).expect("write");
}

fn review(address: SocketAddr, uid: &str, namespace: &str) -> Value {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": uid, "namespace": namespace}},
        }
    });
    post_review(address, "required-labels", &review)
}

#[test]
fn a_gatekeeper_library_served_from_its_files_denies_and_reloads_when_a_constraint_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    write(&root.join("gatekeeper/template.yaml"), TEMPLATE);
    write(
        &root.join("gatekeeper/constraints/owner.yaml"),
        &constraint("deny"),
    );
    write(
        &root.join("inventory/namespaces.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: tenant}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ops, labels: {tier: system}}\n",
    );
    let config = root.join("palisade.yaml");
    write(
        &config,
        &format!(
            "listen: 127.0.0.1:0\npolicies:\n  - id: required-labels\n    module: {}\n    settingsFrom:\n      template: gatekeeper/template.yaml\n      constraints: [gatekeeper/constraints]\n      inventory: [inventory]\n",
            e2e::artefact_for("rego", "admission-component").display()
        ),
    );
    let server = serve(config);
    let address = server.address;

    let denied = review(address, "a", "shop");
    assert_eq!(denied["allowed"], json!(false), "{denied}");
    assert_eq!(denied["status"]["code"], json!(403), "{denied}");
    assert_eq!(
        denied["status"]["message"],
        json!("[tenant-pods-need-owner] you must provide labels: {\"owner\"}"),
        "{denied}"
    );
    // The namespaceSelector reads the Namespace's labels from the inventory directory.
    assert_eq!(review(address, "b", "ops")["allowed"], json!(true));

    // The Gatekeeper user switches the Constraint to warn: the server reloads it.
    write(
        &root.join("gatekeeper/constraints/owner.yaml"),
        &constraint("warn"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = review(address, "c", "shop");
        if answer["allowed"] == json!(true) {
            assert_eq!(
                answer["warnings"],
                json!(["[tenant-pods-need-owner] you must provide labels: {\"owner\"}"]),
                "{answer}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited Constraint was not reloaded: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
