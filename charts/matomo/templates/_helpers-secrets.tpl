{{/*
The Secrets the pre-install/pre-upgrade Job F-secrets creates once when they
are absent (docs/architecture.md, "Generated Secrets"), as the JSON list
[{"name": ..., "keys": {KEY: LENGTH}}] of MATOMO_HOOK_SECRETS. Empty when
every value comes from values or an existingSecret (then no Job is rendered).
Map keys come out sorted, so the JSON is the same on every render.
*/}}
{{- define "matomo.generatedSecrets" -}}
{{- $list := list }}
{{- if not .Values.matomo.salt.existingSecret }}
{{- $list = append $list (dict "name" (include "matomo.saltSecretName" .) "keys" (dict "salt" 64)) }}
{{- end }}
{{- if not (or .Values.matomo.superuser.existingSecret .Values.matomo.superuser.password) }}
{{- $list = append $list (dict "name" (include "matomo.superuserSecretName" .) "keys" (dict "password" 24)) }}
{{- end }}
{{- if and (eq .Values.database.mode "embedded") (not .Values.database.existingSecret) }}
{{- $root := .Values.database.embedded.rootPasswordKey }}
{{- if .Values.database.password }}
{{- $list = append $list (dict "name" (include "matomo.databaseRootSecretName" .) "keys" (dict $root 32)) }}
{{- else }}
{{- $list = append $list (dict "name" (include "matomo.databaseSecretName" .) "keys" (dict "password" 32 $root 32)) }}
{{- end }}
{{- end }}
{{- $q := .Values.queue }}
{{- if and $q.enabled (eq $q.backend "redis") (eq $q.redis.mode "embedded") (not $q.redis.existingSecret) (not $q.redis.password) }}
{{- $list = append $list (dict "name" (include "matomo.redisSecretName" .) "keys" (dict "password" 32)) }}
{{- end }}
{{- toJson $list }}
{{- end }}

{{/* Hook annotations of the Job F-secrets and its RBAC objects. Call with (dict "root" $ "weight" N). */}}
{{- define "matomo.secretsHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}
