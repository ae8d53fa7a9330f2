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

{{/* The rules the operator needs, and nothing more: each verb is one the operator calls
(tests/integration/test_operator_rbac.py runs it under these rules and checks that it uses
every one). No deletes: owner references let the garbage collector remove what a Connector
owns. No wildcards. */}}
{{- define "sluice.rules" -}}
# kopf lists and watches Connectors and keeps its bookkeeping in their annotations (patch);
# each reconcile reads the Connector (get).
- apiGroups: [sluice.dev]
  resources: [connectors]
  verbs: [get, list, watch, patch]
- apiGroups: [sluice.dev]
  resources: [connectors/status]
  verbs: [patch]
# Not a call: blockOwnerDeletion on the owned objects needs it where the
# OwnerReferencesPermissionEnforcement admission plugin is enabled.
- apiGroups: [sluice.dev]
  resources: [connectors/finalizers]
  verbs: [update]
# Server-side apply creates (create) or updates (patch) the runtime objects; the reconcile
# reads them (get); kopf watches the Deployments for their availability (list, watch).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, create, patch]
# Whether a Secret a Connector names opts in (its labels), and the Kafka credentials of a
# Connector whose brokers the operator does not trust with its own. Never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# sink.ref to a Knative Service (add rules for other addressable kinds you use).
- apiGroups: [serving.knative.dev]
  resources: [services]
  verbs: [get]
{{- end -}}
