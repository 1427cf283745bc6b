{{- define "promimport.fullname" -}}
{{- if contains "promimport" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-promimport" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "promimport.labels" -}}
app.kubernetes.io/name: promimport
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "promimport.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "promimport.schedulerAccount" -}}
{{- default (printf "%s-scheduler" (include "promimport.fullname" .)) .Values.serviceAccounts.scheduler.name -}}
{{- end -}}

{{- define "promimport.workerAccount" -}}
{{- default (printf "%s-worker" (include "promimport.fullname" .)) .Values.serviceAccounts.worker.name -}}
{{- end -}}

{{- define "promimport.specName" -}}
{{- printf "%s-spec" (include "promimport.fullname" .) -}}
{{- end -}}

{{- define "promimport.credentialsName" -}}
{{- printf "%s-credentials" (include "promimport.fullname" .) -}}
{{- end -}}

{{/* An endpoint of the import spec: (list ENDPOINT CREDENTIAL-KEY ROOT). Only what is set. */}}
{{- define "promimport.endpoint" -}}
{{- $e := index . 0 -}}
{{- $key := index . 1 -}}
{{- $root := index . 2 -}}
{{- $out := dict "url" $e.url -}}
{{- if $e.headers }}{{- $_ := set $out "headers" $e.headers }}{{- end }}
{{- if $e.bearerTokenSecret }}
{{- $_ := set $out "bearerTokenSecret" $e.bearerTokenSecret }}
{{- else if and $root.Values.credentials.create (index $root.Values.credentials $key) }}
{{- $_ := set $out "bearerTokenSecret" (dict "name" (include "promimport.credentialsName" $root) "key" $key) }}
{{- end }}
{{- if $e.basicAuth }}{{- $_ := set $out "basicAuth" $e.basicAuth }}{{- end }}
{{- if $e.caSecret }}{{- $_ := set $out "caSecret" $e.caSecret }}{{- end }}
{{- if $e.clientCertSecret }}{{- $_ := set $out "clientCertSecret" $e.clientCertSecret }}{{- end }}
{{- if $e.tlsServerName }}{{- $_ := set $out "tlsServerName" $e.tlsServerName }}{{- end }}
{{- if $e.insecureSkipVerify }}{{- $_ := set $out "insecureSkipVerify" true }}{{- end }}
{{- with $e.blocks }}{{- if .url }}
{{- $blocks := dict "url" .url }}
{{- if .tenant }}{{- $_ := set $blocks "tenant" .tenant }}{{- end }}
{{- if .credentialsSecret }}{{- $_ := set $blocks "credentialsSecret" .credentialsSecret }}{{- end }}
{{- if .volume }}{{- $_ := set $blocks "volume" .volume }}{{- end }}
{{- $_ := set $out "blocks" $blocks }}
{{- end }}{{- end }}
{{- toYaml $out -}}
{{- end -}}

{{/* The import spec promimport schedule reads: (list ROOT INCREMENTAL). */}}
{{- define "promimport.spec" -}}
{{- $root := index . 0 -}}
{{- if not (or $root.Values.destination.url $root.Values.destination.blocks.url) -}}
{{- fail "set destination.url (remote write, e.g. http://cortex-distributor:8080/api/v1/push) or destination.blocks.url (TSDB blocks, e.g. s3://BUCKET)" -}}
{{- end -}}
{{- $incremental := index . 1 -}}
{{- $v := $root.Values -}}
{{- $spec := dict "name" $v.name "start" $v.start "end" $v.end "window" $v.window "parallelism" $v.parallelism -}}
{{- $_ := set $spec "source" (include "promimport.endpoint" (list $v.source "sourceBearerToken" $root) | fromYaml) -}}
{{- $_ := set $spec "destination" (include "promimport.endpoint" (list $v.destination "destinationBearerToken" $root) | fromYaml) -}}
{{- if $v.match }}{{- $_ := set $spec "match" $v.match }}{{- end -}}
{{- if $v.dropLabels }}{{- $_ := set $spec "dropLabels" $v.dropLabels }}{{- end -}}
{{- if $v.setLabels }}{{- $_ := set $spec "setLabels" $v.setLabels }}{{- end -}}
{{- if $incremental }}{{- $_ := set $spec "incremental" (dict "lag" $v.incremental.lag) }}{{- end -}}
{{- $worker := dict "image" (include "promimport.image" $root) "imagePullPolicy" $v.image.pullPolicy "serviceAccountName" (include "promimport.workerAccount" $root) "backoffLimit" $v.worker.backoffLimit "activeDeadlineSeconds" $v.worker.activeDeadlineSeconds "ttlSecondsAfterFinished" $v.worker.ttlSecondsAfterFinished -}}
{{- if $v.worker.resources }}{{- $_ := set $worker "resources" $v.worker.resources }}{{- end -}}
{{- if $v.worker.batchSamples }}{{- $_ := set $worker "batchSamples" $v.worker.batchSamples }}{{- end -}}
{{- if not (kindIs "invalid" $v.worker.retries) }}{{- $_ := set $worker "retries" $v.worker.retries }}{{- end -}}
{{- if $v.worker.maxSamplesPerSecond }}{{- $_ := set $worker "maxSamplesPerSecond" $v.worker.maxSamplesPerSecond }}{{- end -}}
{{- if $v.worker.maxReadSamplesPerSecond }}{{- $_ := set $worker "maxReadSamplesPerSecond" $v.worker.maxReadSamplesPerSecond }}{{- end -}}
{{- if not (kindIs "invalid" $v.worker.metricsPerRead) }}{{- $_ := set $worker "metricsPerRead" $v.worker.metricsPerRead }}{{- end -}}
{{- $_ := set $spec "worker" $worker -}}
{{- toYaml $spec -}}
{{- end -}}

{{/* The scheduler's pod: (list ROOT SPEC-KEY). */}}
{{- define "promimport.schedulerPod" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
metadata:
  labels:
    {{- include "promimport.labels" $root | nindent 4 }}
    app.kubernetes.io/component: scheduler
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "promimport.schedulerAccount" $root }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: scheduler
      image: {{ include "promimport.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["schedule", "--max-active-jobs", "{{ $root.Values.scheduler.maxActiveJobs }}", "--max-jobs-per-source", "{{ $root.Values.scheduler.maxJobsPerSource }}"]
      env:
        - name: PROMIMPORT_SPEC
          {{- if $root.Values.scheduler.specFromConfigMap }}
          valueFrom:
            configMapKeyRef: {name: {{ include "promimport.specName" $root }}, key: {{ $key }}}
          {{- else }}
          # The spec itself: a pod started right after `helm upgrade` was given the spec
          # ConfigMap's previous content by the kubelet's cache (seen on real pods, where an
          # upgraded memory limit was not used).
          value: {{ include "promimport.spec" (list $root (eq $key "incremental.yaml")) | toJson }}
          {{- end }}
        - name: PROMIMPORT_NAMESPACE
          valueFrom:
            fieldRef: {fieldPath: metadata.namespace}
        # Owns the ledger: helm uninstall deletes it, the ledger, and the import's Jobs.
        - name: PROMIMPORT_OWNER_CONFIGMAP
          value: {{ include "promimport.specName" $root }}
        - name: RUST_LOG
          value: info
      resources:
        {{- toYaml $root.Values.scheduler.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
{{- end -}}
