{{/* Name of the chart (overridable). */}}
{{- define "geo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Namespaced object names: the release name, or release-chart when the release name does not
already contain the chart name. 63 characters at most (DNS label).
*/}}
{{- define "geo-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "geo-operator.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "geo-operator.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Cluster-scoped object names (ClusterRole, ClusterRoleBinding) carry the release namespace too, so
two releases with the same name in different namespaces never share one.
*/}}
{{- define "geo-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "geo-operator.fullname" .) -}}
{{- end -}}

{{- define "geo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "geo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "geo-operator.labels" -}}
{{ include "geo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: geo-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "geo-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "geo-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "geo-operator.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (.tag | default .appVersion) -}}
{{- end -}}
{{- end -}}

{{- define "geo-operator.managerImage" -}}
{{- include "geo-operator.image" (dict "repository" .Values.image.repository "tag" .Values.image.tag "digest" .Values.image.digest "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* Worker Jobs run the manager's image unless worker.image.repository is set. */}}
{{- define "geo-operator.workerImage" -}}
{{- if .Values.worker.image.repository -}}
{{- include "geo-operator.image" (dict "repository" .Values.worker.image.repository "tag" .Values.worker.image.tag "digest" .Values.worker.image.digest "appVersion" .Chart.AppVersion) -}}
{{- else -}}
{{- include "geo-operator.managerImage" . -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the registry API is served: registryApi.enabled on a cluster-scoped install (its
APIService and SubjectAccessReviews are cluster-wide, which rbac.namespaced rules out).
*/}}
{{- define "geo-operator.registryApi" -}}
{{- if and .Values.registryApi.enabled (not .Values.rbac.namespaced) }}true{{ end }}
{{- end }}
