{{/* Shared pieces of the serving RayService's pods. */}}

{{- define "tuneforge.rayContainerSecurityContext" -}}
allowPrivilegeEscalation: false
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* Pod-level spec of a Ray pod; called with (dict "root" $ "group" <head or gpuWorkers>). */}}
{{- define "tuneforge.rayPodSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "tuneforge.servingServiceAccountName" $root }}
automountServiceAccountToken: false
{{- include "tuneforge.imagePullSecrets" $root }}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
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
  {{- if .Values.serving.auth.existingSecret }}
  - name: TUNEFORGE_SERVING_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ .Values.serving.auth.existingSecret }}
        key: {{ .Values.serving.auth.secretKey }}
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
