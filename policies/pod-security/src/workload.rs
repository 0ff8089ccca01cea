//! The workload kinds that embed a pod template and where each keeps it (PSA
//! `DefaultPodSpecExtractor` in `admission/admission.go`).

use palisade_sdk::PolicyError;
use palisade_sdk::wire::AdmissionRequest;
use serde::Deserialize;

use crate::model::Pod;

/// A workload resource with a pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// `apps/v1` Deployment: `spec.template`.
    Deployment,
    /// `apps/v1` ReplicaSet: `spec.template`.
    ReplicaSet,
    /// `apps/v1` StatefulSet: `spec.template`.
    StatefulSet,
    /// `apps/v1` DaemonSet: `spec.template`.
    DaemonSet,
    /// `batch/v1` Job: `spec.template`.
    Job,
    /// `batch/v1` CronJob: `spec.jobTemplate.spec.template`.
    CronJob,
    /// `core/v1` ReplicationController: `spec.template`, which may be absent.
    ReplicationController,
    /// `core/v1` PodTemplate: `template`.
    PodTemplate,
}

impl Workload {
    /// The workload stored as `group`/`resource`, if it is one (PSA `defaultPodSpecResources`).
    pub(crate) fn from_resource(group: &str, resource: &str) -> Option<Self> {
        Some(match (group, resource) {
            ("apps", "deployments") => Self::Deployment,
            ("apps", "replicasets") => Self::ReplicaSet,
            ("apps", "statefulsets") => Self::StatefulSet,
            ("apps", "daemonsets") => Self::DaemonSet,
            ("batch", "jobs") => Self::Job,
            ("batch", "cronjobs") => Self::CronJob,
            ("", "replicationcontrollers") => Self::ReplicationController,
            ("", "podtemplates") => Self::PodTemplate,
            _ => return None,
        })
    }

    /// JSON Pointer of the pod spec inside the workload object.
    pub(crate) fn spec_pointer(self) -> &'static str {
        match self {
            Self::CronJob => "/spec/jobTemplate/spec/template/spec",
            Self::PodTemplate => "/template/spec",
            Self::Deployment
            | Self::ReplicaSet
            | Self::StatefulSet
            | Self::DaemonSet
            | Self::Job
            | Self::ReplicationController => "/spec/template/spec",
        }
    }

    /// The pod template of the request's object: metadata (whose annotations count as the pod's)
    /// and spec. `None` only for a ReplicationController without `spec.template`, which PSA
    /// skips; the other kinds hold the template by value, so a missing one is an empty pod.
    ///
    /// # Errors
    /// [`PolicyError::InvalidRequest`] when the request has no object or it does not parse.
    pub(crate) fn pod_template(
        self,
        request: &AdmissionRequest,
    ) -> Result<Option<Pod<'_>>, PolicyError> {
        let object: Object = request
            .object()?
            .ok_or_else(|| PolicyError::InvalidRequest("the request has no object".to_owned()))?;
        let spec = object.spec.unwrap_or_default();
        Ok(match self {
            Self::ReplicationController => spec.template,
            Self::PodTemplate => Some(object.template.unwrap_or_default()),
            Self::CronJob => Some(
                spec.job_template
                    .and_then(|j| j.spec)
                    .and_then(|s| s.template)
                    .unwrap_or_default(),
            ),
            Self::Deployment
            | Self::ReplicaSet
            | Self::StatefulSet
            | Self::DaemonSet
            | Self::Job => Some(spec.template.unwrap_or_default()),
        })
    }
}

/// The union of the workload shapes: `template` (PodTemplate) or `spec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
struct Object<'a> {
    template: Option<Pod<'a>>,
    spec: Option<Spec<'a>>,
}

/// A workload spec: `template` (most kinds) or `jobTemplate` (CronJob).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
struct Spec<'a> {
    template: Option<Pod<'a>>,
    job_template: Option<JobTemplate<'a>>,
}

/// `batch/v1` `JobTemplateSpec`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
struct JobTemplate<'a> {
    spec: Option<JobSpec<'a>>,
}

/// `batch/v1` `JobSpec`, reduced to `template`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
struct JobSpec<'a> {
    template: Option<Pod<'a>>,
}
