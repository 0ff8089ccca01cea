//! The subset of the Kubernetes `core/v1` Pod API the Pod Security Standards read, with the API's
//! own JSON names. Parsed leniently: unknown fields are ignored and `null` means "unset".

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Deserializes `null` as the type's default, as Go's JSON decoding does for slices, maps and
/// scalars, so a `null` list in an object never fails the request.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Pod, or a `PodTemplateSpec` (the same two fields): what the Pod Security Standards evaluate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// `metadata`: only the annotations matter to the checks.
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    /// `spec`: the pod specification.
    #[serde(deserialize_with = "null_as_default")]
    pub spec: PodSpec,
}

/// `metav1.ObjectMeta`, reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// `metadata.annotations`: read for the AppArmor and (before v1.19) seccomp annotations.
    #[serde(deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
}

/// `core/v1` `PodSpec`, reduced to what the checks and the exemptions read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// `spec.volumes`.
    #[serde(deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// `spec.initContainers`.
    #[serde(deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container>,
    /// `spec.containers`.
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    /// `spec.ephemeralContainers` (`EphemeralContainerCommon` has the container fields read here).
    #[serde(deserialize_with = "null_as_default")]
    pub ephemeral_containers: Vec<Container>,
    /// `spec.hostNetwork`.
    #[serde(deserialize_with = "null_as_default")]
    pub host_network: bool,
    /// `spec.hostPID`.
    #[serde(rename = "hostPID", deserialize_with = "null_as_default")]
    pub host_pid: bool,
    /// `spec.hostIPC`.
    #[serde(rename = "hostIPC", deserialize_with = "null_as_default")]
    pub host_ipc: bool,
    /// `spec.hostUsers`: `false` puts the pod in a user namespace.
    pub host_users: Option<bool>,
    /// `spec.securityContext`.
    pub security_context: Option<PodSecurityContext>,
    /// `spec.runtimeClassName`: matched against the runtime-class exemptions.
    pub runtime_class_name: Option<String>,
    /// `spec.os`.
    pub os: Option<PodOs>,
}

impl PodSpec {
    /// Every container in PSA's visiting order: init containers, containers, ephemeral containers
    /// (`policy/visitor.go`).
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .chain(&self.ephemeral_containers)
    }

    /// Whether `spec.os.name` is `windows`, which relaxes some restricted checks from v1.25.
    #[must_use]
    pub fn is_windows(&self) -> bool {
        self.os.as_ref().is_some_and(|os| os.name == "windows")
    }

    /// Whether the pod runs in a user namespace (`spec.hostUsers: false`), which relaxes some
    /// checks from v1.35 (PSA `relaxPolicyForUserNamespacePod`).
    #[must_use]
    pub fn in_user_namespace(&self) -> bool {
        self.host_users == Some(false)
    }
}

/// `core/v1` `PodOS`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodOs {
    /// `spec.os.name`: `linux` or `windows`.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

/// `core/v1` `PodSecurityContext`, reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSecurityContext {
    /// `spec.securityContext.runAsNonRoot`.
    pub run_as_non_root: Option<bool>,
    /// `spec.securityContext.runAsUser`.
    pub run_as_user: Option<i64>,
    /// `spec.securityContext.seLinuxOptions`.
    #[serde(rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions>,
    /// `spec.securityContext.seccompProfile`.
    pub seccomp_profile: Option<Profile>,
    /// `spec.securityContext.appArmorProfile`.
    pub app_armor_profile: Option<Profile>,
    /// `spec.securityContext.sysctls`.
    #[serde(deserialize_with = "null_as_default")]
    pub sysctls: Vec<Sysctl>,
    /// `spec.securityContext.windowsOptions`.
    pub windows_options: Option<WindowsOptions>,
}

/// `core/v1` `Container` (and `EphemeralContainerCommon`), reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// `name`: named in every message.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// `image`: an UPDATE that changes it is re-evaluated.
    #[serde(deserialize_with = "null_as_default")]
    pub image: String,
    /// `ports`.
    #[serde(deserialize_with = "null_as_default")]
    pub ports: Vec<ContainerPort>,
    /// `securityContext`.
    pub security_context: Option<SecurityContext>,
    /// `livenessProbe`.
    pub liveness_probe: Option<Handler>,
    /// `readinessProbe`.
    pub readiness_probe: Option<Handler>,
    /// `startupProbe`.
    pub startup_probe: Option<Handler>,
    /// `lifecycle`.
    pub lifecycle: Option<Lifecycle>,
}

/// `core/v1` `ContainerPort`, reduced to `hostPort`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    /// `ports[*].hostPort`: 0 when unset.
    #[serde(deserialize_with = "null_as_default")]
    pub host_port: i32,
}

/// `core/v1` `SecurityContext` (container level), reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityContext {
    /// `securityContext.privileged`.
    pub privileged: Option<bool>,
    /// `securityContext.allowPrivilegeEscalation`.
    pub allow_privilege_escalation: Option<bool>,
    /// `securityContext.capabilities`.
    pub capabilities: Option<Capabilities>,
    /// `securityContext.procMount`: `Default` or `Unmasked`.
    pub proc_mount: Option<String>,
    /// `securityContext.runAsNonRoot`.
    pub run_as_non_root: Option<bool>,
    /// `securityContext.runAsUser`.
    pub run_as_user: Option<i64>,
    /// `securityContext.seLinuxOptions`.
    #[serde(rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions>,
    /// `securityContext.seccompProfile`.
    pub seccomp_profile: Option<Profile>,
    /// `securityContext.appArmorProfile`.
    pub app_armor_profile: Option<Profile>,
    /// `securityContext.windowsOptions`.
    pub windows_options: Option<WindowsOptions>,
}

/// `core/v1` `Capabilities`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    /// `capabilities.add`.
    #[serde(deserialize_with = "null_as_default")]
    pub add: Vec<String>,
    /// `capabilities.drop`.
    #[serde(deserialize_with = "null_as_default")]
    pub drop: Vec<String>,
}

/// `core/v1` `SeccompProfile` or `AppArmorProfile`, reduced to `type`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    /// `type`: `RuntimeDefault`, `Localhost` or `Unconfined`; empty when missing.
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub kind: String,
}

/// `core/v1` `SELinuxOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeLinuxOptions {
    /// `seLinuxOptions.user`.
    #[serde(deserialize_with = "null_as_default")]
    pub user: String,
    /// `seLinuxOptions.role`.
    #[serde(deserialize_with = "null_as_default")]
    pub role: String,
    /// `seLinuxOptions.type`.
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub kind: String,
}

/// `core/v1` `Sysctl`, reduced to `name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sysctl {
    /// `sysctls[*].name`.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
}

/// `core/v1` `WindowsSecurityContextOptions`, reduced to `hostProcess`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WindowsOptions {
    /// `windowsOptions.hostProcess`.
    pub host_process: Option<bool>,
}

/// A `core/v1` `Probe` or `LifecycleHandler`: both carry `httpGet` and `tcpSocket` with a `host`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Handler {
    /// `httpGet`.
    pub http_get: Option<HostAction>,
    /// `tcpSocket`.
    pub tcp_socket: Option<HostAction>,
}

impl Handler {
    /// The non-empty `host` values of `httpGet` and `tcpSocket`, in that order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        [self.http_get.as_ref(), self.tcp_socket.as_ref()]
            .into_iter()
            .flatten()
            .map(|action| action.host.as_str())
            .filter(|host| !host.is_empty())
    }
}

/// `core/v1` `HTTPGetAction` or `TCPSocketAction`, reduced to `host`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostAction {
    /// `host`: empty when unset.
    #[serde(deserialize_with = "null_as_default")]
    pub host: String,
}

/// `core/v1` `Lifecycle`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lifecycle {
    /// `lifecycle.postStart`.
    pub post_start: Option<Handler>,
    /// `lifecycle.preStop`.
    pub pre_stop: Option<Handler>,
}

/// A present, non-null volume source; its content does not matter to the checks.
pub type Source = Option<serde::de::IgnoredAny>;

/// `core/v1` `Volume`: its name and which source (`VolumeSource`, inlined) is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[expect(
    missing_docs,
    reason = "each source field is the `VolumeSource` member of the same JSON name"
)]
pub struct Volume {
    /// `volumes[*].name`.
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    pub host_path: Source,
    pub empty_dir: Source,
    pub gce_persistent_disk: Source,
    pub aws_elastic_block_store: Source,
    pub git_repo: Source,
    pub secret: Source,
    pub nfs: Source,
    pub iscsi: Source,
    pub glusterfs: Source,
    pub persistent_volume_claim: Source,
    pub rbd: Source,
    pub flex_volume: Source,
    pub cinder: Source,
    pub cephfs: Source,
    pub flocker: Source,
    #[serde(rename = "downwardAPI")]
    pub downward_api: Source,
    pub fc: Source,
    pub azure_file: Source,
    pub config_map: Source,
    pub vsphere_volume: Source,
    pub quobyte: Source,
    pub azure_disk: Source,
    pub photon_persistent_disk: Source,
    pub projected: Source,
    pub portworx_volume: Source,
    #[serde(rename = "scaleIO")]
    pub scale_io: Source,
    pub storageos: Source,
    pub csi: Source,
    pub ephemeral: Source,
    pub image: Source,
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn null_lists_and_objects_read_as_unset() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata": {"annotations": null}, "spec": {"containers": null,
                "securityContext": null, "volumes": [{"name": "v", "hostPath": null}]}}"#,
        )
        .unwrap();
        assert!(pod.metadata.annotations.is_empty());
        assert!(pod.spec.containers.is_empty());
        assert!(pod.spec.security_context.is_none());
        assert!(pod.spec.volumes.first().unwrap().host_path.is_none());
    }

    #[test]
    fn volume_sources_use_the_api_json_names() {
        let volume: Volume = serde_json::from_str(
            r#"{"name": "v", "downwardAPI": {}, "scaleIO": {"x": 1}, "cephfs": {}}"#,
        )
        .unwrap();
        assert!(volume.downward_api.is_some());
        assert!(volume.scale_io.is_some());
        assert!(volume.cephfs.is_some());
        assert!(volume.host_path.is_none());
    }

    #[test]
    fn visits_init_then_regular_then_ephemeral_containers() {
        let spec: PodSpec = serde_json::from_str(
            r#"{"containers": [{"name": "b"}], "ephemeralContainers": [{"name": "c"}],
                "initContainers": [{"name": "a"}]}"#,
        )
        .unwrap();
        let names: Vec<&str> = spec.all_containers().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
