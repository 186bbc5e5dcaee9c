{{/* Shared pieces of the serving RayService's pods. */}}

{{- define "tuneforge.rayContainerSecurityContext" -}}
{{- toYaml .Values.serving.securityContext -}}
{{- end -}}

{{/*
Pod metadata of a Ray pod; called with (dict "root" $ "role" "head" or "worker"). The
`tuneforge.io/ray-node-type` label selects the GPU workers for the PodDisruptionBudget.
*/}}
{{- define "tuneforge.rayPodMetadata" -}}
{{- $s := .root.Values.serving -}}
labels:
  {{- include "tuneforge.labels" .root | nindent 2 }}
  app.kubernetes.io/component: serving
  tuneforge.io/ray-node-type: {{ .role }}
  {{- with $s.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $s.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level spec of a Ray pod; called with (dict "root" $ "group" <head or gpuWorkers>). */}}
{{- define "tuneforge.rayPodSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "tuneforge.servingServiceAccountName" $root }}
automountServiceAccountToken: false
{{- include "tuneforge.imagePullSecrets" $root }}
{{- with $root.Values.serving.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.serving.podSecurityContext | nindent 2 }}
{{- with .group.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .group.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .group.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {}
  - name: cache
    emptyDir:
      sizeLimit: {{ $root.Values.serving.gpuWorkers.cacheSizeLimit }}
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ $root.Values.serving.gpuWorkers.shmSizeLimit }}
{{- end -}}

{{/* Container fields shared by the head and the workers (image and resources excluded). */}}
{{- define "tuneforge.rayContainer" -}}
env:
  - name: HOME
    value: /tmp
  - name: RAY_USAGE_STATS_ENABLED
    value: "0"
  - name: HF_HUB_DISABLE_TELEMETRY
    value: "1"
  - name: DO_NOT_TRACK
    value: "true"
  - name: MLFLOW_DISABLE_TELEMETRY
    value: "true"
  {{- include "tuneforge.endpointEnv" . | nindent 2 }}
  {{- if and .Values.serving.auth.enabled .Values.serving.auth.existingSecret }}
  - name: TUNEFORGE_SERVING_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ .Values.serving.auth.existingSecret }}
        key: {{ .Values.serving.auth.secretKey }}
  {{- range $i, $caller := .Values.serving.auth.callers }}
  - name: TUNEFORGE_SERVING_TOKEN_{{ $i }}
    valueFrom:
      secretKeyRef:
        name: {{ $caller.existingSecret }}
        key: {{ $caller.secretKey | default "token" }}
  {{- end }}
  {{- end }}
envFrom:
  - secretRef:
      name: {{ include "tuneforge.s3SecretName" . }}
  - secretRef:
      name: {{ include "tuneforge.mlflowSecretName" . }}
      optional: true
securityContext:
  {{- include "tuneforge.rayContainerSecurityContext" . | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: cache
    mountPath: /cache
  - name: dshm
    mountPath: /dev/shm
{{- end -}}
