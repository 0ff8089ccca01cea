//! Which admission requests carry pods, and where their pod spec is: a Pod (and those of its
//! subresources that can change the spec, such as `ephemeralcontainers`) or one of the eight
//! workload kinds with a pod template (PSA's `DefaultPodSpecExtractor` and `Validate` in
//! `admission/admission.go`). Shared by every policy that checks pods.

use crate::wire::{AdmissionRequest, Operation, Rule};

/// A workload resource with a pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
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
    pub fn from_resource(group: &str, resource: &str) -> Option<Self> {
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
    pub fn spec_pointer(self) -> &'static str {
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
}

/// The admission rules of a policy that checks pod specs: CREATE and UPDATE of Pods (and of
/// their `ephemeralcontainers`), and of the eight workload kinds with a pod template.
#[must_use]
pub fn admission_rules() -> Vec<Rule> {
    let operations = [Operation::Create, Operation::Update];
    vec![
        Rule::new(
            &[""],
            &["v1"],
            &[
                "pods",
                "pods/ephemeralcontainers",
                "replicationcontrollers",
                "podtemplates",
            ],
            &operations,
        ),
        Rule::new(
            &["apps"],
            &["v1"],
            &["deployments", "replicasets", "statefulsets", "daemonsets"],
            &operations,
        ),
        Rule::new(&["batch"], &["v1"], &["jobs", "cronjobs"], &operations),
    ]
}

/// Pod subresources that cannot change the pod spec; every other pod subresource (for example
/// `ephemeralcontainers`) carries a Pod and is evaluated, so an unknown one fails safe.
const IGNORED_POD_SUBRESOURCES: [&str; 8] = [
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// What a request is, as far as Pod Security is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `core/v1` Pod (or one of its evaluated subresources).
    Pod,
    /// A workload whose pod template is evaluated.
    Workload(Workload),
    /// Not evaluated; the text says why.
    NotApplicable(String),
}

/// Classifies the request by its (possibly converted) `resource` and `subResource`.
pub fn classify(request: &AdmissionRequest) -> Target {
    let group = request.resource.group.as_str();
    let resource = request.resource.resource.as_str();
    let subresource = request.sub_resource.as_deref().unwrap_or_default();
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{group}/{resource}")
    };
    if group.is_empty() && resource == "pods" {
        return if IGNORED_POD_SUBRESOURCES.contains(&subresource) {
            Target::NotApplicable(format!(
                "subresource {qualified}/{subresource} cannot change the pod spec and is not checked"
            ))
        } else {
            Target::Pod
        };
    }
    match Workload::from_resource(group, resource) {
        Some(_) if !subresource.is_empty() => Target::NotApplicable(format!(
            "subresource {qualified}/{subresource} of a workload is not checked"
        )),
        Some(workload) => Target::Workload(workload),
        None => Target::NotApplicable(format!(
            "resource {qualified} is neither a pod nor a workload with a pod template"
        )),
    }
}

impl Target {
    /// JSON Pointer of the pod spec in the request's object, when it has one.
    #[must_use]
    pub fn spec_pointer(&self) -> Option<&'static str> {
        match self {
            Self::Pod => Some("/spec"),
            Self::Workload(workload) => Some(workload.spec_pointer()),
            Self::NotApplicable(_) => None,
        }
    }
}
