{{/* Names and labels shared by every template. */}}

{{- define "rightsizer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rightsizer.fullname" -}}
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

{{- define "rightsizer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rightsizer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "rightsizer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rightsizer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rightsizer
{{- end }}

{{- define "rightsizer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rightsizer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rightsizer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The webhook configurations (validating and mutating share the name) and the webhook Service. */}}
{{- define "rightsizer.webhookName" -}}
{{- include "rightsizer.fullname" . }}
{{- end }}

{{- define "rightsizer.webhookService" -}}
{{- printf "%s-webhook" (include "rightsizer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rightsizer.webhookSecret" -}}
{{- default (printf "%s-webhook-tls" (include "rightsizer.fullname" .)) .Values.webhook.tls.secretName }}
{{- end }}

{{/* DNS names the API server uses for the webhook Service: what the serving certificate must name. */}}
{{- define "rightsizer.webhookDnsNames" -}}
{{- $svc := include "rightsizer.webhookService" . }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson }}
{{- end }}

{{/* The host of webhook.url, when the webhook is registered by URL. */}}
{{- define "rightsizer.webhookUrlHost" -}}
{{- if .Values.webhook.url }}
{{- (urlParse .Values.webhook.url).hostname }}
{{- end }}
{{- end }}

{{- define "rightsizer.certManagerCertificate" -}}
{{- printf "%s-webhook" (include "rightsizer.fullname" .) }}
{{- end }}

{{/* The peering kind kopf uses: cluster-wide, or one KopfPeering per watched namespace. */}}
{{- define "rightsizer.peeringKind" -}}
{{- if .Values.watchNamespaces }}KopfPeering{{ else }}ClusterKopfPeering{{ end }}
{{- end }}

{{- define "rightsizer.workloadKind" -}}
{{- if .Values.ha.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/* The webhooks' clientConfig: the Service, or webhook.url for an operator outside the cluster. */}}
{{- define "rightsizer.webhookClientConfig" }}
{{- $root := index . 0 }}
{{- $path := index . 1 -}}
clientConfig:
  {{- if $root.Values.webhook.url }}
  url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) $path | quote }}
  {{- else }}
  service:
    name: {{ include "rightsizer.webhookService" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ $path }}
    port: 443
  {{- end }}
  {{- if eq $root.Values.webhook.tls.mode "secret" }}
  caBundle: {{ $root.Values.webhook.tls.caBundle }}
  {{- end }}
  {{- /* selfManaged: the operator writes caBundle; certManager: cert-manager's CA injector does. */}}
{{- end }}
{{- define "rightsizer.webhookRules" -}}
rules:
  - apiGroups: [rightsizer.dev]
    apiVersions: [v1alpha1]
    resources: [llmdeployments]
    operations: [CREATE, UPDATE]
    scope: Namespaced
matchPolicy: Equivalent
admissionReviewVersions: [v1]
{{- end }}
