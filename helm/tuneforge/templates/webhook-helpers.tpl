{{/*
The validating admission webhook (served by the operator on .Values.webhook.port).
deployment.yaml includes tuneforge.webhook.env / .port / .volumeMounts / .volumes; each is
empty while webhook.enabled is false.
*/}}

{{- define "tuneforge.webhook.name" -}}
{{ include "tuneforge.fullname" . }}-webhook
{{- end -}}

{{- define "tuneforge.webhook.secretName" -}}
{{ include "tuneforge.webhook.name" . }}-tls
{{- end -}}

{{/* The names the API server may reach the webhook Service by: the certificate's SANs. */}}
{{- define "tuneforge.webhook.hosts" -}}
{{- $svc := include "tuneforge.webhook.name" . -}}
{{- $ns := .Release.Namespace -}}
{{- list (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.webhook.clusterDomain) $svc (printf "%s.%s" $svc $ns) | join "," -}}
{{- end -}}

{{- define "tuneforge.webhook.env" -}}
{{- if .Values.webhook.enabled }}
- name: TUNEFORGE_OPERATOR_WEBHOOK_PORT
  value: {{ .Values.webhook.port | quote }}
- name: TUNEFORGE_OPERATOR_WEBHOOK_CONFIGURATION
  value: {{ include "tuneforge.webhook.name" . | quote }}
- name: TUNEFORGE_OPERATOR_WEBHOOK_HOSTS
  value: {{ include "tuneforge.webhook.hosts" . | quote }}
{{- if .Values.webhook.certManager.enabled }}
- name: TUNEFORGE_OPERATOR_WEBHOOK_CERTIFICATES
  value: mounted
- name: TUNEFORGE_OPERATOR_WEBHOOK_CERT_DIR
  value: /etc/tuneforge/webhook-tls
{{- else }}
- name: TUNEFORGE_OPERATOR_WEBHOOK_CERTIFICATES
  value: self-signed
- name: TUNEFORGE_OPERATOR_WEBHOOK_SECRET
  value: {{ include "tuneforge.webhook.secretName" . | quote }}
- name: TUNEFORGE_OPERATOR_WEBHOOK_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
{{- end }}
{{- end -}}

{{- define "tuneforge.webhook.port" -}}
{{- if .Values.webhook.enabled }}
- name: webhook
  containerPort: {{ .Values.webhook.port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{- define "tuneforge.webhook.volumeMounts" -}}
{{- if and .Values.webhook.enabled .Values.webhook.certManager.enabled }}
- name: webhook-tls
  mountPath: /etc/tuneforge/webhook-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "tuneforge.webhook.volumes" -}}
{{- if and .Values.webhook.enabled .Values.webhook.certManager.enabled }}
- name: webhook-tls
  secret:
    secretName: {{ include "tuneforge.webhook.secretName" . }}
{{- end }}
{{- end -}}
