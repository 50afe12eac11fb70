{{/* Labels on every object the chart renders. */}}
{{- define "vwo.labels" -}}
app.kubernetes.io/name: vworkspace-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vworkspace-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The pod selector (immutable once installed). */}}
{{- define "vwo.selectorLabels" -}}
app.kubernetes.io/name: vworkspace-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator image: repository@digest, or repository:tag (tag defaults to the chart's appVersion). */}}
{{- define "vwo.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Names the webhook's serving certificate is issued for: the Service's DNS name, or the URL's host. */}}
{{- define "vwo.webhookNames" -}}
{{- if .Values.admission.webhook.url -}}
{{ (urlParse .Values.admission.webhook.url).hostname }}
{{- else -}}
vworkspace-operator-webhook.{{ .Release.Namespace }}.svc
{{- end -}}
{{- end }}

{{/* Fail early on the values the schema cannot check alone. */}}
{{- define "vwo.check" -}}
{{- if not .Values.clusterId }}{{ fail "clusterId is required: this cluster's id (a DNS label)" }}{{ end }}
{{- if and (eq .Values.mode "gitops") (not .Values.repo.url) }}{{ fail "repo.url is required in GitOps mode: the cluster repo the operator verifies" }}{{ end }}
{{- end }}
