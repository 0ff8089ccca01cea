//! World `palisade:admission@0.1.0`, served by delegating to the newest: its one import (`log`)
//! is the newest's, requests are the newest's without the tapes, and its answers are converted
//! to the newest's types, which the rest of the host reads. It has no capabilities.

use palisade_sdk::SettingsError;
use palisade_sdk::wire::PolicyMetadata;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};

use super::State;
use super::bindings::exports::palisade::admission::policy as newest;
use super::bindings::palisade::admission::{log as newest_log, types as newest_types};
use super::convert;
use crate::LoadError;

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit/v0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        ownership: Borrowing { duplicate_if_necessary: false },
    });
}

use bindings::exports::palisade::admission::policy as abi;
use bindings::palisade::admission::{log, types};

/// The version of this world.
pub(super) const VERSION: &str = "0.1.0";

/// The pre-instantiated component.
pub(super) type Pre<T> = bindings::AdmissionPolicyPre<T>;
/// An instance.
pub(super) type Policy = bindings::AdmissionPolicy;

impl types::Host for State {}

impl log::Host for State {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => newest_log::Level::Trace,
            log::Level::Debug => newest_log::Level::Debug,
            log::Level::Info => newest_log::Level::Info,
            log::Level::Warn => newest_log::Level::Warn,
            log::Level::Error => newest_log::Level::Error,
        };
        newest_log::Host::log(self, level, message).await
    }
}

/// Links the world's imports and pre-instantiates the component.
pub(super) fn link(
    linker: &mut Linker<State>,
    component: &Component,
) -> Result<Pre<State>, LoadError> {
    bindings::AdmissionPolicy::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
        .map_err(LoadError::Link)?;
    let instance_pre = linker.instantiate_pre(component).map_err(LoadError::Link)?;
    Pre::new(instance_pre).map_err(|e| LoadError::MissingExport(format!("{e:#}")))
}

/// The policy's self-description, on a fresh instance.
pub(super) async fn metadata(
    pre: &Pre<State>,
    store: &mut Store<State>,
) -> wasmtime::Result<PolicyMetadata> {
    let policy = pre.instantiate_async(&mut *store).await?;
    let m = policy
        .palisade_admission_policy()
        .call_metadata(&mut *store)
        .await?;
    Ok(convert::metadata_from_abi(newest::PolicyMetadata {
        name: m.name,
        version: m.version,
        description: m.description,
        rules: m
            .rules
            .into_iter()
            .map(|r| newest_types::Rule {
                api_groups: r.api_groups,
                api_versions: r.api_versions,
                resources: r.resources,
                operations: r.operations.into_iter().map(operation).collect(),
            })
            .collect(),
        mutating: m.mutating,
    }))
}

/// The policy's own check of `settings`, on a fresh instance.
pub(super) async fn validate_settings(
    pre: &Pre<State>,
    store: &mut Store<State>,
    settings: &str,
) -> wasmtime::Result<Result<(), SettingsError>> {
    let policy = pre.instantiate_async(&mut *store).await?;
    let answer = policy
        .palisade_admission_policy()
        .call_validate_settings(&mut *store, settings)
        .await?;
    Ok(answer.map_err(settings_error))
}

/// A new instance with its evaluator created from `settings`.
pub(super) async fn start(
    pre: &Pre<State>,
    store: &mut Store<State>,
    settings: &str,
) -> wasmtime::Result<Result<(Policy, ResourceAny), SettingsError>> {
    let policy = pre.instantiate_async(&mut *store).await?;
    let created = policy
        .palisade_admission_policy()
        .evaluator()
        .call_create(&mut *store, settings)
        .await?;
    Ok(created
        .map(|evaluator| (policy, evaluator))
        .map_err(settings_error))
}

/// Evaluates the newest world's request: the same fields, objects as text alone.
pub(super) async fn validate(
    policy: &Policy,
    store: &mut Store<State>,
    evaluator: ResourceAny,
    r: &newest::AdmissionRequest<'_>,
) -> wasmtime::Result<Result<newest::Verdict, newest::PolicyError>> {
    let request = abi::AdmissionRequest {
        uid: r.uid,
        kind: gvk(&r.kind),
        resource: gvr(&r.resource),
        sub_resource: r.sub_resource,
        request_kind: r.request_kind.as_ref().map(gvk),
        request_resource: r.request_resource.as_ref().map(gvr),
        request_sub_resource: r.request_sub_resource,
        name: r.name,
        namespace: r.namespace,
        operation: match r.operation {
            newest_types::Operation::Create => types::Operation::Create,
            newest_types::Operation::Update => types::Operation::Update,
            newest_types::Operation::Delete => types::Operation::Delete,
            newest_types::Operation::Connect => types::Operation::Connect,
        },
        user_info: types::UserInfo {
            username: r.user_info.username,
            uid: r.user_info.uid,
            groups: r.user_info.groups,
            extra: r.user_info.extra,
        },
        object: r.object.as_ref().map(|json| json.text),
        old_object: r.old_object.as_ref().map(|json| json.text),
        dry_run: r.dry_run,
        options: r.options.as_ref().map(|json| json.text),
    };
    let answer = policy
        .palisade_admission_policy()
        .evaluator()
        .call_validate(&mut *store, evaluator, request)
        .await?;
    Ok(match answer {
        Ok(v) => Ok(newest::Verdict {
            allowed: v.allowed,
            reason: v.reason,
            message: v.message,
            code: v.code,
            warnings: v.warnings,
            audit_annotations: v.audit_annotations,
            patch: v.patch,
        }),
        Err(abi::PolicyError::InvalidRequest(m)) => Err(newest::PolicyError::InvalidRequest(m)),
        Err(abi::PolicyError::Internal(m)) => Err(newest::PolicyError::Internal(m)),
    })
}

fn gvk<'a>(k: &newest_types::GroupVersionKind<'a>) -> types::GroupVersionKind<'a> {
    types::GroupVersionKind {
        group: k.group,
        version: k.version,
        kind: k.kind,
    }
}

fn gvr<'a>(r: &newest_types::GroupVersionResource<'a>) -> types::GroupVersionResource<'a> {
    types::GroupVersionResource {
        group: r.group,
        version: r.version,
        resource: r.resource,
    }
}

fn operation(op: types::Operation) -> newest_types::Operation {
    match op {
        types::Operation::Create => newest_types::Operation::Create,
        types::Operation::Update => newest_types::Operation::Update,
        types::Operation::Delete => newest_types::Operation::Delete,
        types::Operation::Connect => newest_types::Operation::Connect,
    }
}

fn settings_error(e: abi::SettingsError) -> SettingsError {
    convert::settings_error(newest::SettingsError {
        path: e.path,
        message: e.message,
    })
}
