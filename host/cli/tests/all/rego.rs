//! `palisade rego eval` and `palisade rego test` on the Rego, data and input files of
//! `tests/fixtures/rego`: OPA's JSON output, loading, syntax versions, errors and exit codes.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::palisade;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rego")
        .join(name)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `palisade rego <args>`: exit code, stdout, stderr.
fn rego(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().expect("dir");
    let output = palisade(&cache)
        .arg("rego")
        .args(args)
        .output()
        .expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `palisade rego eval <args>`, which must exit with `code`: its stdout as JSON.
fn eval(args: &[&str], code: i32) -> Value {
    let (actual, stdout, stderr) = rego(&[&["eval"][..], args].concat());
    assert_eq!(actual, code, "stdout: {stdout}\nstderr: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn eval_prints_opa_json_with_data_and_input() {
    let data = fixture("eval");
    let input = fixture("input.json");
    let json = eval(
        &["data.authz.allow", "-d", path(&data), "-i", path(&input)],
        0,
    );
    assert_eq!(
        json,
        json!({"result": [{"expressions": [{
            "value": true,
            "text": "data.authz.allow",
            "location": {"row": 1, "col": 1}
        }]}]})
    );
}

#[test]
fn eval_puts_data_files_under_their_directory() {
    let data = fixture("eval");
    let json = eval(&["data.app", "--data", path(&data)], 0);
    assert_eq!(
        json["result"][0]["expressions"][0]["value"],
        json!({
            "admins": ["alice"],
            "net": {"servers": [{"name": "web", "port": 80}, {"name": "db", "port": 5432}]}
        })
    );
}

#[test]
fn eval_reports_bindings_per_result() {
    let data = fixture("eval");
    let json = eval(
        &["  port := data.app.net.servers[_].port", "-d", path(&data)],
        0,
    );
    let expression = |port: u64| {
        json!({
            "expressions": [{
                "value": true,
                "text": "port := data.app.net.servers[_].port",
                "location": {"row": 1, "col": 3}
            }],
            "bindings": {"port": port}
        })
    };
    assert_eq!(json, json!({"result": [expression(80), expression(5432)]}));
}

#[test]
fn undefined_query_prints_an_empty_object_and_fails_only_with_fail() {
    let data = fixture("eval");
    assert_eq!(
        eval(&["data.authz.nothing", "-d", path(&data)], 0),
        json!({})
    );
    assert_eq!(
        eval(&["data.authz.nothing", "-d", path(&data), "--fail"], 1),
        json!({})
    );
    let defined = eval(&["data.authz.ports", "-d", path(&data), "--fail"], 0);
    assert_eq!(
        defined["result"][0]["expressions"][0]["value"],
        json!([80, 5432])
    );
    eval(
        &["data.authz.ports", "-d", path(&data), "--fail-defined"],
        1,
    );
}

#[test]
fn v0_syntax_needs_v0_compatible() {
    let legacy = fixture("v0");
    let (code, stdout, stderr) = rego(&["eval", "data.legacy.allow", "-d", path(&legacy)]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("legacy.rego"), "{stderr}");
    let input = fixture("input.json");
    let json = eval(
        &[
            "data.legacy.allow",
            "-d",
            path(&legacy),
            "-i",
            path(&input),
            "--v0-compatible",
        ],
        0,
    );
    assert_eq!(json["result"][0]["expressions"][0]["value"], true);
}

#[test]
fn parse_error_names_the_file_and_line() {
    let broken = fixture("broken");
    let (code, stdout, stderr) = rego(&["eval", "data.broken.allow", "-d", path(&broken)]);
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(stdout, "");
    let file = broken.join("broken.rego");
    assert!(
        stderr.contains(&format!("{}:3:", file.display())),
        "{stderr}"
    );
}

#[test]
fn data_conflict_names_both_files() {
    let conflict = fixture("conflict");
    let (code, _, stderr) = rego(&["eval", "data", "-d", path(&conflict)]);
    assert_eq!(code, 2);
    let a = conflict.join("limits/a.json");
    let b = conflict.join("limits/b.yaml");
    assert!(
        stderr.contains(&a.display().to_string())
            && stderr.contains(&b.display().to_string())
            && stderr.contains("data.limits.cpu"),
        "{stderr}"
    );
}

#[test]
fn test_reports_failures_errors_and_skips_then_the_count() {
    let unit = fixture("unit");
    let (code, stdout, stderr) = rego(&["test", path(&unit)]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let (bob, print) = (lines.first(), lines.get(1));
    assert_eq!(bob, Some(&"FAIL data.unit.policy_test.test_bob_allowed"));
    assert!(
        print.is_some_and(|p| p.starts_with("  ") && p.ends_with("policy_test.rego:8: checking bob")),
        "the print() under the failure: {stdout}"
    );
    let error = lines.get(2).expect("the error line");
    assert!(
        error.starts_with("ERROR data.unit.policy_test.test_size_is_one: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("rules must not produce multiple outputs"),
        "{stdout}"
    );
    // A keyed test fails by the keys whose value is not true.
    let even = lines
        .iter()
        .position(|l| *l == "FAIL data.unit.policy_test.test_even")
        .expect("test_even fails");
    assert_eq!(lines.get(even + 1), Some(&"  one: FAIL"), "{stdout}");
    assert!(
        lines.contains(&"SKIPPED data.unit.policy_test.todo_test_carol_allowed"),
        "{stdout}"
    );
    assert!(!stdout.contains("PASS "), "{stdout}");
    assert_eq!(lines.last(), Some(&"2 passed, 3 failed"), "{stdout}");
}

#[test]
fn verbose_test_prints_passing_tests() {
    let unit = fixture("unit");
    let (code, stdout, _) = rego(&["test", "-v", path(&unit)]);
    assert_eq!(code, 1, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    for pass in [
        "PASS data.unit.policy_test.test_alice_allowed",
        "PASS data.unit.policy_test.test_positive",
    ] {
        assert!(lines.contains(&pass), "{pass}: {stdout}");
    }
}

#[test]
fn run_selects_tests_by_their_full_name() {
    let unit = fixture("unit");
    let (code, stdout, stderr) = rego(&["test", "--run", r"policy_test\.test_alice", path(&unit)]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["1 passed, 0 failed"]);
}

#[test]
fn test_of_an_unparsable_module_exits_2_naming_it() {
    let broken = fixture("broken");
    let (code, stdout, stderr) = rego(&["test", path(&broken)]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("broken.rego:3:"), "{stderr}");
}

#[test]
fn evaluation_ends_at_the_timeout() {
    // Nine million iterations: far longer than 50 ms, checked by regorus as it loops.
    let query = "count([x | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); x := i * j])";
    let (code, stdout, stderr) = rego(&["eval", query, "--timeout-ms", "50"]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("evaluating the query"), "{stderr}");
}
