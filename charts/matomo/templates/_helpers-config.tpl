{{/* Rendering of the managed config (common.config.ini.php), URLs, trusted hosts and checksums. */}}

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
and leaves out the proxy settings and the user's extra sections but [Plugins].
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
{{- if and $v.queue.enabled (not .hook) }}
{{- $_ := set $sections "QueuedTracking" (include "matomo.queuedTrackingConfig" $root | fromYaml) }}
{{- end }}
{{- range $name, $extra := $v.matomo.config }}
{{- if not (kindIs "map" $extra) }}
{{- fail (printf "matomo.config.%s must be a map of settings (an INI section)" $name) }}
{{- end }}
{{- /* The hook's sidecar takes only [Plugins] of the user's sections: it must load
the plugins the serving pods load, to install them in the database. */}}
{{- if or (not $.hook) (eq $name "Plugins") }}
{{- $_ := set $sections $name (merge (deepCopy $extra) (get $sections $name | default dict)) }}
{{- end }}
{{- end }}
{{- $sections | toYaml }}
{{- end }}

{{/*
The [QueuedTracking] section (queue.*), with the plugin's setting names
(docs/research/queuedtracking.md, section 2): a setting in the config wins over
the database's and is hidden from the UI. No redisPassword: matomo-init.sh
writes it into the pod's local config.ini.php. Call with the root context.
*/}}
{{- define "matomo.queuedTrackingConfig" -}}
{{- $q := .Values.queue }}
{{- $s := dict
  "queueEnabled" 1
  "backend" $q.backend
  "numQueueWorkers" ($q.numQueueWorkers | int)
  "numRequestsToProcess" ($q.numRequestsToProcess | int)
  "processDuringTrackingRequest" (ternary 1 0 (and $q.processDuringTrackingRequest (not $q.workers.enabled)))
}}
{{- if eq $q.backend "redis" }}
{{- $r := $q.redis }}
{{- if eq $r.mode "embedded" }}
{{- $_ := set $s "redisHost" (include "matomo.redisName" .) }}
{{- $_ := set $s "redisPort" "6379" }}
{{- else }}
{{- $_ := set $s "redisHost" $r.host }}
{{- $_ := set $s "redisPort" (toString $r.port) }}
{{- end }}
{{- $_ := set $s "redisDatabase" ($r.database | int) }}
{{- $_ := set $s "redisTimeout" (float64 $r.timeout) }}
{{- if $r.sentinel.enabled }}
{{- $_ := set $s "useWhatRedisBackendType" 2 }}
{{- $_ := set $s "sentinelMasterName" $r.sentinel.masterName }}
{{- else }}
{{- $_ := set $s "useWhatRedisBackendType" 1 }}
{{- end }}
{{- end }}
{{- toYaml $s }}
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

{{/* Checksum in pod templates: changed values roll the pods (chart upgrades roll them through the helm.sh/chart label); checksum/web and checksum/scripts: _helpers-files.tpl. */}}
{{- define "matomo.configChecksum" -}}
{{- include "matomo.commonConfig" (dict "root" . "hook" false) | sha256sum }}
{{- end }}

