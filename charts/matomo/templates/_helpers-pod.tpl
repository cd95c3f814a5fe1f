{{/*
Pod-level fields shared by every workload of the chart (the Matomo
Deployment, the archiver CronJob, the hook Jobs F-hook and F-secrets, the
embedded MariaDB and the helm test pod): each template writes its containers
and volumes, and these helpers write the rest, so that a pod-level value
(imagePullSecrets, ...) reaches every pod the same way.
*/}}

{{/*
The pod's settings, before its containers: restartPolicy, serviceAccountName,
automountServiceAccountToken, enableServiceLinks (always false),
imagePullSecrets (every pod), priorityClassName,
terminationGracePeriodSeconds, securityContext. Call with (dict
  "root" $
  "automountServiceAccountToken" bool   required: does the pod call the Kubernetes API?
  "why" "..."                           optional: the reason, a comment on that line
  "securityContext" .Values...          the pod security context
  "restartPolicy" "Never"               optional (Jobs, the test pod)
  "serviceAccountName" "..."            optional (default: the namespace's `default`)
  "priorityClassName" "..."             optional
  "terminationGracePeriodSeconds" n     optional).
*/}}
{{- define "matomo.podSettings" -}}
{{- if not (hasKey . "automountServiceAccountToken") }}
{{- fail "matomo.podSettings: automountServiceAccountToken is required" }}
{{- end }}
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
{{- with .serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .why }}
# {{ . }}
{{- end }}
automountServiceAccountToken: {{ .automountServiceAccountToken }}
# No Service env vars: they could clash with the MATOMO_* settings.
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if hasKey . "terminationGracePeriodSeconds" }}
terminationGracePeriodSeconds: {{ .terminationGracePeriodSeconds }}
{{- end }}
securityContext:
  {{- toYaml .securityContext | nindent 2 }}
{{- end }}

{{/*
Where the pod runs, after its volumes: nodeSelector, tolerations, affinity and
topologySpreadConstraints of a component's values (.Values for the Matomo
pods, .Values.archiver, .Values.hook, .Values.database.embedded). Call with
that map; empty when none is set.
*/}}
{{- define "matomo.podScheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A volume of some of the chart's scripts (ConfigMap F-scripts): the scripts of
the group `scripts` of matomo.scripts ("init" or "hook"). Call with
(dict "root" $ "name" volume-name "scripts" group).
*/}}
{{- define "matomo.scriptsVolume" -}}
- name: {{ .name }}
  configMap:
    name: {{ include "matomo.scriptsName" .root }}
    items:
      {{- range index (include "matomo.scripts" .root | fromJson) .scripts }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}
