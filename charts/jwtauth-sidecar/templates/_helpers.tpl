{{/*
Shared pieces. Everything both configurations depend on (ports, which rules read the body, the
upstreams) is computed here once, so jwtauth.yaml and envoy.yaml read the same answer.
*/}}

{{- define "jwtauth.labels" -}}
app: {{ .Values.name }}
app.kubernetes.io/name: jwtauth-sidecar
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* A duration in milliseconds as Envoy writes it: 1500 -> "1.500s". */}}
{{- define "jwtauth.seconds" -}}
{{ printf "%d.%03ds" (div (int .) 1000) (mod (int .) 1000) }}
{{- end }}

{{/* "true" when a rule's (or a check list's) templates read the request message: {body.…}. */}}
{{- define "jwtauth.readsBody" -}}
{{- if contains "{body." (toJson .) }}true{{ end }}
{{- end }}

{{/* The JWKS Service's in-cluster URL: what verifiers in other pods fetch. */}}
{{- define "jwtauth.jwksUrl" -}}
http://{{ .Values.name }}-jwks.{{ .Release.Namespace }}.svc.cluster.local{{ if ne (int .Values.jwksService.port) 80 }}:{{ .Values.jwksService.port }}{{ end }}/.well-known/jwks.json
{{- end }}

{{/*
An Envoy route match for the calls of one inbound rule: the gRPC method's path, or the HTTP path
template as a literal path or, with {param} or **, as a regex (a segment, or the rest).
*/}}
{{- define "jwtauth.routeMatch" -}}
{{- if .match.grpc -}}
{{- if .match.grpc.method -}}
path: /{{ .match.grpc.service }}/{{ .match.grpc.method }}
{{- else -}}
prefix: /{{ .match.grpc.service }}/
{{- end }}
{{- else if or (contains "{" .match.http.path) (contains "**" .match.http.path) -}}
{{- $literal := .match.http.path | regexQuoteMeta | replace "\\*\\*" ".*" -}}
safe_regex: { regex: {{ regexReplaceAll "\\\\\\{[^}]*\\\\\\}" $literal "[^/]+" | quote }} }
{{- else -}}
path: {{ .match.http.path | quote }}
{{- end }}
{{- end }}

{{/* Whether this pod has an outbound side: upstreams to get tokens for. */}}
{{- define "jwtauth.outbound" -}}
{{- if .Values.upstreams }}true{{ end }}
{{- end }}

{{/* The directional listener Istio's provider or an Envoy Gateway SecurityPolicy reaches, if any. */}}
{{- define "jwtauth.inboundListener" -}}
{{- if .Values.envoyGateway.securityPolicy -}}
0.0.0.0:{{ .Values.envoyGateway.backendRef.port }}
{{- else if .Values.istio.authorizationPolicy -}}
127.0.0.1:9192
{{- end }}
{{- end }}
