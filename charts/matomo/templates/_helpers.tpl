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
{{- define "matomo.hookName" -}}{{ include "matomo.fullname" . }}-hook{{- end }}
{{/* CronJob and StatefulSet names must stay within 52 characters. */}}
{{- define "matomo.archiverName" -}}{{ include "matomo.fullname" . | trunc 43 | trimSuffix "-" }}-archiver{{- end }}
{{- define "matomo.mariadbName" -}}{{ include "matomo.fullname" . | trunc 44 | trimSuffix "-" }}-mariadb{{- end }}
{{- define "matomo.testName" -}}{{ include "matomo.fullname" . }}-test{{- end }}

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
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: matomo
helm.sh/chart: {{ include "matomo.chart" .root }}
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

{{/* Database endpoint as seen from a Matomo or hook pod. */}}
{{- define "matomo.databaseHost" -}}
{{- if eq .Values.database.mode "cloudsql" }}127.0.0.1
{{- else if eq .Values.database.mode "external" }}{{ required "database.external.host is required when database.mode is external" .Values.database.external.host }}
{{- else }}{{ include "matomo.mariadbName" . }}
{{- end }}
{{- end }}

{{- define "matomo.databasePort" -}}
{{- if eq .Values.database.mode "external" }}{{ .Values.database.external.port }}{{ else }}3306{{ end }}
{{- end }}

{{/* Is there an Ingress with TLS? */}}
{{- define "matomo.tls" -}}
{{- if and .Values.ingress.enabled .Values.ingress.tls }}true{{ end }}
{{- end }}

{{/* Are proxy headers trusted? */}}
{{- define "matomo.behindProxy" -}}
{{- if or .Values.ingress.enabled .Values.matomo.reverseProxy.enabled }}true{{ end }}
{{- end }}

{{/* Public URL of Matomo, without a trailing slash. */}}
{{- define "matomo.url" -}}
{{- if .Values.matomo.url }}
{{- .Values.matomo.url | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- printf "%s://%s" (ternary "https" "http" (eq (include "matomo.tls" .) "true")) (first .Values.ingress.hosts) }}
{{- else }}
{{- printf "http://%s.%s.svc" (include "matomo.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* URL of the first website. */}}
{{- define "matomo.siteUrl" -}}
{{- .Values.matomo.site.url | default (include "matomo.url" .) }}
{{- end }}

{{/* Hosts Matomo trusts (host[:port] of the public URL, the Ingress hosts, extras). Returns a JSON list. */}}
{{- define "matomo.trustedHosts" -}}
{{- $hosts := list }}
{{- if .Values.ingress.enabled }}
{{- $hosts = concat $hosts .Values.ingress.hosts }}
{{- end }}
{{- $u := urlParse (include "matomo.url" .) }}
{{- $hosts = append $hosts $u.host }}
{{- $hosts = concat $hosts .Values.matomo.trustedHosts }}
{{- $hosts | uniq | toJson }}
{{- end }}

{{/* An INI value: integers and booleans bare, strings double-quoted. */}}
{{- define "matomo.iniValue" -}}
{{- $v := . }}
{{- if kindIs "bool" $v }}{{ ternary "1" "0" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) }}{{ $v }}
{{- else }}
{{- $s := toString $v }}
{{- if or (contains "\"" $s) (contains "\n" $s) (contains "\r" $s) (contains "${" $s) }}
{{- fail (printf "INI value %s contains a double quote, a newline or \"${\", which config.ini.php cannot hold" $s) }}
{{- end }}
{{- /* A backslash is written doubled, as Matomo's IniWriter does. */}}
{{- printf "\"%s\"" (replace "\\" "\\\\" $s) }}
{{- end }}
{{- end }}

{{/* Render an INI section body from a dict: lists become key[] lines. */}}
{{- define "matomo.iniSection" -}}
{{- range $k, $v := . }}
{{- if kindIs "slice" $v }}
{{- range $item := $v }}
{{ $k }}[] = {{ include "matomo.iniValue" $item }}
{{- end }}
{{- else if kindIs "map" $v }}
{{- fail (printf "matomo.config: %s is a map; only scalars and lists are allowed inside a section" $k) }}
{{- else }}
{{ $k }} = {{ include "matomo.iniValue" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The managed sections of common.config.ini.php as a dict of dicts.
Call with (dict "root" $ "hook" false).
The hook variant keeps the installer on, trusts the sidecar's loopback address
and leaves out the proxy settings and the user's extra sections.
*/}}
{{- define "matomo.managedConfig" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $db := dict
  "host" (include "matomo.databaseHost" $root)
  "port" (include "matomo.databasePort" $root | int)
  "dbname" $v.database.name
  "username" $v.database.username
  "tables_prefix" $v.database.tablesPrefix
  "charset" $v.database.charset
  "collation" $v.database.collation
  "schema" $v.database.schema
  "adapter" $v.database.adapter
}}
{{- $general := dict
  "multi_server_environment" 1
  "session_save_handler" "dbtable"
}}
{{- if .hook }}
{{- $_ := set $general "enable_installer" 1 }}
{{- $_ := set $general "trusted_hosts" (concat (list "127.0.0.1:8080" "localhost:8080") (include "matomo.trustedHosts" $root | fromJsonArray)) }}
{{- else }}
{{- $_ := set $general "enable_installer" 0 }}
{{- $_ := set $general "trusted_hosts" (include "matomo.trustedHosts" $root | fromJsonArray) }}
{{- if include "matomo.behindProxy" $root }}
{{- $_ := set $general "proxy_client_headers" $v.matomo.reverseProxy.clientHeaders }}
{{- $_ := set $general "proxy_host_headers" $v.matomo.reverseProxy.hostHeaders }}
{{- end }}
{{- if or (include "matomo.tls" $root) $v.matomo.reverseProxy.assumeSecureProtocol }}
{{- $_ := set $general "assume_secure_protocol" 1 }}
{{- end }}
{{- end }}
{{- if $v.archiver.enabled }}
{{- $_ := set $general "enable_browser_archiving_triggering" 0 }}
{{- $_ := set $general "archiving_range_force_on_browser_request" 0 }}
{{- end }}
{{- $sections := dict "database" $db "General" $general }}
{{- if not .hook }}
{{- range $name, $extra := $v.matomo.config }}
{{- if not (kindIs "map" $extra) }}
{{- fail (printf "matomo.config.%s must be a map of settings (an INI section)" $name) }}
{{- end }}
{{- $_ := set $sections $name (merge (deepCopy $extra) (get $sections $name | default dict)) }}
{{- end }}
{{- end }}
{{- $sections | toYaml }}
{{- end }}

{{/* common.config.ini.php text. Call with (dict "root" $ "hook" bool). */}}
{{- define "matomo.commonConfig" -}}
; <?php exit; ?> DO NOT REMOVE THIS LINE
; Managed by the Helm release {{ .root.Release.Name }} (chart {{ include "matomo.chart" .root }}); do not edit.
; No password and no salt here: the local config.ini.php (written at pod start) holds them and wins key by key.
{{- $sections := include "matomo.managedConfig" . | fromYaml }}
{{- range $name := list "database" "General" }}

[{{ $name }}]
{{- include "matomo.iniSection" (index $sections $name) }}
{{- end }}
{{- range $name, $body := $sections }}
{{- if not (has $name (list "database" "General")) }}

[{{ $name }}]
{{- include "matomo.iniSection" $body }}
{{- end }}
{{- end }}
{{ end }}

{{/* Checksums in pod templates: changed values roll the pods (chart upgrades roll them through the helm.sh/chart label). */}}
{{- define "matomo.configChecksum" -}}
{{- include "matomo.commonConfig" (dict "root" . "hook" false) | sha256sum }}
{{- end }}
{{- define "matomo.webChecksum" -}}
{{- list (.Files.Get "files/matomo-init.sh") .Values.image.variant .Values.nginx.clientMaxBodySize | toJson | sha256sum }}
{{- end }}

{{/*
Cloud SQL Auth Proxy v2 as a native sidecar (an initContainer with restartPolicy Always).
Call with the root context.
*/}}
{{- define "matomo.cloudsqlProxy" -}}
{{- $c := .Values.database.cloudsql }}
- name: cloud-sql-proxy
  image: {{ include "matomo.proxyImage" . }}
  imagePullPolicy: {{ $c.image.pullPolicy }}
  restartPolicy: Always
  args:
    - --structured-logs
    - --port=3306
    - --health-check
    - --http-address=0.0.0.0
    - --http-port=9801
    - --exit-zero-on-sigterm
    - --quitquitquit
    - --admin-port=9092
    {{- if $c.privateIP }}
    - --private-ip
    {{- end }}
    {{- if $c.autoIAMAuthn }}
    - --auto-iam-authn
    {{- end }}
    {{- if $c.credentials.existingSecret }}
    - --credentials-file=/var/run/secrets/cloudsql/{{ $c.credentials.key }}
    {{- end }}
    {{- range $c.extraArgs }}
    - {{ . | quote }}
    {{- end }}
    - {{ required "database.cloudsql.instanceConnectionName is required when database.mode is cloudsql" $c.instanceConnectionName | quote }}
  ports:
    - name: proxy-health
      containerPort: 9801
      protocol: TCP
  startupProbe:
    httpGet:
      path: /startup
      port: proxy-health
    periodSeconds: 1
    timeoutSeconds: 5
    failureThreshold: 60
  livenessProbe:
    httpGet:
      path: /liveness
      port: proxy-health
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  lifecycle:
    preStop:
      exec:
        command: ["/cloud-sql-proxy", "shutdown", "--admin-port", "9092"]
  {{- with $c.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $c.securityContext | nindent 4 }}
  {{- if $c.credentials.existingSecret }}
  volumeMounts:
    - name: cloudsql-credentials
      mountPath: /var/run/secrets/cloudsql
      readOnly: true
  {{- end }}
{{- end }}

{{/* Volumes needed by the proxy sidecar. */}}
{{- define "matomo.cloudsqlVolumes" -}}
{{- if and (eq .Values.database.mode "cloudsql") .Values.database.cloudsql.credentials.existingSecret }}
- name: cloudsql-credentials
  secret:
    secretName: {{ .Values.database.cloudsql.credentials.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Env of matomo-init.sh (password and salt from secretKeyRefs). */}}
{{- define "matomo.initEnv" -}}
- name: MATOMO_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "matomo.databaseSecretName" . }}
      key: {{ include "matomo.databaseSecretKey" . }}
- name: MATOMO_SALT
  valueFrom:
    secretKeyRef:
      name: {{ include "matomo.saltSecretName" . }}
      key: {{ include "matomo.saltSecretKey" . }}
{{- end }}

{{/*
The init container of Matomo pods: copies the code into the emptyDir and
writes the local config.ini.php. Call with (dict "root" $ "writeConfig" bool "name" "...").
*/}}
{{- define "matomo.initContainer" -}}
{{- $root := .root }}
- name: {{ .name | default "matomo-init" }}
  image: {{ include "matomo.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["/bin/sh", "/opt/matomo-chart/matomo-init.sh"]
  env:
    - name: MATOMO_INIT_WRITE_CONFIG
      value: {{ ternary "1" "0" .writeConfig | quote }}
    {{- if .writeConfig }}
    {{- include "matomo.initEnv" $root | nindent 4 }}
    {{- end }}
  {{- with $root.Values.initResources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: matomo-code
      mountPath: /var/www/html
    {{- with .extraMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    - name: chart-scripts
      mountPath: /opt/matomo-chart
      readOnly: true
{{- end }}

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
