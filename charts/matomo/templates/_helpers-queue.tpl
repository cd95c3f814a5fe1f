{{/*
The queue workers (queue.workers): Matomo pods that run
`console queuedtracking:process`, from a Deployment or a CronJob
(templates/queue/). Same init container as the serving pods (config,
[PluginsInstalled], the Redis password), the code read-only from the image.
*/}}

{{/* Are there queue workers? "true" or empty. */}}
{{- define "matomo.queueWorkers" -}}
{{- if and .Values.queue.enabled .Values.queue.workers.enabled }}true{{ end }}
{{- end }}

{{/*
The pod spec of a worker. Call with (dict "root" $ "cron" bool): a CronJob's
pod runs one pass and ends; a Deployment's loops forever (--cycle=0), which
also drains a queue's last requests (fewer than a batch) after ~10 s idle.
*/}}
{{- define "matomo.queueWorkerPodSpec" -}}
{{- $root := .root }}
{{- $w := $root.Values.queue.workers }}
{{- $settings := dict "root" $root
      "serviceAccountName" (include "matomo.serviceAccountName" $root)
      "automountServiceAccountToken" false
      "terminationGracePeriodSeconds" $w.terminationGracePeriodSeconds
      "securityContext" $root.Values.podSecurityContext }}
{{- if .cron }}{{ $_ := set $settings "restartPolicy" "Never" }}{{ end }}
{{- include "matomo.podSettings" $settings }}
initContainers:
  {{- /* the proxy first (a native sidecar): matomo-init's version check reads the database through it */}}
  {{- if eq $root.Values.database.mode "cloudsql" }}
  {{- include "matomo.cloudsqlProxy" $root | trim | nindent 2 }}
  {{- end }}
  {{- include "matomo.initContainer" (dict "root" $root) | trim | nindent 2 }}
containers:
  - name: queue-worker
    image: {{ include "matomo.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    command:
      - /bin/sh
      - -ec
      - |
        # PID 1 ignores any signal it does not trap, and so would php: on one, stop
        # the running command and exit. A batch not committed yet is rolled back
        # and stays queued; its lock expires and another worker takes it.
        pid=""
        stop() { [ -z "$pid" ] || kill "$pid" 2>/dev/null; exit 143; }
        for sig in TERM INT QUIT WINCH HUP; do trap stop "$sig"; done
        # Until the hook has installed or upgraded Matomo's database (exit 3), there
        # is nothing to store hits into: {{ if .cron }}skip this run{{ else }}wait{{ end }}.
        while :; do
          MATOMO_VERSION_CHECK_MODE=archive php /opt/matomo-chart/matomo-version-check.php \
            {{ include "matomo.codeDir" $root }} {{ include "matomo.userPath" $root }} &
          pid=$!; rc=0; wait "$pid" || rc=$?
          if [ "$rc" -ne 3 ]; then break; fi
          {{- if .cron }}
          exit 0
          {{- else }}
          sleep 10 &
          pid=$!; wait "$pid"
          {{- end }}
        done
        if [ "$rc" -ne 0 ]; then exit "$rc"; fi
        php {{ include "matomo.codeDir" $root }}/console queuedtracking:process "$@" &
        pid=$!; wait "$pid"
      - queue-worker
      {{- if not .cron }}
      - --cycle=0
      {{- end }}
      {{- range $w.extraArgs }}
      - {{ . | quote }}
      {{- end }}
    {{- with include "matomo.codeEnv" $root }}
    env:
      {{- . | nindent 6 }}
    {{- end }}
    {{- with $w.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      {{- include "matomo.codeMounts" $root | nindent 6 }}
      - name: chart-scripts
        mountPath: /opt/matomo-chart
        readOnly: true
      - name: tmp
        mountPath: /tmp
      {{- with $root.Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  {{- include "matomo.codeVolumes" $root | nindent 2 }}
  - name: tmp
    emptyDir: {}
  {{- with $root.Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with include "matomo.cloudsqlVolumes" $root }}{{ . | trim | nindent 2 }}{{ end }}
{{- with include "matomo.podScheduling" $w }}{{ . | trim | nindent 0 }}{{ end }}
{{- end }}

{{/*
The embedded Redis's probe: PONG to PING, with the password from the Secret's
file in redis-cli's environment (never in its arguments). -LOADING (replaying
the append-only file) or no answer fails it.
*/}}
{{- define "matomo.redisPing" -}}
[ "$(REDISCLI_AUTH="$(cat /var/run/secrets/redis/password)" redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)" = PONG ]
{{- end }}
