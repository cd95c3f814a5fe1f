{{/*
NetworkPolicy egress rules shared by the policies of the Matomo, hook and
archiver pods (each renders a list of rules; call with the root context).
Policies see the pod IP and port behind a Service (after its DNAT), so every
rule names the pods or addresses that really answer, never a ClusterIP.
*/}}

{{/* DNS, to any address (the cluster DNS or a node-local cache). */}}
{{- define "matomo.netpolEgressDNS" -}}
# DNS
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/* The database of database.mode: the MariaDB pods, the external port, or what the Cloud SQL Auth Proxy sidecar reaches. */}}
{{- define "matomo.netpolEgressDatabase" -}}
{{- $mode := .Values.database.mode }}
{{- if eq $mode "embedded" }}
- to:
    - podSelector:
        matchLabels:
          {{- include "matomo.selectorLabels" (dict "root" . "component" "database") | nindent 10 }}
  ports:
    - port: 3306
      protocol: TCP
{{- else if eq $mode "external" }}
- to:
    {{- range .Values.networkPolicy.databaseCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: {{ .Values.database.external.port }}
      protocol: TCP
{{- else }}
# Cloud SQL: Google APIs (443) and the instance's server-side proxy (3307).
- to:
    {{- range .Values.networkPolicy.databaseCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 443
      protocol: TCP
    - port: 3307
      protocol: TCP
# GKE metadata server (Workload Identity tokens).
- to:
    - ipBlock:
        cidr: 169.254.169.254/32
    - ipBlock:
        cidr: 169.254.169.252/32
  ports:
    - port: 80
      protocol: TCP
    - port: 988
      protocol: TCP
{{- end }}
{{- end }}

{{/*
The queue's Redis (queue.enabled, backend redis): the embedded Redis pods, or
networkPolicy.redisCIDRs on queue.redis.port(s) (and 6379, the usual port of
the master the Sentinels name). Empty otherwise: include it with `with`.
*/}}
{{- define "matomo.netpolEgressRedis" -}}
{{- $q := .Values.queue }}
{{- if and $q.enabled (eq $q.backend "redis") }}
{{- if eq $q.redis.mode "embedded" }}
# The queue's Redis (embedded).
- to:
    - podSelector:
        matchLabels:
          {{- include "matomo.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
  ports:
    - port: 6379
      protocol: TCP
{{- else }}
{{- $ports := splitList "," (toString $q.redis.port) }}
{{- if $q.redis.sentinel.enabled }}{{ $ports = append $ports "6379" }}{{ end }}
# The queue's Redis (external).
- to:
    {{- range .Values.networkPolicy.redisCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range uniq $ports }}
    - port: {{ . | int }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Kubernetes API server (the hook patches the Deployment and watches the rollout). */}}
{{- define "matomo.netpolEgressAPIServer" -}}
# Kubernetes API server: the endpoint behind the `kubernetes` Service (443 or 6443).
- to:
    {{- range .Values.networkPolicy.apiServerCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 443
      protocol: TCP
    - port: 6443
      protocol: TCP
{{- end }}

{{/* "true" when matomo.url (the archiver's --url) is this release's Service: F, F.<ns>, F.<ns>.svc[.<cluster domain>]. */}}
{{- define "matomo.urlInCluster" -}}
{{- $host := (urlParse (include "matomo.url" .)).hostname }}
{{- $f := include "matomo.fullname" . }}
{{- $svc := printf "%s.%s.svc" $f .Release.Namespace }}
{{- if or (eq $host $f) (eq $host (printf "%s.%s" $f .Release.Namespace)) (eq $host $svc) (hasPrefix (printf "%s." $svc) $host) }}true{{ end }}
{{- end }}

{{/*
The URL of `core:archive --url`: the serving pods' http port when it is the
in-cluster Service, else TCP 80 and 443 to networkPolicy.archiverURLCIDRs and,
with the chart's Ingress, to the ingress controller pods (a load balancer
address may be short-circuited to them inside the cluster).
*/}}
{{- define "matomo.netpolEgressMatomoURL" -}}
{{- if include "matomo.urlInCluster" . }}
# Matomo (core:archive --url is the in-cluster Service).
- to:
    - podSelector:
        matchLabels:
          {{- include "matomo.selectorLabels" (dict "root" . "component" "matomo") | nindent 10 }}
  ports:
    - port: http
      protocol: TCP
{{- else }}
# Matomo's public URL (core:archive --url).
- to:
    {{- range .Values.networkPolicy.archiverURLCIDRs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- if .Values.ingress.enabled }}
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.ingressControllerNamespaceSelector | nindent 8 }}
      {{- with .Values.networkPolicy.ingressControllerPodSelector }}
      podSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
  ports:
    - port: 80
      protocol: TCP
    - port: 443
      protocol: TCP
{{- end }}
{{- end }}
