{{/*
The chart's name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "retention-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name, with the chart name unless the
release name already contains it. Used for every object's name, the RBAC objects included.
*/}}
{{- define "retention-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart label value: name-version.
*/}}
{{- define "retention-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "retention-operator.labels" -}}
helm.sh/chart: {{ include "retention-operator.chart" . }}
{{ include "retention-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: retention-operator
{{- end }}

{{/*
Selector labels: stable across upgrades.
*/}}
{{- define "retention-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "retention-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as; the RBAC bindings name it.
*/}}
{{- define "retention-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "retention-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The leader-election Lease's name (in the release namespace).
*/}}
{{- define "retention-operator.leaseName" -}}
{{- default "retention-operator" .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The image reference: by digest when one is given (the tag is then only a label), else by tag,
which defaults to the chart's appVersion.
*/}}
{{- define "retention-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}
