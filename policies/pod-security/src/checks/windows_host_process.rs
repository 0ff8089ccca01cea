//! Baseline `windowsHostProcess` (PSA `policy/check_windowsHostProcess.go`): no Windows
//! HostProcess containers.

use super::Violation;
use super::phrase::containers;
use crate::model::{Pod, WindowsOptions};

fn host_process(options: Option<&WindowsOptions>) -> bool {
    options.and_then(|o| o.host_process) == Some(true)
}

/// v1.0+: `securityContext.windowsOptions.hostProcess` of the pod and of every container must be
/// false or unset.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let bad: Vec<&str> = pod
        .spec
        .all_containers()
        .filter(|c| {
            host_process(
                c.security_context
                    .as_ref()
                    .and_then(|s| s.windows_options.as_ref()),
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    let mut setters = Vec::new();
    let pod_options = pod.spec.security_context.as_ref();
    if host_process(pod_options.and_then(|s| s.windows_options.as_ref())) {
        setters.push("pod".to_owned());
    }
    if !bad.is_empty() {
        setters.push(containers(&bad));
    }
    (!setters.is_empty()).then(|| {
        Violation::new(
            "hostProcess",
            format!(
                "{} must not set securityContext.windowsOptions.hostProcess=true",
                setters.join(" and ")
            ),
        )
    })
}
