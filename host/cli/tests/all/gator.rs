//! `palisade test` on gator's suites: the rego policy's template library as `gator verify`
//! would run it, and a suite of our own whose cases fail, skip and expect an invalid
//! constraint, so the runner's verdicts (and its closing line) are checked both ways.

use std::path::Path;

use crate::support::{palisade, root};

/// `palisade test <args>`: exit code and stdout.
fn test(args: &[&str]) -> (i32, String) {
    let cache = tempfile::tempdir().expect("dir");
    let output = palisade(&cache)
        .arg("test")
        .args(args)
        .output()
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn the_template_library_passes_its_gator_suites() {
    let library = root().join("policies/rego/library/...");
    let (code, stdout) = test(&[library.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let counts: Vec<&str> = last.split(", ").collect();
    assert_eq!(counts.get(1), Some(&"0 failed"), "{last}");
    assert_eq!(counts.get(2), Some(&"1 skipped"), "{last}");
    let passed: usize = counts[0]
        .trim_end_matches(" passed")
        .parse()
        .expect("count");
    assert!(passed >= 80, "{last}");
}

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: nolatest}
spec:
  crd:
    spec:
      names: {kind: NoLatest}
      validation:
        openAPIV3Schema: {type: object, properties: {tags: {type: array, items: {type: string}}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package nolatest
        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          endswith(c.image, concat("", [":", input.parameters.tags[_]]))
          msg := sprintf("container <%v> uses a disallowed tag: %v", [c.name, c.image])
        }
"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn assertions_count_matching_violations_and_failures_and_skips_are_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    write(d, "template.yaml", TEMPLATE);
    write(
        d,
        "constraint.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: NoLatest\nmetadata: {name: no-latest}\nspec: {parameters: {tags: [latest, dev]}}\n",
    );
    write(
        d,
        "bad-constraint.yaml",
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: NoLatest\nmetadata: {name: bad}\nspec: {parameters: {tags: latest}}\n",
    );
    write(
        d,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec:\n  containers:\n  - {name: a, image: 'web:latest'}\n  - {name: b, image: 'web:dev'}\n  - {name: c, image: 'web:1.0'}\n",
    );
    write(
        d,
        "suite.yaml",
        r#"apiVersion: test.gatekeeper.sh/v1alpha1
kind: Suite
tests:
  - name: tags
    template: template.yaml
    constraint: constraint.yaml
    cases:
      - name: two-violations
        object: pod.yaml
        assertions:
          - {violations: 2}
          - {violations: 1, message: "<a>"}
          - {violations: no, message: "<c>"}
      - name: wrong-count
        object: pod.yaml
        assertions: [{violations: 3}]
      - name: wrong-message
        object: pod.yaml
        assertions: [{violations: yes, message: "<z>"}]
      - name: later
        skip: true
        object: pod.yaml
        assertions: [{violations: no}]
  - name: schema
    template: template.yaml
    constraint: bad-constraint.yaml
    invalid: true
  - name: not-invalid
    template: template.yaml
    constraint: constraint.yaml
    invalid: true
"#,
    );
    let (code, stdout) = test(&[d.join("suite.yaml").to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{stdout}");
    let line = |case: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!(":: {case}")))
            .unwrap_or_else(|| panic!("no line for {case}: {stdout}"))
            .to_owned()
    };
    assert!(line("tags/two-violations").starts_with("PASS "), "{stdout}");
    assert!(
        line("tags/wrong-count").contains("got 2 violations, want 3"),
        "{stdout}"
    );
    assert!(line("tags/wrong-message").starts_with("FAIL "), "{stdout}");
    assert!(line("tags/later").starts_with("SKIP "), "{stdout}");
    assert!(line("schema").starts_with("PASS "), "{stdout}");
    assert!(
        line("not-invalid").contains("expects it to be invalid"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("2 passed, 3 failed, 1 skipped"),
        "{stdout}"
    );
}
