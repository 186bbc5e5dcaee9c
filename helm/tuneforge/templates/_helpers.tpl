{{/* vim: set filetype=mustache: */}}

{{/* The chart name, or nameOverride. */}}
{{- define "tuneforge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name prefix of every object: fullnameOverride, else "<release>-<name>", or just the
release name when it already contains the chart name. Truncated to 63 characters (DNS label).
*/}}
{{- define "tuneforge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "tuneforge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "tuneforge.labels" -}}
helm.sh/chart: {{ include "tuneforge.chart" . }}
{{ include "tuneforge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tuneforge
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select the operator's pods (stable across upgrades). */}}
{{- define "tuneforge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tuneforge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tuneforge.operatorSelectorLabels" -}}
{{ include "tuneforge.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels that select the serving RayService's pods (head and GPU workers). */}}
{{- define "tuneforge.servingSelectorLabels" -}}
{{ include "tuneforge.selectorLabels" . }}
app.kubernetes.io/component: serving
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "tuneforge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tuneforge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name the ServiceAccount the operator runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The serving pods' ServiceAccount name. */}}
{{- define "tuneforge.servingServiceAccountName" -}}
{{- if .Values.serving.serviceAccount.create -}}
{{- default (printf "%s-serving" (include "tuneforge.fullname" .) | trunc 63 | trimSuffix "-") .Values.serving.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serving.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "<repository>:<tag or appVersion>" for an image dict with repository and tag. */}}
{{- define "tuneforge.imageRef" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{- define "tuneforge.operatorImage" -}}
{{- include "tuneforge.imageRef" (dict "image" .Values.image "root" .) -}}
{{- end -}}

{{- define "tuneforge.trainerImage" -}}
{{- include "tuneforge.imageRef" (dict "image" .Values.trainer.image "root" .) -}}
{{- end -}}

{{- define "tuneforge.servingImage" -}}
{{- include "tuneforge.imageRef" (dict "image" .Values.serving.image "root" .) -}}
{{- end -}}

{{/* Names of the objects the operator and the pods refer to. */}}
{{- define "tuneforge.runtimesConfigMapName" -}}
{{- printf "%s-runtimes" (include "tuneforge.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tuneforge.s3SecretName" -}}
{{- default (printf "%s-s3" (include "tuneforge.fullname" .) | trunc 63 | trimSuffix "-") .Values.s3.existingSecret -}}
{{- end -}}

{{- define "tuneforge.mlflowSecretName" -}}
{{- default (printf "%s-mlflow" (include "tuneforge.fullname" .) | trunc 63 | trimSuffix "-") .Values.mlflowTracking.existingSecret -}}
{{- end -}}

{{/* Cluster-wide mode: only when `operator.clusterWide` says so (namespaced is the default). */}}
{{- define "tuneforge.clusterWide" -}}
{{- if .Values.operator.clusterWide -}}true{{- end -}}
{{- end -}}

{{/*
The namespaces the operator watches, as a JSON list (read with fromJsonArray): none in
cluster-wide mode, else `operator.watchNamespaces`, else the release's own namespace.
*/}}
{{- define "tuneforge.watchNamespaces" -}}
{{- if .Values.operator.clusterWide -}}
{{- if .Values.operator.watchNamespaces -}}
{{- fail "operator.clusterWide: true watches every namespace: empty operator.watchNamespaces, or set operator.clusterWide: false to watch only those" -}}
{{- end -}}
[]
{{- else -}}
{{- toJson (.Values.operator.watchNamespaces | default (list .Release.Namespace)) -}}
{{- end -}}
{{- end -}}

{{/*
THE operator's permissions on the namespaces it watches, defined once and rendered into the
ClusterRole (cluster-wide mode) or into one Role per watched namespace (single-namespace mode),
as kuberay-operator's chart does. No Secrets, no Pods: the operator only reads and writes its
jobs, their RayJobs and Events, and only with the verbs its code calls (no delete: owner
references garbage-collect RayJobs; tests/unit/helm/test_chart_rbac_verbs.py checks both ways). Cluster-wide-only and own-namespace rules are separate below.
*/}}
{{- define "tuneforge.operatorRules" -}}
- apiGroups: ["tuneforge.io"]
  resources: ["finetunejobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["tuneforge.io"]
  resources: ["finetunejobs/status"]
  verbs: ["patch"]
- apiGroups: ["ray.io"]
  resources: ["rayjobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* kopf's peering objects: cluster-scoped in cluster-wide mode, namespaced otherwise. */}}
{{- define "tuneforge.peeringRules" -}}
{{- /* create: the operator makes a missing peering object itself (peering.py). */}}
{{- if include "tuneforge.clusterWide" . }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch", "create"]
{{- else }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch", "create"]
{{- end }}
{{- end -}}

{{/*
The operator's settings as environment variables: every TUNEFORGE_OPERATOR_* name the chart sets
is here and nowhere else (fields of tuneforge_operator.settings.OperatorSettings).
*/}}
{{- define "tuneforge.operatorEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: HOME
  value: /tmp
- name: TUNEFORGE_OPERATOR_NAMESPACES
  value: {{ join "," (include "tuneforge.watchNamespaces" . | fromJsonArray) | quote }}
- name: TUNEFORGE_OPERATOR_RUNTIME_CONFIGMAP
  value: {{ include "tuneforge.runtimesConfigMapName" . | quote }}
- name: TUNEFORGE_OPERATOR_RUNTIME_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: TUNEFORGE_OPERATOR_PEERING_NAME
  value: {{ .Values.operator.peering.name | quote }}
- name: TUNEFORGE_OPERATOR_PEERING_LIFETIME_SECONDS
  value: {{ .Values.operator.peering.lifetimeSeconds | quote }}
- name: TUNEFORGE_OPERATOR_RESYNC_SECONDS
  value: {{ .Values.operator.resyncSeconds | quote }}
- name: TUNEFORGE_OPERATOR_LIVENESS_PORT
  value: {{ .Values.operator.healthPort | quote }}
- name: TUNEFORGE_OPERATOR_METRICS_PORT
  value: {{ if .Values.metrics.enabled }}{{ .Values.metrics.port | quote }}{{ else }}"0"{{ end }}
- name: TUNEFORGE_OPERATOR_BIND_ADDRESS
  value: "0.0.0.0"
- name: TUNEFORGE_OPERATOR_LOG_FORMAT
  value: {{ .Values.operator.logFormat | quote }}
- name: TUNEFORGE_OPERATOR_VERBOSE
  value: {{ .Values.operator.verbose | quote }}
{{- with .Values.mlflowTracking.uri }}
- name: TUNEFORGE_OPERATOR_MLFLOW_TRACKING_URI
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Endpoints (not secret) shared by the operator, the runtimes and serving. */}}
{{- define "tuneforge.endpointEnv" -}}
{{- with .Values.mlflowTracking.uri }}
- name: MLFLOW_TRACKING_URI
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.endpoint }}
- name: TUNEFORGE_S3_ENDPOINT
  value: {{ . | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level settings the operator and the helm test pod share. */}}
{{- define "tuneforge.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Endpoints as a name -> value map (a runtime's `env`). */}}
{{- define "tuneforge.endpointEnvMap" -}}
{{- $env := dict -}}
{{- range (include "tuneforge.endpointEnv" . | fromYamlArray) -}}
{{- $_ := set $env .name .value -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/*
One training runtime with the chart's defaults filled in and empty optional fields left out, so
the operator's model (tuneforge.api.runtime.TrainingRuntime) applies its own defaults.
Called with (dict "root" $ "name" $name "runtime" $runtime).
*/}}
{{- define "tuneforge.runtime" -}}
{{- $root := .root -}}
{{- $doc := deepCopy .runtime -}}
{{- $_ := set $doc "image" ($doc.image | default (include "tuneforge.trainerImage" $root)) -}}
{{- $_ := set $doc "rayVersion" ($doc.rayVersion | default $root.Values.trainer.rayVersion) -}}
{{- $_ := set $doc "s3SecretRef" ($doc.s3SecretRef | default (include "tuneforge.s3SecretName" $root)) -}}
{{- $_ := set $doc "mlflowSecretRef" ($doc.mlflowSecretRef | default (include "tuneforge.mlflowSecretName" $root)) -}}
{{- if not (hasKey $doc "imagePullSecrets") -}}
{{- $_ := set $doc "imagePullSecrets" $root.Values.imagePullSecrets -}}
{{- end -}}
{{- $env := include "tuneforge.endpointEnvMap" $root | fromYaml -}}
{{- $_ := set $doc "env" (mergeOverwrite $env ($doc.env | default dict)) -}}
{{- $cache := $doc.modelCache | default dict -}}
{{- if and $cache.persistentVolumeClaim $cache.hostPath -}}
{{- fail (printf "runtimes.%s.modelCache: name either persistentVolumeClaim or hostPath, not both" .name) -}}
{{- end -}}
{{- range $key, $value := deepCopy $cache -}}
{{- if not $value -}}
{{- $_ := unset $cache $key -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := deepCopy $doc -}}
{{- if not $value -}}
{{- $_ := unset $doc $key -}}
{{- end -}}
{{- end -}}
{{- toYaml $doc -}}
{{- end -}}

{{/* Fail early on value combinations the schema cannot express. */}}
{{- define "tuneforge.validate" -}}
{{- if and .Values.serving.enabled .Values.serving.app.autoscaling.enabled -}}
{{- $app := .Values.serving.app -}}
{{- $w := .Values.serving.gpuWorkers -}}
{{- if gt (mulf $app.autoscaling.maxReplicas $app.numGpus) (mulf $w.maxReplicas $w.gpusPerWorker) -}}
{{- fail (printf "serving.app.autoscaling.maxReplicas (%v) x serving.app.numGpus (%v) needs more GPUs than serving.gpuWorkers.maxReplicas (%v) x gpusPerWorker (%v) provide: raise gpuWorkers.maxReplicas or lower autoscaling.maxReplicas" $app.autoscaling.maxReplicas $app.numGpus $w.maxReplicas $w.gpusPerWorker) -}}
{{- end -}}
{{- end -}}
{{- $app := .Values.serving.app -}}
{{- if and .Values.serving.enabled (not (kindIs "invalid" $app.limits.maxAdaptersPerRequest)) (gt (int $app.limits.maxAdaptersPerRequest) (int $app.adapterLruSize)) -}}
{{- fail (printf "serving.app.limits.maxAdaptersPerRequest (%v) exceeds serving.app.adapterLruSize (%v): a request's adapters must all fit in the pipeline at once; lower maxAdaptersPerRequest, raise adapterLruSize, or leave maxAdaptersPerRequest unset (null) to follow adapterLruSize" $app.limits.maxAdaptersPerRequest $app.adapterLruSize) -}}
{{- end -}}
{{- if and .Values.serving.serviceAccount.annotations (not .Values.serving.serviceAccount.create) -}}
{{- fail "serving.serviceAccount.annotations are set but serving.serviceAccount.create is false: annotate your own ServiceAccount, or let the chart create it" -}}
{{- end -}}
{{- if and .Values.serving.enabled .Values.serving.ingress.enabled (not .Values.serving.ingress.hosts) -}}
{{- fail "serving.ingress.hosts is empty: name at least one host (and its paths) for the serving Ingress" -}}
{{- end -}}
{{- if and .Values.serving.enabled .Values.serving.httpRoute.enabled (not .Values.serving.httpRoute.parentRefs) -}}
{{- fail "serving.httpRoute.parentRefs is empty: name the Gateway the route attaches to (name, namespace)" -}}
{{- end -}}
{{- if and (gt (int .Values.serving.gpuWorkers.minReplicas) (int .Values.serving.gpuWorkers.maxReplicas)) .Values.serving.enabled -}}
{{- fail "serving.gpuWorkers.minReplicas must be <= serving.gpuWorkers.maxReplicas" -}}
{{- end -}}
{{- end -}}
