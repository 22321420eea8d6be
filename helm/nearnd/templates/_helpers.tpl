{{/* Chart name, at most 63 characters as Kubernetes names allow. */}}
{{- define "nearnd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-qualified name that every resource name starts with. The scorer's resources append
"-scorer" and the training CronJobs "-train-MODEL", so the base stays at 40 characters or fewer.
*/}}
{{- define "nearnd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nearnd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nearnd.labels" -}}
helm.sh/chart: {{ include "nearnd.chart" . }}
app.kubernetes.io/name: {{ include "nearnd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of the scorer pods; they must stay the same across upgrades. */}}
{{- define "nearnd.scorer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nearnd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: scorer
{{- end }}

{{- define "nearnd.scorer.fullname" -}}
{{- printf "%s-scorer" (include "nearnd.fullname" .) }}
{{- end }}

{{- define "nearnd.modelRepository.claimName" -}}
{{- if .Values.modelRepository.existingClaim }}
{{- .Values.modelRepository.existingClaim }}
{{- else }}
{{- printf "%s-models" (include "nearnd.fullname" .) }}
{{- end }}
{{- end }}

{{/* Image reference of a component: pass the component's image values and the root context. */}}
{{- define "nearnd.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/*
Model name of one training class: its `model` key, or DATASET-class-N as `nearnd bundle` names
it. The name is a directory under the model repository and part of a CronJob name, so it must be
a lowercase DNS label.
*/}}
{{- define "nearnd.training.model" -}}
{{- $dataset := required "every training.classes entry needs a dataset" (get . "dataset") }}
{{- $normalClass := required "every training.classes entry needs a normalClass" (get . "normalClass") }}
{{- $model := get . "model" | default (printf "%s-class-%d" $dataset (int $normalClass)) }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $model) }}
{{- fail (printf "training model name %q is invalid: it may contain only lowercase letters, digits and '-', starting and ending with a letter or digit; set `model` in its training.classes entry" $model) }}
{{- end }}
{{- $model }}
{{- end }}
