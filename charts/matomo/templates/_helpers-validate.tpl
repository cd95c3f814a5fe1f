{{/*
Checks of values that JSON Schema cannot express (values.schema.json has the
rest): each fails the render with a message naming the value, instead of
letting the API server, a controller or a drained node fail later.
Called once, from templates/validate.yaml.
*/}}
{{- define "matomo.validate" -}}
{{- $v := .Values }}
{{- /* names: F names the Service, a DNS-1035 label (starts with a letter) */}}
{{- $f := include "matomo.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $f) }}
{{- fail (printf "the full name %q (from the release name %q, or fullnameOverride/nameOverride) is not a DNS-1035 label, which the Service name must be: lower-case letters, digits and '-', starting with a letter; set fullnameOverride" $f .Release.Name) }}
{{- end }}
{{- /* cron */}}
{{- if $v.archiver.enabled }}
{{- include "matomo.validateCron" (dict "name" "archiver.schedule" "schedule" $v.archiver.schedule) }}
{{- end }}
{{- /* pairs of bounds */}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- $pdb := $v.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "float64" $pdb.minAvailable) }}
{{- $replicas := ternary $v.autoscaling.minReplicas $v.replicaCount $v.autoscaling.enabled | int }}
{{- $what := ternary "autoscaling.minReplicas" "replicaCount" $v.autoscaling.enabled }}
{{- if ge (int $pdb.minAvailable) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) is not below %s (%d): no Matomo pod could ever be evicted, so node drains would hang; lower it or use maxUnavailable" (int $pdb.minAvailable) $what $replicas) }}
{{- end }}
{{- end }}
{{- /* compatibility: the Mariadb schema class came with Matomo 5.1 */}}
{{- $matomo := include "matomo.version" . }}
{{- if and (eq $v.database.schema "Mariadb") (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+$" $matomo) }}
{{- if semverCompare "<5.1.0-0" $matomo }}
{{- fail (printf "database.schema is Mariadb, which Matomo 5.1 introduced, but image.tag %q runs Matomo %s: its installer and core:update fail without that schema class; set database.schema=Mysql (a database installed or upgraded from 5.0 keeps Mysql)" ($v.image.tag | default .Chart.AppVersion) $matomo) }}
{{- end }}
{{- end }}
{{- $t := $v.hook.timeouts }}
{{- $sum := add $t.db $t.installer $t.upgrade $t.rollout $t.lock }}
{{- if lt (int $v.hook.activeDeadlineSeconds) (int $sum) }}
{{- fail (printf "hook.activeDeadlineSeconds (%d) is below the sum of hook.timeouts (%d s): the Job would be killed while a step may still be waiting; raise it or lower hook.timeouts" (int $v.hook.activeDeadlineSeconds) (int $sum)) }}
{{- end }}
{{- if le (int $v.hook.secrets.activeDeadlineSeconds) (int $v.hook.secrets.apiTimeout) }}
{{- fail (printf "hook.secrets.activeDeadlineSeconds (%d) is not above hook.secrets.apiTimeout (%d): the Job would be killed before it reports why the API refused it" (int $v.hook.secrets.activeDeadlineSeconds) (int $v.hook.secrets.apiTimeout)) }}
{{- end }}
{{- end }}

{{/* A cron schedule as the CronJob controller parses it (five fields or a @macro). Call with (dict "name" "archiver.schedule" "schedule" "..."). */}}
{{- define "matomo.validateCron" -}}
{{- $name := .name }}
{{- $s := .schedule | trim }}
{{- if not (hasPrefix "@" $s) }}
{{- $fields := splitList " " (regexReplaceAll " +" $s " ") }}
{{- if ne (len $fields) 5 }}
{{- fail (printf "%s %q has %d fields: use five (minute hour day-of-month month day-of-week) or @hourly, @daily, ..." $name $s (len $fields)) }}
{{- end }}
{{- $specs := list (list "minute" 0 59 "") (list "hour" 0 23 "") (list "day of month" 1 31 "") (list "month" 1 12 "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC") (list "day of week" 0 7 "SUN MON TUE WED THU FRI SAT") }}
{{- range $i, $field := $fields }}
{{- $spec := index $specs $i }}
{{- $what := index $spec 0 }}
{{- $lo := index $spec 1 }}
{{- $hi := index $spec 2 }}
{{- $names := splitList " " (index $spec 3) }}
{{- range $item := splitList "," $field }}
{{- $parts := splitList "/" $item }}
{{- if or (gt (len $parts) 2) (and (eq (len $parts) 2) (not (regexMatch "^[1-9][0-9]*$" (index $parts 1)))) }}
{{- fail (printf "%s %q: %q in the %s field has a bad step (use e.g. */15)" $name $s $item $what) }}
{{- end }}
{{- $range := index $parts 0 }}
{{- if not (or (eq $range "*") (and (eq $range "?") (or (eq $i 2) (eq $i 4)))) }}
{{- $ends := splitList "-" $range }}
{{- if gt (len $ends) 2 }}
{{- fail (printf "%s %q: %q is not a range in the %s field" $name $s $range $what) }}
{{- end }}
{{- range $end := $ends }}
{{- if regexMatch "^[0-9]+$" $end }}
{{- if or (lt (atoi $end) $lo) (gt (atoi $end) $hi) }}
{{- fail (printf "%s %q: %s %s is out of range %d-%d" $name $s $what $end $lo $hi) }}
{{- end }}
{{- else if not (has (upper $end) $names) }}
{{- fail (printf "%s %q: %q is not a valid %s" $name $s $end $what) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
