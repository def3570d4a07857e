{{/* The syncer's image: upstream's default, ghcr.io/loft-sh/vcluster:<chart version>. */}}
{{- define "vcluster.syncerImage" -}}
{{- .Values.syncer.image | default (printf "ghcr.io/loft-sh/vcluster:%s" .Chart.Version) -}}
{{- end -}}

{{- define "vcluster.labels" -}}
app: vcluster
chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
release: "{{ .Release.Name }}"
heritage: "{{ .Release.Service }}"
{{- end -}}

{{/* The --tls-san values among syncer.extraArgs (KubeFlex passes the ingress host and its hostContainer). */}}
{{- define "vcluster.tlsSans" -}}
{{- $sans := list -}}
{{- range .Values.syncer.extraArgs }}{{ if hasPrefix "--tls-san=" . }}{{ $sans = append $sans (trimPrefix "--tls-san=" .) }}{{ end }}{{ end -}}
{{- toJson $sans -}}
{{- end -}}

{{/* What the API server's serving certificate names, but the Service's ClusterIP: the Service's DNS
names, the in-cluster names the space's pods use, the loopback, and the --tls-san values. */}}
{{- define "vcluster.servingNames" -}}
{{- $namespace := .Release.Namespace -}}
{{- $names := list .Release.Name (printf "%s.%s" .Release.Name $namespace) (printf "%s.%s.svc" .Release.Name $namespace) (printf "%s.%s.svc.cluster.local" .Release.Name $namespace) "kubernetes" "kubernetes.default" "kubernetes.default.svc" "kubernetes.default.svc.cluster.local" "localhost" "127.0.0.1" -}}
{{- toJson (concat $names (include "vcluster.tlsSans" . | fromJsonArray)) -}}
{{- end -}}
