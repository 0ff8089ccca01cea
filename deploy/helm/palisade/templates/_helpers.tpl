{{/* Names, labels, the server configuration and the webhook entries shared by the templates. */}}

{{- define "palisade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "palisade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "palisade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "palisade.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: palisade
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "palisade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "palisade.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt and tls.key: cert-manager's, or the one given. */}}
{{- define "palisade.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.name is required with tls.mode secret" .Values.tls.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "palisade.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "palisade.certificateName" -}}
{{- printf "%s-serving" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.selfSignedIssuerName" -}}
{{- printf "%s-selfsigned" (include "palisade.fullname" .) -}}
{{- end -}}

{{/* Annotations of the webhook configurations: cert-manager's cainjector fills caBundle. */}}
{{- define "palisade.webhookAnnotations" -}}
{{- if eq .Values.tls.mode "certManager" -}}
cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "palisade.certificateName" .) }}
{{- end -}}
{{- end -}}

{{/* A policy's module path: relative ones are under modules.mountPath. */}}
{{- define "palisade.modulePath" -}}
{{- if hasPrefix "/" .module -}}
{{- .module -}}
{{- else -}}
{{- printf "%s/%s" (trimSuffix "/" .root.Values.modules.mountPath) .module -}}
{{- end -}}
{{- end -}}

{{/*
The server configuration (`palisade serve --config`, host/webhook/src/config.rs): the chart sets
listen, tls and absolute module paths; each policy and group is its values entry without the
chart-only `webhook` key (the server rejects unknown fields).
*/}}
{{- define "palisade.serverConfig" -}}
{{- $root := . -}}
{{- $ids := dict -}}
{{- $policies := list -}}
{{- range $policy := .Values.policies -}}
{{- if hasKey $ids $policy.id -}}
{{- fail (printf "policies: the id %q is used twice" $policy.id) -}}
{{- end -}}
{{- $_ := set $ids $policy.id true -}}
{{- $entry := omit $policy "webhook" -}}
{{- $_ := set $entry "module" (include "palisade.modulePath" (dict "root" $root "module" $policy.module)) -}}
{{- $policies = append $policies $entry -}}
{{- end -}}
{{- $groups := list -}}
{{- range $group := .Values.groups -}}
{{- if hasKey $ids $group.id -}}
{{- fail (printf "groups: the id %q is already a policy or group id" $group.id) -}}
{{- end -}}
{{- $_ := set $ids $group.id true -}}
{{- $groups = append $groups (omit $group "webhook") -}}
{{- end -}}
{{- $config := dict "listen" (printf "0.0.0.0:%d" (int .Values.server.port)) -}}
{{- $tls := dict "cert" "/etc/palisade/tls/tls.crt" "key" "/etc/palisade/tls/tls.key" -}}
{{- if .Values.tls.clientCaSecret -}}
{{- $_ := set $tls "clientCa" "/etc/palisade/client-ca/ca.crt" -}}
{{- end -}}
{{- $_ := set $config "tls" $tls -}}
{{- $_ := set $config "probes" (dict "listen" (printf "0.0.0.0:%d" (int .Values.server.probesPort))) -}}
{{- $_ := set $config "limits" .Values.server.limits -}}
{{- if .Values.server.rateLimit -}}
{{- $_ := set $config "rateLimit" .Values.server.rateLimit -}}
{{- end -}}
{{- $_ := set $config "policies" $policies -}}
{{- if $groups -}}
{{- $_ := set $config "groups" $groups -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
One webhook entry, as `palisade webhook-config` writes it (host/webhook/src/manifests.rs).
Arguments: root, id, endpoint ("validate" or "mutate"), failurePolicy, webhook (the entry's
`webhook` values).
*/}}
{{- define "palisade.webhook" -}}
{{- $root := .root -}}
{{- $hook := .webhook | default dict -}}
- name: {{ printf "%s.palisade.dev" .id }}
  clientConfig:
    service:
      name: {{ include "palisade.fullname" $root }}
      namespace: {{ $root.Release.Namespace }}
      path: {{ printf "/%s/%s" .endpoint .id }}
      port: {{ $root.Values.service.port }}
    {{- if eq $root.Values.tls.mode "secret" }}
    caBundle: {{ required "tls.secret.caBundle is required with tls.mode secret" $root.Values.tls.secret.caBundle }}
    {{- end }}
  rules:
    {{- range $rule := $hook.rules }}
    - apiGroups: {{ toJson $rule.apiGroups }}
      apiVersions: {{ toJson $rule.apiVersions }}
      resources: {{ toJson $rule.resources }}
      operations: {{ toJson $rule.operations }}
      scope: {{ $rule.scope | default "*" | quote }}
    {{- end }}
  failurePolicy: {{ .failurePolicy }}
  matchPolicy: Equivalent
  sideEffects: None
  admissionReviewVersions: [v1, v1beta1]
  timeoutSeconds: {{ $hook.timeoutSeconds | default $root.Values.webhook.timeoutSeconds }}
  {{- if eq .endpoint "mutate" }}
  reinvocationPolicy: IfNeeded
  {{- end }}
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values: {{ toJson (prepend $root.Values.webhook.excludedNamespaces $root.Release.Namespace | uniq) }}
  {{- with $hook.objectSelector }}
  objectSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
