//! `can_i` by a cluster's RBAC objects, as the API server's RBAC authorizer decides
//! (`plugin/pkg/auth/authorizer/rbac/rbac.go`, its rule resolver
//! `pkg/registry/rbac/validation/rule.go` and `pkg/apis/rbac/v1/evaluation_helpers.go`), with
//! aggregated ClusterRoles resolved as the ClusterRole aggregation controller writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::labels::Selector;
use super::{AccessReview, AccessStatus, ClusterError};

/// The API version of the RBAC objects read; the older ones are no longer served.
pub(crate) const API_VERSION: &str = "rbac.authorization.k8s.io/v1";

/// `rbacv1.PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRule {
    #[serde(default, deserialize_with = "list")]
    verbs: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    api_groups: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    resources: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    resource_names: Vec<String>,
    #[serde(default, deserialize_with = "list", rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

/// `rbacv1.Subject`.
#[derive(Debug, Clone, Deserialize)]
struct Subject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// `rbacv1.RoleRef`.
#[derive(Debug, Clone, Deserialize)]
struct RoleRef {
    kind: String,
    name: String,
}

/// A RoleBinding or a ClusterRoleBinding (`namespace` empty).
#[derive(Debug, Clone)]
struct Binding {
    name: String,
    namespace: String,
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleObject {
    metadata: Metadata,
    #[serde(default, deserialize_with = "list")]
    rules: Vec<PolicyRule>,
    #[serde(default)]
    aggregation_rule: Option<AggregationRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregationRule {
    #[serde(default, deserialize_with = "list")]
    cluster_role_selectors: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingObject {
    metadata: Metadata,
    #[serde(default, deserialize_with = "list")]
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

/// A list that may be `null` (Go decodes both to an empty slice).
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A ClusterRole as written, before aggregation.
#[derive(Debug)]
struct WrittenClusterRole {
    rules: Vec<PolicyRule>,
    labels: Map<String, Value>,
    /// `aggregationRule.clusterRoleSelectors`, when the role has an aggregation rule.
    aggregation: Option<Vec<Selector>>,
}

/// Collects the RBAC objects of a store, then resolves aggregation once.
#[derive(Debug, Default)]
pub(crate) struct RbacBuilder {
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: BTreeMap<String, WrittenClusterRole>,
    bindings: Vec<Binding>,
}

impl RbacBuilder {
    /// Takes `object` if it is one of the four RBAC kinds (of [`API_VERSION`]).
    ///
    /// # Errors
    /// The object does not decode as its kind, or an aggregation selector is invalid (the API
    /// server refuses both).
    pub(crate) fn add(
        &mut self,
        api_version: &str,
        kind: &str,
        object: &Value,
    ) -> Result<(), String> {
        if api_version != API_VERSION {
            return Ok(());
        }
        let invalid = |e: serde_json::Error| format!("not a valid {kind}: {e}");
        match kind {
            "Role" | "ClusterRole" => {
                let role = RoleObject::deserialize(object).map_err(invalid)?;
                if kind == "Role" {
                    let namespace = role.metadata.namespace.unwrap_or_default();
                    self.roles
                        .insert((namespace, role.metadata.name), role.rules);
                    return Ok(());
                }
                let aggregation = match role.aggregation_rule {
                    None => None,
                    Some(rule) => Some(
                        rule.cluster_role_selectors
                            .iter()
                            .enumerate()
                            .map(|(i, selector)| {
                                Selector::from_label_selector(selector).map_err(|e| {
                                    format!("aggregationRule.clusterRoleSelectors[{i}]: {e}")
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                };
                self.cluster_roles.insert(
                    role.metadata.name,
                    WrittenClusterRole {
                        rules: role.rules,
                        labels: role.metadata.labels.unwrap_or_default(),
                        aggregation,
                    },
                );
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let binding = BindingObject::deserialize(object).map_err(invalid)?;
                let namespace = if kind == "RoleBinding" {
                    binding.metadata.namespace.unwrap_or_default()
                } else {
                    String::new()
                };
                self.bindings.push(Binding {
                    name: binding.metadata.name,
                    namespace,
                    subjects: binding.subjects,
                    role_ref: binding.role_ref,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The rules every ClusterRole has once aggregated, and the bindings in name order.
    pub(crate) fn finish(self) -> Rbac {
        let mut cluster_roles = BTreeMap::new();
        for name in self.cluster_roles.keys() {
            let rules = aggregate(
                name,
                &self.cluster_roles,
                &mut cluster_roles,
                &mut BTreeSet::new(),
            );
            cluster_roles.insert(name.clone(), rules);
        }
        let mut cluster_role_bindings = Vec::new();
        let mut role_bindings: BTreeMap<String, Vec<Binding>> = BTreeMap::new();
        for binding in self.bindings {
            if binding.namespace.is_empty() {
                cluster_role_bindings.push(binding);
            } else {
                role_bindings
                    .entry(binding.namespace.clone())
                    .or_default()
                    .push(binding);
            }
        }
        // The API server visits bindings in its cache's order; name order keeps the reason
        // (which binding allowed it) the same from run to run.
        cluster_role_bindings.sort_by(|a, b| a.name.cmp(&b.name));
        for bindings in role_bindings.values_mut() {
            bindings.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Rbac {
            roles: self.roles,
            cluster_roles,
            cluster_role_bindings,
            role_bindings,
        }
    }
}

/// The rules of ClusterRole `name` as the aggregation controller leaves them: a role with an
/// aggregation rule gets the rules of every other ClusterRole its selectors match (selector
/// by selector, roles in name order, each rule once), in place of its own; nested aggregated
/// roles contribute their aggregated rules. On a cycle, a role met again contributes the rules
/// it was written with.
fn aggregate(
    name: &str,
    written: &BTreeMap<String, WrittenClusterRole>,
    resolved: &mut BTreeMap<String, Vec<PolicyRule>>,
    visiting: &mut BTreeSet<String>,
) -> Vec<PolicyRule> {
    if let Some(rules) = resolved.get(name) {
        return rules.clone();
    }
    let Some(role) = written.get(name) else {
        return Vec::new();
    };
    let Some(selectors) = &role.aggregation else {
        return role.rules.clone();
    };
    if !visiting.insert(name.to_owned()) {
        return role.rules.clone();
    }
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in selectors {
        for (other, candidate) in written {
            if other == name || !selector.matches(Some(&candidate.labels)) {
                continue;
            }
            for rule in aggregate(other, written, resolved, visiting) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    visiting.remove(name);
    resolved.insert(name.to_owned(), rules.clone());
    rules
}

/// The RBAC objects of a store, ready to authorize requests.
#[derive(Debug, Default)]
pub(crate) struct Rbac {
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    /// Aggregated.
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    cluster_role_bindings: Vec<Binding>,
    /// By namespace.
    role_bindings: BTreeMap<String, Vec<Binding>>,
}

/// The resource request of a review, with absent parts empty as in `authorizer.Attributes`.
struct Request<'a> {
    user: &'a str,
    groups: &'a BTreeSet<String>,
    namespace: &'a str,
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    subresource: &'a str,
    name: &'a str,
}

impl Rbac {
    /// Decides `review` as a SubjectAccessReview answered by the RBAC authorizer alone:
    /// ClusterRoleBindings first, then (for a namespaced request) the RoleBindings of the
    /// namespace; the first rule that allows the request ends the search and names its binding
    /// in `reason` (`RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole
    /// "cluster-admin" to Group "ops"`). Otherwise `allowed` is false and, as the API server
    /// answers, `reason` is empty unless bindings could not be resolved (a missing role): then
    /// it is `RBAC: ` and those errors, which `evaluation_error` holds too.
    ///
    /// The user is exactly `review.user` with exactly `review.groups`: a SubjectAccessReview
    /// gets no `system:authenticated` or `system:serviceaccounts` groups added, as a request
    /// the API server authenticates does. Nor does this store authorize `system:masters`
    /// without a binding, as the API server's privileged-group authorizer would. Only resource
    /// requests exist here (no non-resource URLs).
    ///
    /// # Errors
    /// [`ClusterError::Invalid`] when the review names neither a user nor a group (the API
    /// server refuses such a review).
    pub(crate) fn authorize(&self, review: &AccessReview) -> Result<AccessStatus, ClusterError> {
        if review.user.is_empty() && review.groups.is_empty() {
            return Err(ClusterError::Invalid(
                "spec.user: Invalid value: \"\": at least one of user or group must be specified"
                    .to_owned(),
            ));
        }
        let request = Request {
            user: &review.user,
            groups: &review.groups,
            namespace: review.namespace.as_deref().unwrap_or_default(),
            verb: &review.verb,
            group: review.group.as_deref().unwrap_or_default(),
            resource: &review.resource,
            subresource: review.subresource.as_deref().unwrap_or_default(),
            name: review.name.as_deref().unwrap_or_default(),
        };
        let mut errors = Vec::new();
        for binding in &self.cluster_role_bindings {
            if let Some(source) = self.allowing(binding, "", &request, &mut errors) {
                return Ok(allowed(&source));
            }
        }
        if !request.namespace.is_empty() {
            for binding in self
                .role_bindings
                .get(request.namespace)
                .into_iter()
                .flatten()
            {
                if let Some(source) =
                    self.allowing(binding, request.namespace, &request, &mut errors)
                {
                    return Ok(allowed(&source));
                }
            }
        }
        let error = aggregate_errors(&errors);
        Ok(AccessStatus {
            allowed: false,
            denied: false,
            reason: if error.is_empty() {
                String::new()
            } else {
                format!("RBAC: {error}")
            },
            evaluation_error: error,
        })
    }

    /// The description of `binding` if it applies to the user and one of its role's rules
    /// allows the request; a role that cannot be resolved adds to `errors`.
    fn allowing(
        &self,
        binding: &Binding,
        namespace: &str,
        request: &Request<'_>,
        errors: &mut Vec<String>,
    ) -> Option<String> {
        let subject = binding
            .subjects
            .iter()
            .find(|s| applies(s, request, namespace))?;
        let rules = match self.rules(&binding.role_ref, namespace) {
            Ok(rules) => rules,
            Err(error) => {
                errors.push(error);
                return None;
            }
        };
        if !rules.iter().any(|rule| rule_allows(rule, request)) {
            return None;
        }
        let role = format!(
            "{} {}",
            binding.role_ref.kind,
            quote(&binding.role_ref.name)
        );
        Some(if binding.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {} of {role} to {}",
                quote(&binding.name),
                describe(subject, "")
            )
        } else {
            format!(
                "RoleBinding {} of {role} to {}",
                quote(&format!("{}/{}", binding.name, binding.namespace)),
                describe(subject, &binding.namespace)
            )
        })
    }

    /// `GetRoleReferenceRules`: a Role of the binding's namespace or a ClusterRole.
    fn rules(&self, role_ref: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        let found = match role_ref.kind.as_str() {
            "Role" => (!namespace.is_empty())
                .then(|| {
                    self.roles
                        .get(&(namespace.to_owned(), role_ref.name.clone()))
                })
                .flatten(),
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            other => return Err(format!("unsupported role reference kind: {}", quote(other))),
        };
        found.map(Vec::as_slice).ok_or_else(|| {
            format!(
                "{}.rbac.authorization.k8s.io {} not found",
                role_ref.kind.to_ascii_lowercase(),
                quote(&role_ref.name)
            )
        })
    }
}

fn allowed(source: &str) -> AccessStatus {
    AccessStatus {
        allowed: true,
        denied: false,
        reason: format!("RBAC: allowed by {source}"),
        evaluation_error: String::new(),
    }
}

/// `appliesToUser`: a User by name, a Group by membership, a ServiceAccount by its user name
/// `system:serviceaccount:<namespace>:<name>` (namespace defaulting to the binding's).
fn applies(subject: &Subject, request: &Request<'_>, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => request.user == subject.name,
        "Group" => request.groups.contains(&subject.name),
        "ServiceAccount" => {
            let namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => namespace,
            };
            !namespace.is_empty()
                && request
                    .user
                    .strip_prefix("system:serviceaccount:")
                    .is_some_and(|rest| {
                        rest.strip_prefix(namespace)
                            .and_then(|rest| rest.strip_prefix(':'))
                            == Some(subject.name.as_str())
                    })
        }
        _ => false,
    }
}

/// `describeSubject`: `User "alice"`, `ServiceAccount "name/namespace"`.
fn describe(subject: &Subject, binding_namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let namespace = match subject.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => binding_namespace,
        };
        return format!(
            "{} {}",
            subject.kind,
            quote(&format!("{}/{namespace}", subject.name))
        );
    }
    format!("{} {}", subject.kind, quote(&subject.name))
}

/// `RuleAllows` for a resource request.
fn rule_allows(rule: &PolicyRule, request: &Request<'_>) -> bool {
    let combined = if request.subresource.is_empty() {
        request.resource.to_owned()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    verb_matches(rule, request.verb)
        && group_matches(rule, request.group)
        && resource_matches(rule, &combined, request.subresource)
        && name_matches(rule, request.name)
}

/// `VerbMatches`: `*` or the verb.
fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

/// `APIGroupMatches`: `*` or the group (`""` is the core group).
fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

/// `ResourceMatches`: `*`, the resource (`pods/log` for a subresource), or `*/log` for any
/// resource's subresource `log`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// `ResourceNameMatches`: no names allows every name; otherwise the request must name one of
/// them (so a rule with names never allows a request without a name, such as `list`).
fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as it is, several distinct ones in
/// brackets, separated by commas.
fn aggregate_errors(errors: &[String]) -> String {
    let mut seen = BTreeSet::new();
    let distinct: Vec<&str> = errors
        .iter()
        .filter(|e| seen.insert(e.as_str()))
        .map(String::as_str)
        .collect();
    match distinct.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Go's `%q` of a string, for the names the authorizer's messages quote.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(quoted, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn rbac(objects: &[Value]) -> Rbac {
        let mut builder = RbacBuilder::default();
        for object in objects {
            let api_version = object["apiVersion"].as_str().unwrap();
            let kind = object["kind"].as_str().unwrap();
            builder.add(api_version, kind, object).unwrap();
        }
        builder.finish()
    }

    fn cluster_role(name: &str, rules: Value) -> Value {
        let mut object = json!({
            "apiVersion": API_VERSION, "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": null,
        });
        object["rules"] = rules;
        object
    }

    fn role(namespace: &str, name: &str, rules: Value) -> Value {
        let mut object = json!({
            "apiVersion": API_VERSION, "kind": "Role",
            "metadata": {"name": name, "namespace": namespace}, "rules": null,
        });
        object["rules"] = rules;
        object
    }

    fn cluster_binding(name: &str, role: &str, subjects: Value) -> Value {
        let mut object = json!({
            "apiVersion": API_VERSION, "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": null,
        });
        object["subjects"] = subjects;
        object
    }

    fn binding(namespace: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
        let mut object = json!({
            "apiVersion": API_VERSION, "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": null,
        });
        object["subjects"] = subjects;
        object
    }

    fn user(name: &str) -> Value {
        json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}])
    }

    fn review(
        user: &str,
        namespace: Option<&str>,
        verb: &str,
        group: &str,
        resource: &str,
    ) -> AccessReview {
        AccessReview {
            user: user.to_owned(),
            namespace: namespace.map(str::to_owned),
            verb: verb.to_owned(),
            group: Some(group.to_owned()),
            resource: resource.to_owned(),
            ..AccessReview::default()
        }
    }

    fn allows(rbac: &Rbac, review: &AccessReview) -> bool {
        rbac.authorize(review).unwrap().allowed
    }

    #[test]
    fn a_cluster_role_binding_allows_everywhere_with_the_authorizers_reason() {
        let rbac = rbac(&[
            cluster_role(
                "pod-reader",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
            ),
            cluster_binding("read-pods", "pod-reader", user("alice")),
        ]);
        let status = rbac
            .authorize(&review("alice", Some("shop"), "get", "", "pods"))
            .unwrap();
        assert_eq!(
            status,
            AccessStatus {
                allowed: true,
                denied: false,
                reason: "RBAC: allowed by ClusterRoleBinding \"read-pods\" of ClusterRole \
                         \"pod-reader\" to User \"alice\""
                    .to_owned(),
                evaluation_error: String::new(),
            }
        );
        assert!(allows(&rbac, &review("alice", None, "list", "", "pods")));
        assert!(!allows(&rbac, &review("alice", None, "delete", "", "pods")));
        assert!(!allows(&rbac, &review("bob", None, "get", "", "pods")));
        // The core group is "", not "apps".
        assert!(!allows(
            &rbac,
            &review("alice", None, "get", "apps", "pods")
        ));
        let denied = rbac
            .authorize(&review("bob", None, "get", "", "pods"))
            .unwrap();
        assert_eq!(denied, AccessStatus::default());
    }

    #[test]
    fn wildcards_match_any_verb_group_and_resource() {
        let rbac = rbac(&[
            cluster_role(
                "admin-ish",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            ),
            cluster_binding(
                "admins",
                "admin-ish",
                json!([{"kind": "Group", "name": "ops"}]),
            ),
        ]);
        let mut request = review("carol", Some("shop"), "delete", "apps", "deployments");
        assert!(!allows(&rbac, &request), "carol is not in ops");
        request.groups.insert("ops".to_owned());
        assert!(allows(&rbac, &request));
        request.subresource = Some("scale".to_owned());
        assert!(allows(&rbac, &request), "`*` covers subresources too");
        assert_eq!(
            rbac.authorize(&request).unwrap().reason,
            "RBAC: allowed by ClusterRoleBinding \"admins\" of ClusterRole \"admin-ish\" to \
             Group \"ops\""
        );
    }

    #[test]
    fn a_requested_wildcard_verb_needs_a_wildcard_rule() {
        let rbac = rbac(&[
            cluster_role(
                "reader",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            ),
            cluster_binding("readers", "reader", user("alice")),
        ]);
        assert!(!allows(&rbac, &review("alice", None, "*", "", "pods")));
    }

    #[test]
    fn subresources_match_exactly_or_by_star_slash() {
        let rbac = rbac(&[
            cluster_role(
                "logs",
                json!([
                    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                    {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]},
                ]),
            ),
            cluster_binding("logs", "logs", user("alice")),
        ]);
        let mut log = review("alice", Some("shop"), "get", "", "pods");
        assert!(!allows(&rbac, &log), "pods/log does not give pods");
        log.subresource = Some("log".to_owned());
        assert!(allows(&rbac, &log));
        log.subresource = Some("exec".to_owned());
        assert!(!allows(&rbac, &log));

        let mut scale = review("alice", Some("shop"), "update", "apps", "deployments");
        scale.subresource = Some("scale".to_owned());
        assert!(allows(&rbac, &scale));
        scale.resource = "statefulsets".to_owned();
        assert!(allows(&rbac, &scale));
        scale.subresource = None;
        assert!(
            !allows(&rbac, &scale),
            "*/scale does not give the resource itself"
        );
    }

    #[test]
    fn resource_names_restrict_to_named_objects() {
        let rbac = rbac(&[
            cluster_role(
                "one-config",
                json!([{
                    "apiGroups": [""], "resources": ["configmaps"],
                    "resourceNames": ["settings"], "verbs": ["get", "list"],
                }]),
            ),
            cluster_binding("config", "one-config", user("alice")),
        ]);
        let mut request = review("alice", Some("shop"), "get", "", "configmaps");
        assert!(
            !allows(&rbac, &request),
            "a named rule never matches a request without a name"
        );
        request.name = Some("settings".to_owned());
        assert!(allows(&rbac, &request));
        request.name = Some("other".to_owned());
        assert!(!allows(&rbac, &request));
        let list = review("alice", Some("shop"), "list", "", "configmaps");
        assert!(!allows(&rbac, &list));
    }

    #[test]
    fn a_role_binding_gives_a_cluster_role_in_its_namespace_only() {
        let rbac = rbac(&[
            cluster_role(
                "edit",
                json!([{"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["*"]}]),
            ),
            binding("shop", "editors", "ClusterRole", "edit", user("dave")),
        ]);
        let status = rbac
            .authorize(&review(
                "dave",
                Some("shop"),
                "create",
                "apps",
                "deployments",
            ))
            .unwrap();
        assert!(status.allowed);
        assert_eq!(
            status.reason,
            "RBAC: allowed by RoleBinding \"editors/shop\" of ClusterRole \"edit\" to User \"dave\""
        );
        assert!(!allows(
            &rbac,
            &review("dave", Some("bank"), "create", "apps", "deployments")
        ));
        assert!(!allows(
            &rbac,
            &review("dave", None, "create", "apps", "deployments")
        ));
        assert!(!allows(
            &rbac,
            &review("dave", Some(""), "create", "apps", "deployments")
        ));
    }

    #[test]
    fn a_role_binding_gives_a_role_of_its_namespace() {
        let rbac = rbac(&[
            role(
                "shop",
                "secrets",
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
            ),
            role(
                "bank",
                "secrets",
                json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]),
            ),
            binding("shop", "secrets", "Role", "secrets", user("erin")),
        ]);
        assert!(allows(
            &rbac,
            &review("erin", Some("shop"), "get", "", "secrets")
        ));
        assert!(
            !allows(
                &rbac,
                &review("erin", Some("shop"), "delete", "", "secrets")
            ),
            "shop's Role, not bank's"
        );
        assert!(!allows(
            &rbac,
            &review("erin", Some("bank"), "get", "", "secrets")
        ));
    }

    #[test]
    fn service_account_subjects_match_their_user_name() {
        let rbac = rbac(&[
            cluster_role(
                "deployer",
                json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}]),
            ),
            cluster_binding(
                "ci",
                "deployer",
                json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]),
            ),
            // A RoleBinding's ServiceAccount without a namespace is one of the binding's namespace.
            binding(
                "shop",
                "local",
                "ClusterRole",
                "deployer",
                json!([{"kind": "ServiceAccount", "name": "shipper"}]),
            ),
            // A ClusterRoleBinding's ServiceAccount without a namespace matches nobody.
            cluster_binding(
                "nowhere",
                "deployer",
                json!([{"kind": "ServiceAccount", "name": "ghost"}]),
            ),
        ]);
        let status = rbac
            .authorize(&review(
                "system:serviceaccount:ci:builder",
                Some("shop"),
                "patch",
                "apps",
                "deployments",
            ))
            .unwrap();
        assert!(status.allowed);
        assert_eq!(
            status.reason,
            "RBAC: allowed by ClusterRoleBinding \"ci\" of ClusterRole \"deployer\" to \
             ServiceAccount \"builder/ci\""
        );
        assert!(!allows(
            &rbac,
            &review(
                "system:serviceaccount:ci:builder2",
                None,
                "patch",
                "apps",
                "deployments"
            )
        ));
        assert!(!allows(
            &rbac,
            &review(
                "system:serviceaccount:ci2:builder",
                None,
                "patch",
                "apps",
                "deployments"
            )
        ));
        assert!(!allows(
            &rbac,
            &review("builder", None, "patch", "apps", "deployments")
        ));

        let local = rbac
            .authorize(&review(
                "system:serviceaccount:shop:shipper",
                Some("shop"),
                "patch",
                "apps",
                "deployments",
            ))
            .unwrap();
        assert_eq!(
            local.reason,
            "RBAC: allowed by RoleBinding \"local/shop\" of ClusterRole \"deployer\" to \
             ServiceAccount \"shipper/shop\""
        );
        assert!(!allows(
            &rbac,
            &review(
                "system:serviceaccount:bank:shipper",
                Some("bank"),
                "patch",
                "apps",
                "deployments"
            )
        ));
        assert!(!allows(
            &rbac,
            &review(
                "system:serviceaccount::ghost",
                None,
                "patch",
                "apps",
                "deployments"
            )
        ));
    }

    #[test]
    fn only_the_groups_given_count() {
        let rbac = rbac(&[
            cluster_role(
                "discovery",
                json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]),
            ),
            cluster_binding(
                "everyone",
                "discovery",
                json!([{"kind": "Group", "name": "system:authenticated"}]),
            ),
        ]);
        let mut request = review("alice", None, "list", "", "namespaces");
        assert!(!allows(&rbac, &request), "no group is added to a review");
        request.groups.insert("system:authenticated".to_owned());
        assert!(allows(&rbac, &request));
    }

    #[test]
    fn aggregated_cluster_roles_get_the_rules_of_the_roles_they_select() {
        let mut view = cluster_role(
            "view",
            json!([{"apiGroups": ["stale"], "resources": ["old"], "verbs": ["get"]}]),
        );
        view["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {"rbac.example.com/aggregate-to-view": "true"}},
        ]});
        let mut edit = cluster_role("edit", json!([]));
        edit["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchExpressions": [{"key": "rbac.example.com/aggregate-to-edit", "operator": "Exists"}]},
        ]});
        edit["metadata"]["labels"] = json!({"rbac.example.com/aggregate-to-view": "true"});
        let mut pods = cluster_role(
            "pods-view",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
        );
        pods["metadata"]["labels"] = json!({"rbac.example.com/aggregate-to-view": "true"});
        let mut deployments = cluster_role(
            "deployments-edit",
            json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["update"]}]),
        );
        deployments["metadata"]["labels"] = json!({"rbac.example.com/aggregate-to-edit": ""});
        let rbac = rbac(&[
            view,
            edit,
            pods,
            deployments,
            cluster_binding("viewers", "view", user("alice")),
        ]);
        let status = rbac
            .authorize(&review("alice", Some("shop"), "get", "", "pods"))
            .unwrap();
        assert_eq!(
            status.reason,
            "RBAC: allowed by ClusterRoleBinding \"viewers\" of ClusterRole \"view\" to User \"alice\""
        );
        // Nested: view selects edit, which aggregates deployments-edit.
        assert!(allows(
            &rbac,
            &review("alice", Some("shop"), "update", "apps", "deployments")
        ));
        // The rules view was written with are replaced, as the controller replaces them.
        assert!(!allows(
            &rbac,
            &review("alice", Some("shop"), "get", "stale", "old")
        ));
    }

    #[test]
    fn aggregation_cycles_end() {
        let mut a = cluster_role(
            "a",
            json!([{"apiGroups": [""], "resources": ["a"], "verbs": ["get"]}]),
        );
        a["metadata"]["labels"] = json!({"ring": "yes"});
        a["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"ring": "yes"}}]});
        let mut b = cluster_role(
            "b",
            json!([{"apiGroups": [""], "resources": ["b"], "verbs": ["get"]}]),
        );
        b["metadata"]["labels"] = json!({"ring": "yes"});
        b["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"ring": "yes"}}]});
        let rbac = rbac(&[a, b, cluster_binding("a", "a", user("alice"))]);
        assert!(allows(&rbac, &review("alice", None, "get", "", "a")));
    }

    #[test]
    fn a_missing_role_is_an_evaluation_error_that_does_not_stop_the_search() {
        let rbac = rbac(&[
            cluster_binding("broken", "does-not-exist", user("alice")),
            binding("shop", "broken-role", "Role", "missing", user("alice")),
            binding("shop", "weird", "Policy", "x", user("alice")),
            cluster_role(
                "reader",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            ),
            cluster_binding("reader", "reader", user("alice")),
        ]);
        assert!(allows(
            &rbac,
            &review("alice", Some("shop"), "get", "", "pods")
        ));
        let status = rbac
            .authorize(&review("alice", Some("shop"), "delete", "", "pods"))
            .unwrap();
        assert!(!status.allowed);
        let errors = "[clusterrole.rbac.authorization.k8s.io \"does-not-exist\" not found, \
                      role.rbac.authorization.k8s.io \"missing\" not found, \
                      unsupported role reference kind: \"Policy\"]";
        assert_eq!(status.evaluation_error, errors);
        assert_eq!(status.reason, format!("RBAC: {errors}"));
        // One error alone is not bracketed; a binding that does not apply is not resolved.
        let single = rbac
            .authorize(&review("alice", None, "delete", "", "pods"))
            .unwrap();
        assert_eq!(
            single.evaluation_error,
            "clusterrole.rbac.authorization.k8s.io \"does-not-exist\" not found"
        );
        let other = rbac
            .authorize(&review("bob", Some("shop"), "get", "", "pods"))
            .unwrap();
        assert_eq!(other, AccessStatus::default());
    }

    #[test]
    fn a_review_needs_a_user_or_a_group() {
        let rbac = rbac(&[]);
        let error = rbac
            .authorize(&review("", None, "get", "", "pods"))
            .unwrap_err();
        assert!(matches!(error, ClusterError::Invalid(_)), "{error}");
        let mut by_group = review("", None, "get", "", "pods");
        by_group.groups.insert("ops".to_owned());
        assert_eq!(rbac.authorize(&by_group).unwrap(), AccessStatus::default());
    }

    #[test]
    fn malformed_rbac_objects_are_refused() {
        let mut builder = RbacBuilder::default();
        let bad_rules = json!({"apiVersion": API_VERSION, "kind": "Role", "metadata": {"name": "r"}, "rules": "all"});
        let error = builder.add(API_VERSION, "Role", &bad_rules).unwrap_err();
        assert!(
            error.starts_with("not a valid Role: invalid type: string \"all\""),
            "{error}"
        );
        let no_ref = json!({"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": {"name": "b"}});
        let error = builder
            .add(API_VERSION, "ClusterRoleBinding", &no_ref)
            .unwrap_err();
        assert!(error.contains("missing field `roleRef`"), "{error}");
        let mut aggregated = cluster_role("agg", json!(null));
        aggregated["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Gt"}]}]});
        let error = builder
            .add(API_VERSION, "ClusterRole", &aggregated)
            .unwrap_err();
        assert_eq!(
            error,
            "aggregationRule.clusterRoleSelectors[0]: \"Gt\" is not a valid label selector operator"
        );
        // Other API versions are not RBAC objects here.
        builder
            .add("rbac.authorization.k8s.io/v1beta1", "Role", &bad_rules)
            .unwrap();
    }

    #[test]
    fn names_are_quoted_as_go_quotes_them() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
    }
}
