//! The check registry, after PSA's `policy/registry.go`: every check with its level and the
//! versions its revisions apply from, evaluated in PSA's order (baseline checks sorted by PSA id,
//! then restricted checks sorted by id), with restricted checks overriding baseline ones.

mod allow_privilege_escalation;
mod app_armor_profile;
mod capabilities_baseline;
mod capabilities_restricted;
mod host_namespaces;
mod host_path_volumes;
mod host_ports;
mod host_probes_and_host_lifecycle;
mod phrase;
mod privileged;
mod proc_mount;
mod restricted_volumes;
mod run_as_non_root;
mod run_as_user;
mod se_linux_options;
mod seccomp_profile_baseline;
mod seccomp_profile_restricted;
mod sysctls;
mod windows_host_process;

use crate::level::Level;
use crate::model::Pod;

/// Why one check forbids a pod: PSA's `ForbiddenReason` and `ForbiddenDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Succinct and always shown (`allowPrivilegeEscalation != false`).
    pub(crate) reason: String,
    /// The offending values and items (`container "app" must set ...`).
    pub(crate) detail: String,
}

impl Violation {
    /// A violation with PSA's reason and detail texts.
    pub(crate) fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// One revision of a check's logic: `None` allows the pod.
type CheckPod = fn(&Pod) -> Option<Violation>;

/// A check's logic from one Kubernetes minor release on (PSA `VersionedCheck`).
struct Revision {
    /// The first v1.N this revision applies to (`MinimumVersion`).
    since: u64,
    /// The logic.
    check: CheckPod,
    /// Baseline checks this (restricted) revision replaces (`OverrideCheckIDs`).
    overrides: &'static [&'static str],
}

/// A check of one level with its revisions in increasing version order (PSA `Check`).
struct Check {
    /// PSA's check id (`allowPrivilegeEscalation`): orders the checks and names overrides.
    id: &'static str,
    /// The verdict reason: the id in kebab-case (`allow-privilege-escalation`).
    reason: &'static str,
    /// `Baseline` or `Restricted`.
    level: Level,
    /// The revisions, oldest first.
    revisions: &'static [Revision],
}

impl Check {
    /// The revision in force at `minor`, if the check exists yet.
    fn at(&self, minor: u64) -> Option<&Revision> {
        self.revisions.iter().rev().find(|r| r.since <= minor)
    }
}

const fn rev(since: u64, check: CheckPod) -> Revision {
    Revision {
        since,
        check,
        overrides: &[],
    }
}

const fn rev_overriding(
    since: u64,
    check: CheckPod,
    overrides: &'static [&'static str],
) -> Revision {
    Revision {
        since,
        check,
        overrides,
    }
}

/// Every check, in PSA's evaluation order: baseline ids sorted byte-wise, then restricted ids
/// sorted byte-wise (`populate` in `policy/registry.go`). Each entry cites its PSA source file.
static CHECKS: &[Check] = &[
    // policy/check_appArmorProfile.go: annotations and (since they exist) the fields, all versions.
    Check {
        id: "appArmorProfile",
        reason: "app-armor-profile",
        level: Level::Baseline,
        revisions: &[rev(0, app_armor_profile::v1_0)],
    },
    // policy/check_capabilities_baseline.go
    Check {
        id: "capabilities_baseline",
        reason: "capabilities-baseline",
        level: Level::Baseline,
        revisions: &[rev(0, capabilities_baseline::v1_0)],
    },
    // policy/check_hostNamespaces.go
    Check {
        id: "hostNamespaces",
        reason: "host-namespaces",
        level: Level::Baseline,
        revisions: &[rev(0, host_namespaces::v1_0)],
    },
    // policy/check_hostPathVolumes.go
    Check {
        id: "hostPathVolumes",
        reason: "host-path-volumes",
        level: Level::Baseline,
        revisions: &[rev(0, host_path_volumes::v1_0)],
    },
    // policy/check_hostPorts.go
    Check {
        id: "hostPorts",
        reason: "host-ports",
        level: Level::Baseline,
        revisions: &[rev(0, host_ports::v1_0)],
    },
    // policy/check_hostProbesAndhostLifecycle.go: from v1.34 (KEP-4940).
    Check {
        id: "hostProbesAndHostLifecycle",
        reason: "host-probes-and-host-lifecycle",
        level: Level::Baseline,
        revisions: &[rev(34, host_probes_and_host_lifecycle::v1_34)],
    },
    // policy/check_privileged.go
    Check {
        id: "privileged",
        reason: "privileged",
        level: Level::Baseline,
        revisions: &[rev(0, privileged::v1_0)],
    },
    // policy/check_procMount_baseline.go: relaxed for user-namespace pods from v1.35.
    Check {
        id: "procMount",
        reason: "proc-mount",
        level: Level::Baseline,
        revisions: &[
            rev(0, proc_mount::v1_0),
            rev(35, proc_mount::baseline_v1_35),
        ],
    },
    // policy/check_seLinuxOptions.go: container_engine_t allowed from v1.31.
    Check {
        id: "seLinuxOptions",
        reason: "se-linux-options",
        level: Level::Baseline,
        revisions: &[
            rev(0, se_linux_options::v1_0),
            rev(31, se_linux_options::v1_31),
        ],
    },
    // policy/check_seccompProfile_baseline.go: annotations before v1.19, fields from v1.19.
    Check {
        id: "seccompProfile_baseline",
        reason: "seccomp-profile-baseline",
        level: Level::Baseline,
        revisions: &[
            rev(0, seccomp_profile_baseline::annotations_v1_0),
            rev(19, seccomp_profile_baseline::fields_v1_19),
        ],
    },
    // policy/check_sysctls.go: the safe set grows in v1.27, v1.29, v1.32 and v1.37.
    Check {
        id: "sysctls",
        reason: "sysctls",
        level: Level::Baseline,
        revisions: &[
            rev(0, sysctls::v1_0),
            rev(27, sysctls::v1_27),
            rev(29, sysctls::v1_29),
            rev(32, sysctls::v1_32),
            rev(37, sysctls::v1_37),
        ],
    },
    // policy/check_windowsHostProcess.go
    Check {
        id: "windowsHostProcess",
        reason: "windows-host-process",
        level: Level::Baseline,
        revisions: &[rev(0, windows_host_process::v1_0)],
    },
    // policy/check_allowPrivilegeEscalation.go: from v1.8; Windows pods exempt from v1.25.
    Check {
        id: "allowPrivilegeEscalation",
        reason: "allow-privilege-escalation",
        level: Level::Restricted,
        revisions: &[
            rev(8, allow_privilege_escalation::v1_8),
            rev(25, allow_privilege_escalation::v1_25),
        ],
    },
    // policy/check_capabilities_restricted.go: from v1.22; Windows pods exempt from v1.25.
    Check {
        id: "capabilities_restricted",
        reason: "capabilities-restricted",
        level: Level::Restricted,
        revisions: &[
            rev_overriding(
                22,
                capabilities_restricted::v1_22,
                &["capabilities_baseline"],
            ),
            rev_overriding(
                25,
                capabilities_restricted::v1_25,
                &["capabilities_baseline"],
            ),
        ],
    },
    // policy/check_procMount_restricted.go: keeps the unconditional check from v1.35.
    Check {
        id: "procMount_restricted",
        reason: "proc-mount-restricted",
        level: Level::Restricted,
        revisions: &[rev_overriding(35, proc_mount::v1_0, &["procMount"])],
    },
    // policy/check_restrictedVolumes.go
    Check {
        id: "restrictedVolumes",
        reason: "restricted-volumes",
        level: Level::Restricted,
        revisions: &[rev_overriding(
            0,
            restricted_volumes::v1_0,
            &["hostPathVolumes"],
        )],
    },
    // policy/check_runAsNonRoot.go: relaxed for user-namespace pods from v1.35.
    Check {
        id: "runAsNonRoot",
        reason: "run-as-non-root",
        level: Level::Restricted,
        revisions: &[
            rev(0, run_as_non_root::v1_0),
            rev(35, run_as_non_root::v1_35),
        ],
    },
    // policy/check_runAsUser.go: from v1.23; relaxed for user-namespace pods from v1.35.
    Check {
        id: "runAsUser",
        reason: "run-as-user",
        level: Level::Restricted,
        revisions: &[rev(23, run_as_user::v1_23), rev(35, run_as_user::v1_35)],
    },
    // policy/check_seccompProfile_restricted.go: from v1.19; Windows pods exempt from v1.25.
    Check {
        id: "seccompProfile_restricted",
        reason: "seccomp-profile-restricted",
        level: Level::Restricted,
        revisions: &[
            rev_overriding(
                19,
                seccomp_profile_restricted::v1_19,
                &["seccompProfile_baseline"],
            ),
            rev_overriding(
                25,
                seccomp_profile_restricted::v1_25,
                &["seccompProfile_baseline"],
            ),
        ],
    },
];

/// One failed check: its verdict reason and PSA's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The check's kebab-case id (`run-as-non-root`).
    pub(crate) check: &'static str,
    /// What the check reported.
    pub(crate) violation: Violation,
}

/// Runs every check that applies to `level` at Kubernetes v1.`minor` and returns the failures
/// in PSA's order; empty when the pod is allowed (always, for `privileged`).
pub(crate) fn evaluate(level: Level, minor: u64, pod: &Pod) -> Vec<Failure> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let overridden: Vec<&str> = if level == Level::Restricted {
        CHECKS
            .iter()
            .filter(|c| c.level == Level::Restricted)
            .filter_map(|c| c.at(minor))
            .flat_map(|r| r.overrides.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    CHECKS
        .iter()
        .filter(|c| level == Level::Restricted || c.level == Level::Baseline)
        .filter(|c| !overridden.contains(&c.id))
        .filter_map(|c| {
            let revision = c.at(minor)?;
            let violation = (revision.check)(pod)?;
            Some(Failure {
                check: c.reason,
                violation,
            })
        })
        .collect()
}

/// PSA's `AggregateCheckResult.ForbiddenDetail`: `reason (detail), reason (detail)`.
pub(crate) fn describe(failures: &[Failure]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|f| {
            if f.violation.detail.is_empty() {
                f.violation.reason.clone()
            } else {
                format!("{} ({})", f.violation.reason, f.violation.detail)
            }
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
#[expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn kebab(id: &str) -> String {
        let mut out = String::new();
        for c in id.chars() {
            if c.is_ascii_uppercase() {
                out.push('-');
                out.push(c.to_ascii_lowercase());
            } else if c == '_' {
                out.push('-');
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn reasons_are_the_kebab_case_ids() {
        for check in CHECKS {
            assert_eq!(check.reason, kebab(check.id), "{}", check.id);
        }
    }

    #[test]
    fn checks_are_in_psa_order() {
        let baseline: Vec<&str> = CHECKS
            .iter()
            .filter(|c| c.level == Level::Baseline)
            .map(|c| c.id)
            .collect();
        let restricted: Vec<&str> = CHECKS
            .iter()
            .filter(|c| c.level == Level::Restricted)
            .map(|c| c.id)
            .collect();
        let mut sorted = baseline.clone();
        sorted.sort_unstable();
        assert_eq!(baseline, sorted);
        let mut sorted = restricted.clone();
        sorted.sort_unstable();
        assert_eq!(restricted, sorted);
        let all: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        assert_eq!(all, [baseline, restricted].concat());
    }

    #[test]
    fn revisions_increase_and_overrides_name_baseline_checks() {
        for check in CHECKS {
            assert!(check.revisions.windows(2).all(|w| w[0].since < w[1].since));
            for revision in check.revisions {
                for id in revision.overrides {
                    assert_eq!(check.level, Level::Restricted);
                    let target = CHECKS.iter().find(|c| c.id == *id).unwrap();
                    assert_eq!(target.level, Level::Baseline);
                }
            }
        }
    }

    #[test]
    fn newest_minor_is_the_newest_revision() {
        let newest = CHECKS
            .iter()
            .flat_map(|c| c.revisions.iter().map(|r| r.since))
            .max()
            .unwrap();
        assert_eq!(newest, crate::version::NEWEST_MINOR);
    }

    fn pod(json: &str) -> Pod<'_> {
        serde_json::from_str(json).unwrap()
    }

    fn reasons(level: Level, minor: u64, json: &str) -> Vec<&'static str> {
        evaluate(level, minor, &pod(json))
            .into_iter()
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn privileged_allows_everything() {
        let json = r#"{"spec": {"hostPID": true, "containers": [{"name": "a",
            "securityContext": {"privileged": true}}]}}"#;
        assert!(reasons(Level::Privileged, 37, json).is_empty());
        assert_eq!(
            reasons(Level::Baseline, 37, json),
            ["host-namespaces", "privileged"]
        );
    }

    #[test]
    fn restricted_checks_replace_the_baseline_checks_they_override() {
        let json = r#"{"spec": {"volumes": [{"name": "h", "hostPath": {}}],
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}}]}}"#;
        assert_eq!(
            reasons(Level::Baseline, 37, json),
            [
                "capabilities-baseline",
                "host-path-volumes",
                "seccomp-profile-baseline"
            ]
        );
        assert_eq!(
            reasons(Level::Restricted, 37, json),
            [
                "capabilities-restricted",
                "restricted-volumes",
                "seccomp-profile-restricted"
            ]
        );
        // Before v1.22 the baseline capability check still runs; before v1.19 seccomp is read
        // from the annotations only.
        assert_eq!(
            reasons(Level::Restricted, 18, json),
            ["capabilities-baseline", "restricted-volumes"]
        );
    }

    #[test]
    fn describes_failures_as_psa_does() {
        let failures = [
            Failure {
                check: "a",
                violation: Violation::new("host ports", "8080"),
            },
            Failure {
                check: "b",
                violation: Violation::new("privileged", ""),
            },
        ];
        assert_eq!(describe(&failures), "host ports (8080), privileged");
    }
}
