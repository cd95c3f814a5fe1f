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
{{- end }}

{{/*
The init container of Matomo's serving and archiver pods (files/matomo-init.sh):
writes config/config.ini.php into matomo-data; with "static", also copies the
static files nginx serves into the emptyDir matomo-static.
Call with (dict "root" $ "static" bool).
*/}}
{{- define "matomo.initContainer" -}}
{{- $root := .root }}
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
