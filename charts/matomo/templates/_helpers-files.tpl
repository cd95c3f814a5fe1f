{{/*
What the chart's files/ become: the web server config (ConfigMap F-web) and
the scripts (ConfigMap F-scripts), and the checksums that roll the Matomo
pods when they change.
*/}}

{{/*
The web server config of image.variant, by ConfigMap key (JSON): apache
(files/apache/: ports.conf + vhost) listening on 8080 so that it runs as
www-data (uid 33) without privileges, or nginx (files/nginx/, rendered
with tpl: nginx.clientMaxBodySize) in front of php-fpm on 127.0.0.1:9000.
*/}}
{{- define "matomo.webConfigFiles" -}}
{{- if eq .Values.image.variant "apache" }}
{{- dict
      "ports.conf" (.Files.Get "files/apache/ports.conf")
      "000-default.conf" (.Files.Get "files/apache/000-default.conf") | toJson }}
{{- else }}
{{- dict "default.conf" (tpl (.Files.Get "files/nginx/default.conf") .) | toJson }}
{{- end }}
{{- end }}

{{/*
The web server config of the tracker pods (tracker.enabled), by ConfigMap key
(JSON), beside the serving pods' keys in F-web: apache's ports.conf (the
same Listen 8080) and the vhost files/apache/tracker.conf, or nginx's server
files/nginx/tracker.conf (rendered with tpl). Both serve the tracking
endpoints only; every other path is refused.
*/}}
{{- define "matomo.trackerWebConfigFiles" -}}
{{- if eq .Values.image.variant "apache" }}
{{- dict
      "ports.conf" (.Files.Get "files/apache/ports.conf")
      "tracker-000-default.conf" (.Files.Get "files/apache/tracker.conf") | toJson }}
{{- else }}
{{- dict "tracker-default.conf" (tpl (.Files.Get "files/nginx/tracker.conf") .) | toJson }}
{{- end }}
{{- end }}

{{/* The ConfigMap key of the tracker's apache vhost or nginx server. */}}
{{- define "matomo.trackerVhostKey" -}}
{{- ternary "tracker-000-default.conf" "tracker-default.conf" (eq .Values.image.variant "apache") }}
{{- end }}

{{/*
The chart's scripts (files/, ConfigMap F-scripts) by the pods' volume that
mounts them (JSON):
- code: bootstrap.php, mounted at the code's root in every container that runs
  Matomo's code (it points Matomo to its writable space);
- init: matomo-init.sh, matomo-plugins.php and matomo-version-check.php, run by
  the init container of the serving and archiver pods;
- hook: hook-matomo.sh and matomo-tables.php, run by the hook pod's Matomo
  installer sidecar; with plugins.extra, also matomo-plugins.php (the sidecar
  lists the [Plugins] to activate with it).
*/}}
{{- define "matomo.scripts" -}}
{{- $hook := list "hook-matomo.sh" "matomo-tables.php" }}
{{- if .Values.plugins.extra }}
{{- $hook = append $hook "matomo-plugins.php" }}
{{- end }}
{{- dict
      "code" (list "bootstrap.php")
      "init" (list "matomo-init.sh" "matomo-plugins.php" "matomo-version-check.php")
      "hook" $hook | toJson }}
{{- end }}

{{/*
Checksums in the Matomo pods' template: a changed web config or init script
rolls them (chart upgrades roll them through the helm.sh/chart label).
*/}}
{{- define "matomo.webChecksum" -}}
{{- include "matomo.webConfigFiles" . | sha256sum }}
{{- end }}
{{- define "matomo.trackerWebChecksum" -}}
{{- include "matomo.trackerWebConfigFiles" . | sha256sum }}
{{- end }}
{{- define "matomo.scriptsChecksum" -}}
{{- $root := . }}
{{- $texts := list }}
{{- $scripts := include "matomo.scripts" . | fromJson }}
{{- range concat $scripts.code $scripts.init }}
{{- $texts = append $texts ($root.Files.Get (printf "files/%s" .)) }}
{{- end }}
{{- $texts | toJson | sha256sum }}
{{- end }}

{{/*
redis.conf of the embedded Redis (ConfigMap F-redis; its checksum rolls the
pod). The queue must lose nothing: no eviction, an append-only file.
*/}}
{{- define "matomo.redisConf" -}}
# Every address of the pod (IPv6 only if it has one); the NetworkPolicy F-redis
# and the password decide who gets in.
bind * -::*
port 6379
protected-mode yes
daemonize no
logfile ""
dir /data
# Queued hits survive a restart: append-only file, fsync every second
# (at most the last second of hits is lost when the node itself dies).
appendonly yes
appendfsync everysec
save ""
# Evicting keys would drop queued hits: refuse writes when full instead.
maxmemory-policy noeviction
{{- with .Values.queue.redis.embedded.maxmemory }}
maxmemory {{ . }}
{{- end }}
# requirepass, written at start from the Secret's file (templates/redis/statefulset.yaml)
include /run/redis/auth.conf
{{- end }}
