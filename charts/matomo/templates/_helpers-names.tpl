{{/*
Every name and label of the chart is defined here (docs/architecture.md, "Names").
F = matomo.fullname.
*/}}

{{- define "matomo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* F: the release name, or <release>-matomo when the release name does not contain "matomo"; fullnameOverride wins. */}}
{{- define "matomo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "matomo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names. F is truncated to 50 characters so that F-<suffix> stays a valid name. */}}
{{- define "matomo.configSecretName" -}}{{ include "matomo.fullname" . }}-config{{- end }}
{{- define "matomo.webConfigName" -}}{{ include "matomo.fullname" . }}-web{{- end }}
{{- define "matomo.scriptsName" -}}{{ include "matomo.fullname" . }}-scripts{{- end }}
{{- define "matomo.hookName" -}}{{ include "matomo.fullname" . }}-hook{{- end }}
{{/* CronJob and StatefulSet names must stay within 52 characters. */}}
{{- define "matomo.archiverName" -}}{{ include "matomo.fullname" . | trunc 43 | trimSuffix "-" }}-archiver{{- end }}
{{- define "matomo.mariadbName" -}}{{ include "matomo.fullname" . | trunc 44 | trimSuffix "-" }}-mariadb{{- end }}
{{- define "matomo.testName" -}}{{ include "matomo.fullname" . }}-test{{- end }}
{{- define "matomo.secretsHookName" -}}{{ include "matomo.fullname" . }}-secrets{{- end }}
{{- define "matomo.restoreName" -}}{{ include "matomo.fullname" . }}-restore{{- end }}
{{/* The tracker Deployment, its Service, HPA, PDB and NetworkPolicy (tracker.enabled). */}}
{{- define "matomo.trackerName" -}}{{ include "matomo.fullname" . }}-tracker{{- end }}
{{/* The volume of the dumps the hook takes before core:update: backup.persistence.existingClaim, or F-backup. */}}
{{- define "matomo.backupClaimName" -}}
{{- .Values.backup.persistence.existingClaim | default (printf "%s-backup" (include "matomo.fullname" .)) }}
{{- end }}

{{- define "matomo.saltSecretName" -}}
{{- .Values.matomo.salt.existingSecret | default (printf "%s-salt" (include "matomo.fullname" .)) }}
{{- end }}
{{- define "matomo.saltSecretKey" -}}
{{- if .Values.matomo.salt.existingSecret }}{{ .Values.matomo.salt.existingSecretKey }}{{ else }}salt{{ end }}
{{- end }}

{{- define "matomo.superuserSecretName" -}}
{{- .Values.matomo.superuser.existingSecret | default (printf "%s-superuser" (include "matomo.fullname" .)) }}
{{- end }}
{{- define "matomo.superuserSecretKey" -}}
{{- if .Values.matomo.superuser.existingSecret }}{{ .Values.matomo.superuser.existingSecretKey }}{{ else }}password{{ end }}
{{- end }}

{{- define "matomo.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "matomo.fullname" .)) }}
{{- end }}
{{- define "matomo.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}password{{ end }}
{{- end }}
{{/* The embedded MariaDB's root password: beside the user's password in the generated F-database, or alone in the generated F-database-root when database.password is given. */}}
{{- define "matomo.databaseRootSecretName" -}}
{{- if and (not .Values.database.existingSecret) .Values.database.password }}
{{- printf "%s-database-root" (include "matomo.fullname" .) }}
{{- else }}
{{- include "matomo.databaseSecretName" . }}
{{- end }}
{{- end }}

{{- define "matomo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "matomo.fullname" . }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* Labels. Call with (dict "root" $ "component" "matomo"). */}}
{{- define "matomo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "matomo.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "matomo.labels" -}}
{{ include "matomo.selectorLabels" . }}
app.kubernetes.io/version: {{ include "matomo.version" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: matomo
helm.sh/chart: {{ include "matomo.chart" .root }}
{{- end }}

{{/*
Labels of the embedded MariaDB's pod template: the selector labels and the
MariaDB tag, not Matomo's version or the chart's. A pod template label that
changes restarts the pod: with `matomo.labels` there, every Matomo upgrade,
rollback or chart bump restarted the database under the serving pods.
*/}}
{{- define "matomo.databasePodLabels" -}}
{{ include "matomo.selectorLabels" (dict "root" .root "component" "database") }}
app.kubernetes.io/version: {{ regexReplaceAll "[^A-Za-z0-9_.-]" (toString .root.Values.database.embedded.image.tag) "_" | trunc 63 | trimAll "_.-" | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: matomo
{{- end }}

{{/*
The Matomo release actually deployed: the version at the start of image.tag
(5.0.3 for 5.0.3-apache), else the chart's appVersion; a tag that names no
version (a digest, "latest") is shown as it is, made label-safe.
*/}}
{{- define "matomo.version" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- $v := regexFind "^[0-9]+(\\.[0-9]+)*(-(alpha|beta|b|rc)[0-9]*)?" $tag }}
{{- if $v }}{{ $v }}{{ else }}{{ regexReplaceAll "[^A-Za-z0-9_.-]" $tag "_" | trunc 63 | trimAll "_.-" }}{{ end }}
{{- end }}

{{/* Images */}}
{{- define "matomo.image" -}}
{{- $tag := .Values.image.tag | default (printf "%s-%s" .Chart.AppVersion .Values.image.variant) }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{- define "matomo.hookImage" -}}
{{- printf "%s:%s" .Values.hook.image.repository (.Values.hook.image.tag | default .Chart.Version) }}
{{- end }}

{{- define "matomo.proxyImage" -}}
{{- printf "%s:%s" .Values.database.cloudsql.image.repository .Values.database.cloudsql.image.tag }}
{{- end }}

{{- define "matomo.mariadbImage" -}}
{{- printf "%s:%s" .Values.database.embedded.image.repository .Values.database.embedded.image.tag }}
{{- end }}

