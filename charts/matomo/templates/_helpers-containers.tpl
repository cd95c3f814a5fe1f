{{/* Containers and volumes shared by several pods (init container, Cloud SQL Auth Proxy sidecar). */}}

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
{{- /* The queue's Redis password: written into [QueuedTracking] of the local config, never in the serving containers' env. */}}
{{- if and .Values.queue.enabled (eq .Values.queue.backend "redis") (include "matomo.redisSecretName" .) }}
- name: MATOMO_QUEUE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "matomo.redisSecretName" . }}
      key: {{ include "matomo.redisSecretKey" . }}
{{- end }}
{{- end }}

{{/*
Where Matomo's code is (the upstream image's tree, read-only, never copied)
and where Matomo writes (PIWIK_USER_PATH: config/ and tmp/, the pod's
emptyDir matomo-data; files/bootstrap.php tells Matomo).
*/}}
{{- define "matomo.codeDir" -}}/usr/src/matomo{{- end }}
{{- define "matomo.userPath" -}}/var/lib/matomo{{- end }}

{{/*
The mounts of a container that runs Matomo's code: its writable space, the
managed config in it (read-only, over the copy matomo-init.sh made: config/
must exist, Matomo's, before a file is mounted into it) and bootstrap.php at
the code's root. Call with the root context.
*/}}
{{- define "matomo.codeMounts" -}}
- name: matomo-data
  mountPath: {{ include "matomo.userPath" . }}
- name: matomo-config
  mountPath: {{ include "matomo.userPath" . }}/config/common.config.ini.php
  subPath: common.config.ini.php
  readOnly: true
{{ include "matomo.bootstrapMount" . }}
{{- with include "matomo.pluginMounts" . }}
{{ . }}
{{- end }}
{{- end }}

{{/* files/bootstrap.php at the code's root (every container running Matomo's code). Call with the root context. */}}
{{- define "matomo.bootstrapMount" -}}
- name: matomo-bootstrap
  mountPath: {{ include "matomo.codeDir" . }}/bootstrap.php
  subPath: bootstrap.php
  readOnly: true
{{- end }}

{{/*
The volumes of a pod whose containers run Matomo's code (matomo.codeMounts)
and matomo-init.sh. Call with the root context.
*/}}
{{- define "matomo.codeVolumes" -}}
- name: matomo-data
  emptyDir: {}
- name: matomo-config
  secret:
    secretName: {{ include "matomo.configSecretName" . }}
    defaultMode: 0440
{{ include "matomo.scriptsVolume" (dict "root" . "name" "matomo-bootstrap" "scripts" "code") }}
{{ include "matomo.scriptsVolume" (dict "root" . "name" "chart-scripts" "scripts" "init") }}
{{- with include "matomo.pluginVolumes" . }}
{{ . }}
{{- end }}
{{- end }}

{{/*
The init container of Matomo's serving and archiver pods (files/matomo-init.sh):
writes config/config.ini.php into matomo-data; with "static", also copies the
static files nginx serves into the emptyDir matomo-static.
Call with (dict "root" $ "static" bool).
*/}}
{{- define "matomo.initContainer" -}}
{{- $root := .root }}
{{- with include "matomo.pluginInitContainers" $root }}
{{ . }}
{{- end }}
- name: matomo-init
  image: {{ include "matomo.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["/bin/sh", "/opt/matomo-chart/matomo-init.sh"]
  env:
    - name: MATOMO_CODE_DIR
      value: {{ include "matomo.codeDir" $root }}
    - name: MATOMO_USER_PATH
      value: {{ include "matomo.userPath" $root }}
    - name: MATOMO_COMMON_CONFIG
      value: /opt/matomo-config/common.config.ini.php
    {{- if .static }}
    - name: MATOMO_STATIC_DIR
      value: /var/lib/matomo-static
    {{- end }}
    {{- include "matomo.initEnv" $root | nindent 4 }}
    {{- with include "matomo.pluginInitEnv" $root }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.initResources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: matomo-data
      mountPath: {{ include "matomo.userPath" $root }}
    # Matomo's code lists its plugins from the whole config (matomo-plugins.php):
    # the script copies this file into config/ (a mount inside the emptyDir
    # would have the runtime create config/ as root, unwritable).
    - name: matomo-config
      mountPath: /opt/matomo-config/common.config.ini.php
      subPath: common.config.ini.php
      readOnly: true
    {{- if .static }}
    - name: matomo-static
      mountPath: /var/lib/matomo-static
    {{- end }}
    - name: chart-scripts
      mountPath: /opt/matomo-chart
      readOnly: true
    {{- with include "matomo.pluginMounts" $root }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
Plugins that are not in the image (plugins.extra; docs/architecture.md,
"Plugins that are not in the image"). An entry with an image is copied by an
init container plugin-<i> (the plugin's image, its sh and cp) from its path
into the emptyDir matomo-plugins; an entry with a volume is that volume
(plugin-<i>), its subPath mounted as the plugin's folder. Every container
running Matomo's code mounts both read-only (matomo.pluginMounts, in
matomo.codeMounts and matomo.initContainer) and finds them through Matomo's
MATOMO_PLUGIN_DIRS (matomo.codeEnv: "/dir;webpath" entries, ":" between them;
the web path, relative to the code's root, is mandatory). Nothing of this is
rendered when plugins.extra is empty. Each helper: call with the root context.
*/}}
{{- define "matomo.pluginsImageDir" -}}/var/lib/matomo-plugins{{- end }}
{{- define "matomo.pluginsVolumeDir" -}}/var/lib/matomo-plugin-volumes{{- end }}

{{/* Does an extra plugin come from an image ("true" or empty)? from a volume? */}}
{{- define "matomo.pluginsFromImages" -}}
{{- range .Values.plugins.extra }}{{ if .image }}true{{ end }}{{ end }}
{{- end }}
{{- define "matomo.pluginsFromVolumes" -}}
{{- range .Values.plugins.extra }}{{ if .volume }}true{{ end }}{{ end }}
{{- end }}

{{/* The value of MATOMO_PLUGIN_DIRS (empty without extra plugins). */}}
{{- define "matomo.pluginDirs" -}}
{{- $dirs := list }}
{{- if include "matomo.pluginsFromImages" . }}
{{- $dirs = append $dirs (include "matomo.pluginsImageDir" .) }}
{{- end }}
{{- if include "matomo.pluginsFromVolumes" . }}
{{- $dirs = append $dirs (include "matomo.pluginsVolumeDir" .) }}
{{- end }}
{{- $entries := list }}
{{- range $dirs }}
{{- /* the web path is the same folder, relative to the code's root: Matomo checks files there (PluginUmdAssetFetcher) */}}
{{- $entries = append $entries (printf "%s;%s%s" . (repeat (len (splitList "/" (trimPrefix "/" (include "matomo.codeDir" $)))) "../") (trimPrefix "/" .)) }}
{{- end }}
{{- join ":" $entries }}
{{- end }}

{{/* The env of every container running Matomo's code: MATOMO_PLUGIN_DIRS, only with extra plugins. */}}
{{- define "matomo.codeEnv" -}}
{{- with include "matomo.pluginDirs" . }}
- name: MATOMO_PLUGIN_DIRS
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The env of matomo-init.sh and the hook's sidecar: MATOMO_PLUGIN_DIRS and the names to activate. */}}
{{- define "matomo.pluginInitEnv" -}}
{{- with .Values.plugins.extra }}
{{- include "matomo.codeEnv" $ }}
- name: MATOMO_EXTRA_PLUGINS
  value: {{ include "matomo.pluginNames" $ | quote }}
{{- end }}
{{- end }}

{{/* The names of the extra plugins, separated by spaces. */}}
{{- define "matomo.pluginNames" -}}
{{- $names := list }}
{{- range .Values.plugins.extra }}{{ $names = append $names .name }}{{ end }}
{{- join " " $names }}
{{- end }}

{{/* The init containers that copy the extra plugins of images into matomo-plugins. */}}
{{- define "matomo.pluginInitContainers" -}}
{{- $root := . }}
{{- range $i, $p := .Values.plugins.extra }}
{{- if $p.image }}
- name: plugin-{{ $i }}
  image: {{ printf "%s:%s" $p.image.repository $p.image.tag }}
  imagePullPolicy: {{ $p.image.pullPolicy | default "IfNotPresent" }}
  # the plugin's folder into the emptyDir (through a temporary name: a restarted pod finds the last copy there)
  command:
    - /bin/sh
    - -ec
    - |
      src="$1"; dst="$2/$3"
      if [ ! -f "$src/$3.php" ]; then
        echo "plugin-copy: no $3.php in $src of this image: set the plugin's folder in plugins.extra[].path" >&2
        exit 1
      fi
      rm -rf "$dst.tmp"
      cp -R "$src" "$dst.tmp"
      rm -rf "$dst"
      mv "$dst.tmp" "$dst"
      echo "plugin-copy: copied $src to $dst" >&2
    - plugin-copy
    - {{ $p.path | default (printf "/plugins/%s" $p.name) | quote }}
    - {{ include "matomo.pluginsImageDir" $root }}
    - {{ $p.name }}
  {{- with $root.Values.initResources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: matomo-plugins
      mountPath: {{ include "matomo.pluginsImageDir" $root }}
{{- end }}
{{- end }}
{{- end }}

{{/* The read-only mounts of the extra plugins. */}}
{{- define "matomo.pluginMounts" -}}
{{- if include "matomo.pluginsFromImages" . }}
- name: matomo-plugins
  mountPath: {{ include "matomo.pluginsImageDir" . }}
  readOnly: true
{{- end }}
{{- range $i, $p := .Values.plugins.extra }}
{{- if $p.volume }}
- name: plugin-{{ $i }}
  mountPath: {{ include "matomo.pluginsVolumeDir" $ }}/{{ $p.name }}
  subPath: {{ $p.subPath | default $p.name | quote }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* The volumes of the extra plugins. */}}
{{- define "matomo.pluginVolumes" -}}
{{- if include "matomo.pluginsFromImages" . }}
- name: matomo-plugins
  emptyDir: {}
{{- end }}
{{- range $i, $p := .Values.plugins.extra }}
{{- if $p.volume }}
- name: plugin-{{ $i }}
  {{- toYaml $p.volume | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}


{{/*
The database settings of the hook image's containers (the Jobs F-hook and
F-restore): the password is the file database-password of a volume mounted
at /var/run/secrets/matomo, projected from matomo.hookDatabasePasswordSource.
In cloudsql mode the database is the proxy sidecar on 127.0.0.1.
Call with the root context.
*/}}
{{- define "matomo.hookDatabaseEnv" -}}
- name: MATOMO_DATABASE_HOST
  value: {{ include "matomo.databaseHost" . | quote }}
- name: MATOMO_DATABASE_PORT
  value: {{ include "matomo.databasePort" . | quote }}
- name: MATOMO_DATABASE_USERNAME
  value: {{ .Values.database.username | quote }}
- name: MATOMO_DATABASE_PASSWORD_FILE
  value: /var/run/secrets/matomo/database-password
- name: MATOMO_DATABASE_DBNAME
  value: {{ .Values.database.name | quote }}
- name: MATOMO_DATABASE_TABLES_PREFIX
  value: {{ .Values.database.tablesPrefix | quote }}
- name: MATOMO_DATABASE_SCHEMA
  value: {{ .Values.database.schema | quote }}
{{- end }}

{{/* A projected volume's source of the file database-password. Call with the root context. */}}
{{- define "matomo.hookDatabasePasswordSource" -}}
- secret:
    name: {{ include "matomo.databaseSecretName" . }}
    items:
      - key: {{ include "matomo.databaseSecretKey" . }}
        path: database-password
{{- end }}

{{/* The volume of the dumps (backup.enabled), mounted at /backups. Call with the root context. */}}
{{- define "matomo.backupVolume" -}}
- name: backups
  persistentVolumeClaim:
    claimName: {{ include "matomo.backupClaimName" . }}
{{- end }}
