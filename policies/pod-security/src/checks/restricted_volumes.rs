//! Restricted `restrictedVolumes` (PSA `policy/check_restrictedVolumes.go`): only the core
//! volume types (and volumes backed by PersistentVolumes) may be used; replaces the baseline
//! hostPath check.

use std::collections::BTreeSet;

use super::Violation;
use super::phrase::{join_quote, named, pluralize};
use crate::model::{Pod, Volume};

/// The first restricted source a volume sets, as PSA names it, or `unknown` for a volume that
/// sets none of the sources PSA knows. A volume that sets no source at all is an `emptyDir`: the
/// API server defaults it so before admission (`SetDefaults_Volume`), which PSA relies on.
fn restricted_type(volume: &Volume) -> Option<&'static str> {
    let allowed = [
        &volume.config_map,
        &volume.csi,
        &volume.downward_api,
        &volume.empty_dir,
        &volume.ephemeral,
        &volume.image,
        &volume.persistent_volume_claim,
        &volume.projected,
        &volume.secret,
    ];
    if allowed.iter().any(|source| source.is_some()) {
        return None;
    }
    let restricted = [
        (&volume.host_path, "hostPath"),
        (&volume.gce_persistent_disk, "gcePersistentDisk"),
        (&volume.aws_elastic_block_store, "awsElasticBlockStore"),
        (&volume.git_repo, "gitRepo"),
        (&volume.nfs, "nfs"),
        (&volume.iscsi, "iscsi"),
        (&volume.glusterfs, "glusterfs"),
        (&volume.rbd, "rbd"),
        (&volume.flex_volume, "flexVolume"),
        (&volume.cinder, "cinder"),
        (&volume.cephfs, "cephfs"),
        (&volume.flocker, "flocker"),
        (&volume.fc, "fc"),
        (&volume.azure_file, "azureFile"),
        (&volume.vsphere_volume, "vsphereVolume"),
        (&volume.quobyte, "quobyte"),
        (&volume.azure_disk, "azureDisk"),
        (&volume.photon_persistent_disk, "photonPersistentDisk"),
        (&volume.portworx_volume, "portworxVolume"),
        (&volume.scale_io, "scaleIO"),
        (&volume.storageos, "storageos"),
    ];
    match restricted
        .into_iter()
        .find_map(|(source, name)| source.is_some().then_some(name))
    {
        Some(name) => Some(name),
        None if volume.other == 0 => None,
        None => Some("unknown"),
    }
}

/// v1.0+: every `spec.volumes[*]` must be `configMap`, `csi`, `downwardAPI`, `emptyDir`,
/// `ephemeral`, `image`, `persistentVolumeClaim`, `projected` or `secret`.
pub(super) fn v1_0(pod: &Pod) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for volume in &pod.spec.volumes {
        if let Some(kind) = restricted_type(volume) {
            bad.push(volume.name.as_str());
            kinds.insert(kind);
        }
    }
    (!bad.is_empty()).then(|| {
        Violation::new(
            "restricted volume types",
            format!(
                "{} {} {} {}",
                named("volume", "volumes", &bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "restricted volume type",
                    "restricted volume types",
                    kinds.len()
                ),
                join_quote(&kinds)
            ),
        )
    })
}
