//! The subset of the Kubernetes `core/v1` Pod API the Pod Security Standards read, with the API's
//! own JSON names. Parsed leniently: unknown fields are ignored and `null` means "unset".

use palisade_sdk::wire::Text;
use serde::de::{MapAccess, Visitor};
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
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Pod<'a> {
    /// `metadata`: only the annotations matter to the checks.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) metadata: ObjectMeta<'a>,
    /// `spec`: the pod specification.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) spec: PodSpec<'a>,
}

/// `metav1.ObjectMeta`, reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct ObjectMeta<'a> {
    /// `metadata.annotations`: read for the AppArmor and (before v1.19) seccomp annotations.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) annotations: BTreeMap<Text<'a>, Text<'a>>,
}

/// `core/v1` `PodSpec`, reduced to what the checks and the exemptions read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct PodSpec<'a> {
    /// `spec.volumes`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) volumes: Vec<Volume<'a>>,
    /// `spec.initContainers`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) init_containers: Vec<Container<'a>>,
    /// `spec.containers`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) containers: Vec<Container<'a>>,
    /// `spec.ephemeralContainers` (`EphemeralContainerCommon` has the container fields read here).
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) ephemeral_containers: Vec<Container<'a>>,
    /// `spec.hostNetwork`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) host_network: bool,
    /// `spec.hostPID`.
    #[serde(rename = "hostPID", deserialize_with = "null_as_default")]
    pub(crate) host_pid: bool,
    /// `spec.hostIPC`.
    #[serde(rename = "hostIPC", deserialize_with = "null_as_default")]
    pub(crate) host_ipc: bool,
    /// `spec.hostUsers`: `false` puts the pod in a user namespace.
    pub(crate) host_users: Option<bool>,
    /// `spec.securityContext`.
    pub(crate) security_context: Option<PodSecurityContext<'a>>,
    /// `spec.runtimeClassName`: matched against the runtime-class exemptions.
    pub(crate) runtime_class_name: Option<Text<'a>>,
    /// `spec.os`.
    pub(crate) os: Option<PodOs<'a>>,
}

impl PodSpec<'_> {
    /// Every container in PSA's visiting order: init containers, containers, ephemeral containers
    /// (`policy/visitor.go`).
    pub(crate) fn all_containers(&self) -> impl Iterator<Item = &Container<'_>> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .chain(&self.ephemeral_containers)
    }

    /// Whether `spec.os.name` is `windows`, which relaxes some restricted checks from v1.25.
    #[must_use]
    pub(crate) fn is_windows(&self) -> bool {
        self.os.as_ref().is_some_and(|os| os.name == "windows")
    }

    /// Whether the pod runs in a user namespace (`spec.hostUsers: false`), which relaxes some
    /// checks from v1.35 (PSA `relaxPolicyForUserNamespacePod`).
    #[must_use]
    pub(crate) fn in_user_namespace(&self) -> bool {
        self.host_users == Some(false)
    }
}

/// `core/v1` `PodOS`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct PodOs<'a> {
    /// `spec.os.name`: `linux` or `windows`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) name: Text<'a>,
}

/// `core/v1` `PodSecurityContext`, reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct PodSecurityContext<'a> {
    /// `spec.securityContext.runAsNonRoot`.
    pub(crate) run_as_non_root: Option<bool>,
    /// `spec.securityContext.runAsUser`.
    pub(crate) run_as_user: Option<i64>,
    /// `spec.securityContext.seLinuxOptions`.
    #[serde(rename = "seLinuxOptions")]
    pub(crate) se_linux_options: Option<SeLinuxOptions<'a>>,
    /// `spec.securityContext.seccompProfile`.
    pub(crate) seccomp_profile: Option<Profile<'a>>,
    /// `spec.securityContext.appArmorProfile`.
    pub(crate) app_armor_profile: Option<Profile<'a>>,
    /// `spec.securityContext.sysctls`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) sysctls: Vec<Sysctl<'a>>,
    /// `spec.securityContext.windowsOptions`.
    pub(crate) windows_options: Option<WindowsOptions>,
}

/// `core/v1` `Container` (and `EphemeralContainerCommon`), reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Container<'a> {
    /// `name`: named in every message.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) name: Text<'a>,
    /// `image`: an UPDATE that changes it is re-evaluated.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) image: Text<'a>,
    /// `ports`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) ports: Vec<ContainerPort>,
    /// `securityContext`.
    pub(crate) security_context: Option<SecurityContext<'a>>,
    /// `livenessProbe`.
    pub(crate) liveness_probe: Option<Handler<'a>>,
    /// `readinessProbe`.
    pub(crate) readiness_probe: Option<Handler<'a>>,
    /// `startupProbe`.
    pub(crate) startup_probe: Option<Handler<'a>>,
    /// `lifecycle`.
    pub(crate) lifecycle: Option<Lifecycle<'a>>,
}

/// `core/v1` `ContainerPort`, reduced to `hostPort`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ContainerPort {
    /// `ports[*].hostPort`: 0 when unset.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) host_port: i32,
}

/// `core/v1` `SecurityContext` (container level), reduced to what the checks read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct SecurityContext<'a> {
    /// `securityContext.privileged`.
    pub(crate) privileged: Option<bool>,
    /// `securityContext.allowPrivilegeEscalation`.
    pub(crate) allow_privilege_escalation: Option<bool>,
    /// `securityContext.capabilities`.
    pub(crate) capabilities: Option<Capabilities<'a>>,
    /// `securityContext.procMount`: `Default` or `Unmasked`.
    pub(crate) proc_mount: Option<Text<'a>>,
    /// `securityContext.runAsNonRoot`.
    pub(crate) run_as_non_root: Option<bool>,
    /// `securityContext.runAsUser`.
    pub(crate) run_as_user: Option<i64>,
    /// `securityContext.seLinuxOptions`.
    #[serde(rename = "seLinuxOptions")]
    pub(crate) se_linux_options: Option<SeLinuxOptions<'a>>,
    /// `securityContext.seccompProfile`.
    pub(crate) seccomp_profile: Option<Profile<'a>>,
    /// `securityContext.appArmorProfile`.
    pub(crate) app_armor_profile: Option<Profile<'a>>,
    /// `securityContext.windowsOptions`.
    pub(crate) windows_options: Option<WindowsOptions>,
}

/// `core/v1` `Capabilities`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Capabilities<'a> {
    /// `capabilities.add`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) add: Vec<Text<'a>>,
    /// `capabilities.drop`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) drop: Vec<Text<'a>>,
}

/// `core/v1` `SeccompProfile` or `AppArmorProfile`, reduced to `type`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Profile<'a> {
    /// `type`: `RuntimeDefault`, `Localhost` or `Unconfined`; empty when missing.
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub(crate) kind: Text<'a>,
}

/// `core/v1` `SELinuxOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct SeLinuxOptions<'a> {
    /// `seLinuxOptions.user`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) user: Text<'a>,
    /// `seLinuxOptions.role`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) role: Text<'a>,
    /// `seLinuxOptions.type`.
    #[serde(rename = "type", deserialize_with = "null_as_default")]
    pub(crate) kind: Text<'a>,
}

/// `core/v1` `Sysctl`, reduced to `name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Sysctl<'a> {
    /// `sysctls[*].name`.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) name: Text<'a>,
}

/// `core/v1` `WindowsSecurityContextOptions`, reduced to `hostProcess`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct WindowsOptions {
    /// `windowsOptions.hostProcess`.
    pub(crate) host_process: Option<bool>,
}

/// A `core/v1` `Probe` or `LifecycleHandler`: both carry `httpGet` and `tcpSocket` with a `host`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Handler<'a> {
    /// `httpGet`.
    pub(crate) http_get: Option<HostAction<'a>>,
    /// `tcpSocket`.
    pub(crate) tcp_socket: Option<HostAction<'a>>,
}

impl Handler<'_> {
    /// The non-empty `host` values of `httpGet` and `tcpSocket`, in that order.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = &str> {
        [self.http_get.as_ref(), self.tcp_socket.as_ref()]
            .into_iter()
            .flatten()
            .map(|action| action.host.as_str())
            .filter(|host| !host.is_empty())
    }
}

/// `core/v1` `HTTPGetAction` or `TCPSocketAction`, reduced to `host`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct HostAction<'a> {
    /// `host`: empty when unset.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) host: Text<'a>,
}

/// `core/v1` `Lifecycle`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub(crate) struct Lifecycle<'a> {
    /// `lifecycle.postStart`.
    pub(crate) post_start: Option<Handler<'a>>,
    /// `lifecycle.preStop`.
    pub(crate) pre_stop: Option<Handler<'a>>,
}

/// A present, non-null volume source; its content does not matter to the checks.
pub(crate) type Source = Option<serde::de::IgnoredAny>;

/// `core/v1` `Volume`: its name and which source (`VolumeSource`, inlined) is set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Volume<'a> {
    /// `volumes[*].name`.
    pub(crate) name: Text<'a>,
    /// `volumes[*].hostPath`.
    pub(crate) host_path: Source,
    /// `volumes[*].emptyDir`.
    pub(crate) empty_dir: Source,
    /// `volumes[*].gcePersistentDisk`.
    pub(crate) gce_persistent_disk: Source,
    /// `volumes[*].awsElasticBlockStore`.
    pub(crate) aws_elastic_block_store: Source,
    /// `volumes[*].gitRepo`.
    pub(crate) git_repo: Source,
    /// `volumes[*].secret`.
    pub(crate) secret: Source,
    /// `volumes[*].nfs`.
    pub(crate) nfs: Source,
    /// `volumes[*].iscsi`.
    pub(crate) iscsi: Source,
    /// `volumes[*].glusterfs`.
    pub(crate) glusterfs: Source,
    /// `volumes[*].persistentVolumeClaim`.
    pub(crate) persistent_volume_claim: Source,
    /// `volumes[*].rbd`.
    pub(crate) rbd: Source,
    /// `volumes[*].flexVolume`.
    pub(crate) flex_volume: Source,
    /// `volumes[*].cinder`.
    pub(crate) cinder: Source,
    /// `volumes[*].cephfs`.
    pub(crate) cephfs: Source,
    /// `volumes[*].flocker`.
    pub(crate) flocker: Source,
    /// `volumes[*].downwardAPI`.
    pub(crate) downward_api: Source,
    /// `volumes[*].fc`.
    pub(crate) fc: Source,
    /// `volumes[*].azureFile`.
    pub(crate) azure_file: Source,
    /// `volumes[*].configMap`.
    pub(crate) config_map: Source,
    /// `volumes[*].vsphereVolume`.
    pub(crate) vsphere_volume: Source,
    /// `volumes[*].quobyte`.
    pub(crate) quobyte: Source,
    /// `volumes[*].azureDisk`.
    pub(crate) azure_disk: Source,
    /// `volumes[*].photonPersistentDisk`.
    pub(crate) photon_persistent_disk: Source,
    /// `volumes[*].projected`.
    pub(crate) projected: Source,
    /// `volumes[*].portworxVolume`.
    pub(crate) portworx_volume: Source,
    /// `volumes[*].scaleIO`.
    pub(crate) scale_io: Source,
    /// `volumes[*].storageos`.
    pub(crate) storageos: Source,
    /// `volumes[*].csi`.
    pub(crate) csi: Source,
    /// `volumes[*].ephemeral`.
    pub(crate) ephemeral: Source,
    /// `volumes[*].image`.
    pub(crate) image: Source,
    /// How many other members it has: volume sources this model does not know.
    pub(crate) other: usize,
}

impl Volume<'_> {
    /// The source member named `key` (the API's JSON name), if this model knows it.
    fn source_mut(&mut self, key: &str) -> Option<&mut Source> {
        Some(match key {
            "hostPath" => &mut self.host_path,
            "emptyDir" => &mut self.empty_dir,
            "gcePersistentDisk" => &mut self.gce_persistent_disk,
            "awsElasticBlockStore" => &mut self.aws_elastic_block_store,
            "gitRepo" => &mut self.git_repo,
            "secret" => &mut self.secret,
            "nfs" => &mut self.nfs,
            "iscsi" => &mut self.iscsi,
            "glusterfs" => &mut self.glusterfs,
            "persistentVolumeClaim" => &mut self.persistent_volume_claim,
            "rbd" => &mut self.rbd,
            "flexVolume" => &mut self.flex_volume,
            "cinder" => &mut self.cinder,
            "cephfs" => &mut self.cephfs,
            "flocker" => &mut self.flocker,
            "downwardAPI" => &mut self.downward_api,
            "fc" => &mut self.fc,
            "azureFile" => &mut self.azure_file,
            "configMap" => &mut self.config_map,
            "vsphereVolume" => &mut self.vsphere_volume,
            "quobyte" => &mut self.quobyte,
            "azureDisk" => &mut self.azure_disk,
            "photonPersistentDisk" => &mut self.photon_persistent_disk,
            "projected" => &mut self.projected,
            "portworxVolume" => &mut self.portworx_volume,
            "scaleIO" => &mut self.scale_io,
            "storageos" => &mut self.storageos,
            "csi" => &mut self.csi,
            "ephemeral" => &mut self.ephemeral,
            "image" => &mut self.image,
            _ => return None,
        })
    }
}

/// Read member by member, without buffering: each known source is recorded as set or not
/// (its content skipped), other members are counted.
impl<'de: 'a, 'a> Deserialize<'de> for Volume<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VolumeVisitor<'a>(std::marker::PhantomData<Volume<'a>>);

        impl<'de: 'a, 'a> Visitor<'de> for VolumeVisitor<'a> {
            type Value = Volume<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a volume")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Volume<'a>, A::Error> {
                let mut volume = Volume::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if key == "name" {
                        volume.name = map.next_value::<Option<Text<'de>>>()?.unwrap_or_default();
                        continue;
                    }
                    let value: Source = map.next_value()?;
                    match volume.source_mut(&key) {
                        Some(source) => *source = value,
                        None => volume.other = volume.other.saturating_add(1),
                    }
                }
                Ok(volume)
            }
        }

        deserializer.deserialize_map(VolumeVisitor(std::marker::PhantomData))
    }
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
