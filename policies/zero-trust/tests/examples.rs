//! The JWT examples are generated: `examples/jwt/<name>.yaml` is its `<name>.template.yaml`
//! with the test keys and tokens written in (see `zero_trust::testing`). This test fails when a
//! generated file is stale; `PALISADE_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn generated_examples_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jwt");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/jwt") {
        let path = entry.expect("entry").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".template.yaml"))
        else {
            continue;
        };
        let template: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).expect("template")).expect("YAML");
        let expanded = zero_trust::testing::expand(template).expect("expands");
        let generated = format!(
            "# Generated from {name}.template.yaml by `PALISADE_BLESS=1 cargo test -p zero-trust \
             --test examples`: edit the template.\n{}",
            serde_yaml::to_string(&expanded).expect("YAML")
        );
        let target = dir.join(format!("{name}.yaml"));
        if std::env::var_os("PALISADE_BLESS").is_some() {
            std::fs::write(&target, &generated).expect("write");
        } else {
            let current = std::fs::read_to_string(&target).unwrap_or_default();
            assert!(
                current == generated,
                "{} is stale: run PALISADE_BLESS=1 cargo test -p zero-trust --test examples",
                target.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no template in {}", dir.display());
}
