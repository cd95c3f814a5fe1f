{{/*
The pod template of the Deployments that serve Matomo over HTTP: the serving
Deployment F (component matomo, the UI, the API and, without the tracker,
tracking) and the tracker Deployment F-tracker (component tracker, the
tracking endpoints only). One template, so that the init container, the
code's mounts and volumes, the probes and the preStop rule are the same in
both; what differs comes from the call:
  "root" $                  the root context
  "component" "matomo"      the pods' component label
  "values" .Values          the component's own values: podLabels,
                            podAnnotations, resources, priorityClassName,
                            nodeSelector, tolerations, affinity,
                            topologySpreadConstraints (.Values for F,
                            .Values.tracker for F-tracker)
  "webChecksum" "..."       the checksum of the web server config it mounts
  "vhostKey" "..."          the key of ConfigMap F-web that is its apache vhost
                            (000-default.conf) or nginx server (default.conf)
*/}}
{{- define "matomo.servingPodTemplate" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $apache := eq $root.Values.image.variant "apache" }}
{{- $cloudsql := eq $root.Values.database.mode "cloudsql" }}
metadata:
  labels:
    {{- include "matomo.labels" (dict "root" $root "component" .component) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "matomo.configChecksum" $root }}
    checksum/web: {{ .webChecksum }}
    checksum/scripts: {{ include "matomo.scriptsChecksum" $root }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- include "matomo.podSettings" (dict "root" $root
        "serviceAccountName" (include "matomo.serviceAccountName" $root)
        "automountServiceAccountToken" false
        "why" "Matomo never calls the Kubernetes API (Workload Identity needs no token either)."
        "priorityClassName" $v.priorityClassName
        "terminationGracePeriodSeconds" $root.Values.terminationGracePeriodSeconds
        "securityContext" $root.Values.podSecurityContext) | trim | nindent 2 }}
  initContainers:
    {{- /* the proxy first (a native sidecar, started before the next init container): matomo-init's
         version check reads the database through it */}}
    {{- if $cloudsql }}
    {{- include "matomo.cloudsqlProxy" $root | trim | nindent 4 }}
    {{- end }}
    {{- include "matomo.initContainer" (dict "root" $root "static" (not $apache)) | trim | nindent 4 }}
  containers:
    - name: matomo
      image: {{ include "matomo.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      {{- if $apache }}
      command: ["apache2-foreground"]
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      {{- else }}
      command: ["php-fpm"]
      ports:
        - name: fastcgi
          containerPort: 9000
          protocol: TCP
      {{- end }}
      {{- $codeEnv := include "matomo.codeEnv" $root }}
      {{- if or $codeEnv $root.Values.extraEnv }}
      env:
        {{- with $codeEnv }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- if $apache }}
      startupProbe:
        {{- toYaml $root.Values.startupProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml $root.Values.readinessProbe | nindent 8 }}
      livenessProbe:
        {{- toYaml $root.Values.livenessProbe | nindent 8 }}
      {{- else }}
      # php-fpm listening, checked every second (readinessProbe says why)
      startupProbe:
        tcpSocket:
          port: fastcgi
        periodSeconds: 1
        timeoutSeconds: 5
        failureThreshold: 120
      readinessProbe:
        tcpSocket:
          port: fastcgi
        periodSeconds: 1
        timeoutSeconds: 5
      livenessProbe:
        tcpSocket:
          port: fastcgi
        initialDelaySeconds: 10
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 6
      {{- end }}
      {{- with $root.Values.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "matomo.codeMounts" $root | nindent 8 }}
        - name: tmp
          mountPath: /tmp
        {{- if $apache }}
        - name: apache-run
          mountPath: /var/run/apache2
        - name: apache-lock
          mountPath: /var/lock/apache2
        - name: web-config
          mountPath: /etc/apache2/ports.conf
          subPath: ports.conf
          readOnly: true
        - name: web-config
          mountPath: /etc/apache2/sites-available/000-default.conf
          subPath: {{ .vhostKey }}
          readOnly: true
        {{- end }}
        {{- with $root.Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- if not $apache }}
    - name: nginx
      image: {{ printf "%s:%s" $root.Values.nginx.image.repository $root.Values.nginx.image.tag }}
      imagePullPolicy: {{ $root.Values.nginx.image.pullPolicy }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      startupProbe:
        {{- toYaml $root.Values.startupProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml $root.Values.readinessProbe | nindent 8 }}
      livenessProbe:
        {{- toYaml $root.Values.livenessProbe | nindent 8 }}
      {{- with $root.Values.nginx.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.nginx.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.nginx.securityContext | nindent 8 }}
      volumeMounts:
        # the static files only (matomo-init copied them): nginx's image has no Matomo
        - name: matomo-static
          mountPath: {{ include "matomo.codeDir" $root }}
          readOnly: true
        - name: web-config
          mountPath: /etc/nginx/conf.d/default.conf
          subPath: {{ .vhostKey }}
          readOnly: true
        - name: nginx-tmp
          mountPath: /tmp
        - name: nginx-cache
          mountPath: /var/cache/nginx
    {{- end }}
  volumes:
    {{- include "matomo.codeVolumes" $root | nindent 4 }}
    - name: tmp
      emptyDir: {}
    - name: web-config
      configMap:
        name: {{ include "matomo.webConfigName" $root }}
    {{- if $apache }}
    - name: apache-run
      emptyDir: {}
    - name: apache-lock
      emptyDir: {}
    {{- else }}
    - name: matomo-static
      emptyDir: {}
    - name: nginx-tmp
      emptyDir: {}
    - name: nginx-cache
      emptyDir: {}
    {{- end }}
    {{- with $root.Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with include "matomo.cloudsqlVolumes" $root }}{{ . | trim | nindent 4 }}{{ end }}
  {{- with include "matomo.podScheduling" $v }}{{ . | trim | nindent 2 }}{{ end }}
{{- end }}

{{/*
The paths the Ingress sends to F-tracker (JSON list), under ingress.path: what
the tracker's web config serves (files/apache/tracker.conf,
files/nginx/tracker.conf): the tracking API, the tracker JavaScript and
Matomo's js/ proxy of both.
*/}}
{{- define "matomo.trackerPaths" -}}
{{- $base := trimSuffix "/" .Values.ingress.path }}
{{- $paths := list }}
{{- range list "matomo.php" "piwik.php" "matomo.js" "piwik.js" "js/" "js/index.php" }}
{{- $paths = append $paths (printf "%s/%s" $base .) }}
{{- end }}
{{- $paths | toJson }}
{{- end }}

{{/*
The Deployments the hook restarts after an install or upgrade that changed
the database (MATOMO_HOOK_DEPLOYMENT, comma-separated, and the hook Role's
resourceNames): F, and F-tracker when tracker.enabled (its pods keep the same
per-pod caches).
*/}}
{{- define "matomo.hookRollTargets" -}}
{{- include "matomo.fullname" . }}
{{- if .Values.tracker.enabled }},{{ include "matomo.trackerName" . }}{{ end }}
{{- end }}
