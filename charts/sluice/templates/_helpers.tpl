{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: sluice
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The rules the operator needs, and nothing more: no Secrets, no wildcards. */}}
{{- define "sluice.rules" -}}
- apiGroups: [sluice.dev]
  resources: [connectors]
  verbs: [get, list, watch, patch]
- apiGroups: [sluice.dev]
  resources: [connectors/status]
  verbs: [get, patch]
# blockOwnerDeletion on the owned objects needs this where OwnerReferencesPermissionEnforcement
# is enabled.
- apiGroups: [sluice.dev]
  resources: [connectors/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, get, list, watch, patch, delete]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [create, get, list, watch, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
- apiGroups: [serving.knative.dev]
  resources: [services]
  verbs: [get]
{{- end -}}
