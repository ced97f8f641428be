{{/*
Expand the name of the chart.
*/}}
{{- define "dcsa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "dcsa.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "dcsa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "dcsa.labels" -}}
helm.sh/chart: {{ include "dcsa.chart" . }}
{{ include "dcsa.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: katib
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "dcsa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dcsa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount of the katib-config hook Job.
*/}}
{{- define "dcsa.hookServiceAccountName" -}}
{{- printf "%s-katib-config" (include "dcsa.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Image reference: digest wins over tag; tag defaults to the chart's appVersion.
*/}}
{{- define "dcsa.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/*
Regex matching Katib's suggestion Deployment names (<experiment>-<algorithm>) of our algorithms.
*/}}
{{- define "dcsa.algorithmRegex" -}}
{{- printf "(%s)" (join "|" .Values.algorithms) -}}
{{- end }}

{{/*
What the TuningSchedule operator watches (JSON list): operator.watchNamespaces; else, with
operator.clusterWide, [""] (all namespaces, a ClusterRole); else the release namespace.
*/}}
{{- define "dcsa.operatorScopes" -}}
{{- if .Values.operator.watchNamespaces }}
{{- toJson .Values.operator.watchNamespaces }}
{{- else if .Values.operator.clusterWide }}
{{- toJson (list "") }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
Namespaces where Experiments run (JSON list): networkPolicy.experimentNamespaces, else Katib's.
*/}}
{{- define "dcsa.experimentNamespaces" -}}
{{- toJson (.Values.networkPolicy.experimentNamespaces | default (list .Values.katib.namespace)) }}
{{- end }}

{{/*
The ServiceAccount our katib-config entries name: suggestion.serviceAccountName, else the one
suggestion.serviceAccount.create makes, else none (the namespace's default).
*/}}
{{- define "dcsa.suggestionServiceAccountName" -}}
{{- if .Values.suggestion.serviceAccountName }}
{{- .Values.suggestion.serviceAccountName }}
{{- else if .Values.suggestion.serviceAccount.create }}
{{- include "dcsa.fullname" . }}-suggestion
{{- end }}
{{- end }}

{{/*
Our katib-config suggestion entries, one per algorithm (a YAML list).
*/}}
{{- define "dcsa.katibEntries" -}}
{{- $s := .Values.suggestion }}
{{- range .Values.algorithms }}
- algorithmName: {{ . }}
  image: {{ include "dcsa.image" $ | quote }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  env:
    - name: DCSA_LOG_FORMAT
      value: {{ $s.logFormat | quote }}
    - name: DCSA_LOG_LEVEL
      value: {{ $s.logLevel | quote }}
    - name: DCSA_METRICS_PORT
      value: {{ $s.metricsPort | quote }}
    {{- with $s.metricsHost }}
    - name: DCSA_METRICS_HOST
      value: {{ . | quote }}
    {{- end }}
    - name: DCSA_WORKERS
      value: {{ $s.workers | quote }}
    {{- if $s.maxConcurrentRpcs }}
    - name: DCSA_MAX_CONCURRENT_RPCS
      value: {{ $s.maxConcurrentRpcs | quote }}
    {{- end }}
    - name: DCSA_BLAS_THREADS
      value: {{ $s.threads | quote }}
    - name: OMP_NUM_THREADS
      value: {{ $s.threads | quote }}
    - name: OPENBLAS_NUM_THREADS
      value: {{ $s.threads | quote }}
    - name: MKL_NUM_THREADS
      value: {{ $s.threads | quote }}
    {{- with $s.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: metrics
      containerPort: {{ $s.metricsPort }}
      protocol: TCP
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    {{- toYaml $s.securityContext | nindent 4 }}
  {{- with include "dcsa.suggestionServiceAccountName" $ }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- if $s.fromVolume.enabled }}
  volumeMountPath: {{ $s.fromVolume.volumeMountPath }}
  persistentVolumeClaimSpec:
    accessModes:
      {{- toYaml $s.fromVolume.accessModes | nindent 6 }}
    {{- with $s.fromVolume.storageClassName }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ $s.fromVolume.size }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Fail early, with a message that says what to change, on values the schema cannot check.
*/}}
{{- define "dcsa.validateValues" -}}
{{- $errors := list }}
{{- $known := list "dcsa-bo" "dc-bo" "sa-bo" "gp-bo" "random" }}
{{- range .Values.algorithms }}
{{- if not (has . $known) }}
{{- $errors = append $errors (printf "algorithms: %q is not served by dcsa (allowed: %s)" . (join ", " $known)) }}
{{- end }}
{{- end }}
{{- if ne (len .Values.algorithms) (len (uniq .Values.algorithms)) }}
{{- $errors = append $errors "algorithms: each name may appear once" }}
{{- end }}
{{- if eq (int .Values.suggestion.metricsPort) 6789 }}
{{- $errors = append $errors "suggestion.metricsPort: 6789 is Katib's suggestion API port; pick another (default 8000)" }}
{{- end }}
{{- $limits := .Values.suggestion.resources.limits | default dict }}
{{- if not $limits.memory }}
{{- $errors = append $errors "suggestion.resources.limits.memory: must be set (Katib's 100Mi default OOM-kills Python BO services)" }}
{{- end }}
{{- if and (eq .Values.katibConfig.mode "hook") (not .Values.katibConfig.hook.helmHooks) .Values.katibConfig.hook.removeOnUninstall }}
{{- $errors = append $errors "katibConfig.hook.removeOnUninstall needs katibConfig.hook.helmHooks=true (without hooks the remove Job would run at install)" }}
{{- end }}
{{- if and .Values.suggestion.maxConcurrentRpcs (lt (int .Values.suggestion.maxConcurrentRpcs) (int .Values.suggestion.workers)) }}
{{- $errors = append $errors "suggestion.maxConcurrentRpcs: must be 0 (twice workers) or at least suggestion.workers" }}
{{- end }}
{{- if gt (int .Values.suggestion.threads) 64 }}
{{- $errors = append $errors "suggestion.threads: at most 64" }}
{{- end }}
{{- if $errors }}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}
