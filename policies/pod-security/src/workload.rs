//! The typed pod template of the workload kinds that embed one (PSA `DefaultPodSpecExtractor`
//! in `admission/admission.go`); which kinds those are and where they keep it is the SDK's
//! [`pods`](palisade_sdk::pods).

use palisade_sdk::PolicyError;
use palisade_sdk::pods::Workload;
use palisade_sdk::wire::AdmissionRequest;
use serde::Deserialize;

use crate::model::Pod;

/// The typed pod template of a workload request.
pub(crate) trait PodTemplate {
    /// The pod template of the request's object: metadata (whose annotations count as the
    /// pod's) and spec. `None` only for a ReplicationController without `spec.template`, which
    /// PSA skips; the other kinds hold the template by value, so a missing one is an empty pod.
    ///
    /// # Errors
    /// [`PolicyError::InvalidRequest`] when the request has no object or it does not parse.
    fn pod_template(self, request: &AdmissionRequest) -> Result<Option<Pod<'_>>, PolicyError>;
}

impl PodTemplate for Workload {
    fn pod_template(self, request: &AdmissionRequest) -> Result<Option<Pod<'_>>, PolicyError> {
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
