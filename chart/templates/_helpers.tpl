{{/* Every name and label of the chart is built here; templates never build one by hand. */}}

{{/*
A name cut to at most `max` characters that stays unique: a name that is too long keeps its first
characters and ends with a hash of the whole name, so two names that differ only past the cut
still differ. Pass (dict "name" string "max" int).
*/}}
{{- define "its.shorten" -}}
{{- if le (len .name) (int .max) -}}
{{- .name -}}
{{- else -}}
{{- printf "%s-%s" (.name | trunc (int (sub .max 9)) | trimSuffix "-") (.name | sha256sum | trunc 8) -}}
{{- end -}}
{{- end -}}

{{/* Base of every namespaced name: the release name, short enough for the longest suffix. */}}
{{- define "its.fullname" -}}
{{- include "its.shorten" (dict "name" .Release.Name "max" 40) -}}
{{- end -}}

{{/* Cluster-scoped names carry the namespace too: one release name may be used in two namespaces. */}}
{{- define "its.clusterName" -}}
{{- include "its.shorten" (dict "name" (printf "%s-%s" .Release.Name .Release.Namespace) "max" 52) -}}
{{- end -}}

{{- define "its.hookName" -}}{{ include "its.fullname" . }}-hook{{- end -}}
{{- define "its.namespacesName" -}}{{ include "its.fullname" . }}-namespaces{{- end -}}
{{- define "its.preflightName" -}}{{ include "its.fullname" . }}-preflight{{- end -}}
{{/* Every Job of the release, as a JSON list: the pre-delete cleanup deletes them. */}}
{{- define "its.jobNames" -}}
{{- list (include "its.preflightName" .) (include "its.namespacesName" .) (include "its.hookName" .) | toJson -}}
{{- end -}}
{{- define "its.cleanupName" -}}{{ include "its.fullname" . }}-cleanup{{- end -}}
{{- define "its.testName" -}}{{ include "its.fullname" . }}-test{{- end -}}
{{- define "its.configName" -}}{{ include "its.fullname" . }}-its-config{{- end -}}

{{- define "its.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "its.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{/* The pods of the release's hook Jobs: preflight, namespaces and hook. */}}
{{- define "its.hookPodSelector" -}}
app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component in (preflight,hook)
{{- end -}}

{{/* Common labels; pass (dict "root" $ "component" "hook"). */}}
{{- define "its.labels" -}}
{{ include "its.selectorLabels" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kubestellar
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ include "its.chart" .root }}
{{- end -}}

{{/* registry/repository:tag@digest, with global.imageRegistry taking precedence. */}}
{{- define "its.image" -}}
{{- $image := .Values.hook.image -}}
{{- $registry := .Values.global.imageRegistry | default $image.registry -}}
{{- $ref := printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- if $image.digest }}{{ $ref = printf "%s@%s" $ref $image.digest }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{/*
The ITS list with every default applied, as JSON (read it with fromJsonArray). Values that
cannot be checked one item at a time by the schema are checked by "its.validate".
*/}}
{{- define "its.list" -}}
{{- $out := list -}}
{{- range $its := .Values.ITSes -}}
{{- $type := $its.type | default "vcluster" -}}
{{- $install := true -}}
{{- if hasKey $its "install_clusteradm" }}{{ $install = $its.install_clusteradm }}{{ end -}}
{{- $addon := $.Values.statusAddon.enabled -}}
{{- if hasKey $its "install_status_addon" }}{{ $addon = $its.install_status_addon }}{{ end -}}
{{- $credentials := get (include "its.typeCredentials" $ | fromJson) $type -}}
{{- $space := dict "namespace" (include "its.spaceNamespace" $its.name) "credentials" (dict "secret" $credentials.secret "key" $credentials.key) -}}
{{- $ocm := $its.ocm | default dict -}}
{{- $gates := mergeOverwrite (deepCopy $.Values.ocm.featureGates) (deepCopy ($ocm.featureGates | default dict)) -}}
{{- $resources := $ocm.resources | default $.Values.ocm.resources -}}
{{- $hub := dict "featureGates" $gates "resources" (dict "qosClass" $resources.qosClass "requests" ($resources.requests | default dict) "limits" ($resources.limits | default dict)) -}}
{{- $entry := dict "name" $its.name "type" $type "installClusteradm" $install "bootstrapSecret" nil "installStatusAddon" $addon "space" $space "hub" $hub -}}
{{- if eq $type "external" -}}
{{- $boot := $its.bootstrapSecret | default dict -}}
{{- $_ := set $entry "bootstrapSecret" (dict
      "name" ($boot.name | default (printf "%s-bootstrap" $its.name))
      "namespace" ($boot.namespace | default $.Release.Namespace)
      "key" ($boot.key | default "kubeconfig-incluster")) -}}
{{- end -}}
{{- $out = append $out $entry -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
its.json: the contract between the chart and the hook (hooks/src/ks_its_hooks/spec.py), as pretty JSON.
*/}}
{{- define "its.hookConfig" -}}
{{- dict
      "apiVersion" "its.kubestellar.io/v1alpha1"
      "kind" "HookConfig"
      "itses" (include "its.list" . | fromJsonArray)
      "deadlineSeconds" (int .Values.its.readinessTimeoutSeconds)
      "ocm" (dict "imageRegistry" .Values.ocm.imageRegistry "bundleVersion" .Values.ocm.bundleVersion)
      "statusAddon" (include "its.statusAddon" . | fromJson)
    | toPrettyJson }}
{{- end -}}

{{/*
its.json's `statusAddon`: the add-on chart and how to reach it, and the add-on chart's values
(`statusAddon.values` merged over `controller` and `agent`), as JSON.
*/}}
{{- define "its.statusAddon" -}}
{{- $addon := .Values.statusAddon -}}
{{- $values := mergeOverwrite (dict "controller" (deepCopy $addon.controller) "agent" (deepCopy $addon.agent)) (deepCopy $addon.values) -}}
{{- $pullSecret := dict -}}
{{- if $addon.chart.pullSecret -}}
{{- $pullSecret = dict "name" $addon.chart.pullSecret "namespace" .Release.Namespace "key" ".dockerconfigjson" -}}
{{- end -}}
{{- toJson (dict "chart" $addon.chart.repository "version" $addon.chart.version "plainHTTP" $addon.chart.plainHTTP
      "caBundle" $addon.chart.caBundle "pullSecret" ($pullSecret | default nil) "values" $values) -}}
{{- end -}}

{{/*
Names whose `<name>-system` namespace is known to be taken: KubeFlex would make that namespace the space's
(v0.9.3 takes an existing namespace as it is) and put the space's objects in it. Kubernetes' own, KubeFlex's,
the release's (when it is a `-system` namespace) and those of widely installed components. The preflight
hook refuses any other namespace that exists, before the ControlPlanes are applied.
*/}}
{{- define "its.takenNamespaces" -}}
{{- $taken := list "kube-system" "kubeflex-system" "cert-manager-system" "istio-system" "calico-system" "gatekeeper-system" "capi-system" -}}
{{- if hasSuffix "-system" .Release.Namespace }}{{ $taken = append $taken .Release.Namespace }}{{ end -}}
{{- toJson $taken -}}
{{- end -}}

{{/* Rules across items, which a JSON schema cannot state with a clear message. */}}
{{- define "its.validate" -}}
{{- $seen := dict -}}
{{- $host := -1 -}}
{{- $taken := include "its.takenNamespaces" . | fromJsonArray -}}
{{- range $i, $its := .Values.ITSes -}}
{{- if has (printf "%s-system" $its.name) $taken -}}
{{- fail (printf "ITSes[%d].name: %q would make %s-system the space's namespace, and that namespace is not KubeFlex's to take (KubeFlex would put the space in it); give the ITS another name" $i $its.name $its.name) -}}
{{- end -}}
{{- if hasKey $seen $its.name -}}
{{- fail (printf "ITSes[%d].name: %q is already the name of ITSes[%d]; ITS names must be unique" $i $its.name (get $seen $its.name)) -}}
{{- end -}}
{{- $_ := set $seen $its.name $i -}}
{{- $type := $its.type | default "vcluster" -}}
{{- if eq $type "host" -}}
{{- if ge $host 0 -}}
{{- fail (printf "ITSes[%d].type: at most one ITS can be of type host, and ITSes[%d] already is" $i $host) -}}
{{- end -}}
{{- $host = $i -}}
{{- end -}}
{{- if and (hasKey $its "bootstrapSecret") (ne $type "external") -}}
{{- fail (printf "ITSes[%d].bootstrapSecret: only an ITS of type external takes a bootstrap Secret, and %q is of type %s" $i $its.name $type) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The least Helm --timeout that lets the hook report a failure before Helm gives up: the run's deadline,
plus 2 minutes for what is outside it (the preflight Job, and the hook pods' start and end).
*/}}
{{- define "its.helmTimeoutSeconds" -}}
{{- add (int .Values.its.readinessTimeoutSeconds) 120 -}}
{{- end -}}

{{/* How many pods the hook Job runs: one per ITS, at most hook.maxParallelPods. */}}
{{- define "its.shards" -}}
{{- min (len .Values.ITSes) .Values.hook.maxParallelPods -}}
{{- end -}}

{{/*
What the hook's Jobs (preflight, namespaces, hook) share besides their pods. One timing model: the hook's
verdict is final (its exit codes 1, 2 and 3: an ITS failed at its deadline, the configuration is
unusable, or a failure is permanent), since a hook run already retries within the deadline, and the
deadline is the whole budget of the run; a pod that was deleted (the hook ends at once on SIGTERM:
143) or evicted is replaced without counting as a failure; only a pod that died otherwise (OOMKilled,
its node lost) counts against backoffLimit. Pass (dict "root" $ "container" name).
*/}}
{{- define "its.jobPolicy" -}}
backoffLimit: {{ .root.Values.hook.backoffLimit }}
podFailurePolicy:
  rules:
    - action: Ignore
      onExitCodes:
        containerName: {{ .container }}
        operator: In
        values: [143]
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
    - action: FailJob
      onExitCodes:
        containerName: {{ .container }}
        operator: In
        values: [1, 2, 3]
activeDeadlineSeconds: {{ .root.Values.hook.activeDeadlineSeconds | default (add (int .root.Values.its.readinessTimeoutSeconds) 60) }}
ttlSecondsAfterFinished: {{ .root.Values.hook.ttlSecondsAfterFinished }}
{{- end -}}

{{/* Annotations that keep a space: Helm's keep policy, and Argo CD's no-prune and no-delete. */}}
{{- /*
A kept space: Helm keeps it on uninstall and removal; Argo CD neither prunes nor deletes it, and once
it leaves the ITSes (an extraneous object still carrying these annotations) it does not hold the
Application OutOfSync, which would make automated self-heal re-sync forever.
*/ -}}
{{- define "its.keepAnnotations" -}}
{{- if .Values.its.keepSpaces -}}
helm.sh/resource-policy: keep
argocd.argoproj.io/sync-options: Prune=false,Delete=false
argocd.argoproj.io/compare-options: IgnoreExtraneous
{{- end -}}
{{- end -}}

{{/*
The pod spec shared by the hook Job, the test pod and the cleanup Job.
Pass (dict "root" $ "serviceAccount" name "container" name "command" list "env" list), and
"noConfig" true for a pod that does not read its.json.
*/}}
{{- define "its.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ .serviceAccount }}
restartPolicy: Never
{{- with $root.Values.global.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.hook.podSecurityContext | nindent 2 }}
containers:
  - name: {{ .container }}
    image: {{ include "its.image" $root | quote }}
    imagePullPolicy: {{ $root.Values.hook.image.pullPolicy }}
    command:
      {{- toYaml .command | nindent 6 }}
    # A failure's one line per ITS; a container killed before writing it shows its last log lines.
    terminationMessagePolicy: FallbackToLogsOnError
    env:
      - name: TMPDIR
        value: /tmp
      # The image's root filesystem is read-only: clients' caches and temporary files go to /tmp.
      - name: HOME
        value: /tmp
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: POD_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      # glibc gives threads their own malloc arenas and the hook runs a thread per ITS: two arenas
      # take 50 ITSes in one process from 95 to 87 MB peak (make bench), at no measurable speed cost.
      - name: MALLOC_ARENA_MAX
        value: "2"
      {{- with .env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    securityContext:
      {{- toYaml $root.Values.hook.containerSecurityContext | nindent 6 }}
    resources:
      {{- toYaml $root.Values.hook.resources | nindent 6 }}
    volumeMounts:
      {{- if not .noConfig }}
      - name: its-config
        mountPath: /etc/ks-its
        readOnly: true
      {{- end }}
      - name: tmp
        mountPath: /tmp
volumes:
  {{- if not .noConfig }}
  - name: its-config
    configMap:
      name: {{ include "its.configName" $root }}
  {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- with $root.Values.hook.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.hook.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.hook.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The namespace KubeFlex makes for a ControlPlane's space; pass the ITS name. */}}
{{- define "its.spaceNamespace" -}}{{ . }}-system{{- end -}}

{{/*
Where KubeFlex v0.9.3 writes each type's kubeconfig in the space's namespace: the Secret, its key for
use inside the hosting cluster (what the hook reads: its.json carries it), and, where KubeFlex writes
one, the key for use from outside (NOTES). The one place of these facts: the hook, the RBAC and NOTES
take them from here.
*/}}
{{- define "its.typeCredentials" -}}
{{- toJson (dict
      "vcluster" (dict "secret" "vc-vcluster" "key" "config-incluster" "userKey" "config")
      "host" (dict "secret" "admin-kubeconfig" "key" "kubeconfig-incluster")
      "external" (dict "secret" "admin-kubeconfig" "key" "kubeconfig-incluster")) -}}
{{- end -}}

{{/* The names of those Secrets, as a JSON list. */}}
{{- define "its.credentialSecrets" -}}
{{- $names := list -}}
{{- range $type, $credentials := include "its.typeCredentials" . | fromJson }}{{ $names = append $names $credentials.secret }}{{ end -}}
{{- $names | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* The rule on the ControlPlanes of the listed ITSes, by name; pass (dict "itses" list "verbs" list). */}}
{{- define "its.controlPlaneRules" -}}
- apiGroups: ["tenancy.kflex.kubestellar.org"]
  resources: ["controlplanes"]
  resourceNames:
    {{- range .itses }}
    - {{ .name | quote }}
    {{- end }}
  verbs: {{ toJson .verbs }}
{{- end -}}

{{/*
A RoleBinding in each listed ITS's space namespace, named after ServiceAccount `serviceAccount` of the
release namespace, to the space-credentials ClusterRole. Pass (dict "root" $ "itses" list
"serviceAccount" name "component" string "annotations" string).
*/}}
{{- define "its.credentialsBindings" -}}
{{- $root := .root -}}
{{- range .itses }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $.serviceAccount }}
  namespace: {{ .space.namespace | quote }}
  labels:
    {{- include "its.labels" (dict "root" $root "component" $.component) | nindent 4 }}
  annotations:
    {{- $.annotations | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "its.clusterName" $root }}-space-credentials
subjects:
  - kind: ServiceAccount
    name: {{ $.serviceAccount }}
    namespace: {{ $root.Release.Namespace | quote }}
{{- end }}
{{- end -}}

{{/*
A Role and RoleBinding in the release namespace for ServiceAccount `name`, both named after it.
Pass (dict "root" $ "name" string "component" string "rules" list "annotations" string).
*/}}
{{- define "its.releaseRole" -}}
{{- $root := .root }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace | quote }}
  labels:
    {{- include "its.labels" (dict "root" $root "component" .component) | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
rules:
  {{- toYaml .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace | quote }}
  labels:
    {{- include "its.labels" (dict "root" $root "component" .component) | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ $root.Release.Namespace | quote }}
{{- end -}}

{{/*
A Role and RoleBinding per namespace that holds bootstrap Secrets of external ITSes, allowing
`get` on those Secrets only. Pass (dict "root" $ "itses" list "serviceAccount" name "annotations" string).
*/}}
{{- define "its.bootstrapReaders" -}}
{{- $byNamespace := dict -}}
{{- range .itses -}}
{{- with .bootstrapSecret -}}
{{- $_ := set $byNamespace .namespace (append (get $byNamespace .namespace | default list) .name) -}}
{{- end -}}
{{- end -}}
{{- range $namespace := keys $byNamespace | sortAlpha }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $.serviceAccount }}-bootstrap-reader
  namespace: {{ $namespace | quote }}
  labels:
    {{- include "its.labels" (dict "root" $.root "component" "hook") | nindent 4 }}
  annotations:
    {{- $.annotations | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{ get $byNamespace $namespace | uniq | sortAlpha | toJson }}
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $.serviceAccount }}-bootstrap-reader
  namespace: {{ $namespace | quote }}
  labels:
    {{- include "its.labels" (dict "root" $.root "component" "hook") | nindent 4 }}
  annotations:
    {{- $.annotations | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $.serviceAccount }}-bootstrap-reader
subjects:
  - kind: ServiceAccount
    name: {{ $.serviceAccount }}
    namespace: {{ $.root.Release.Namespace | quote }}
{{- end }}
{{- end -}}

{{/*
Annotations of what exists only while the install hooks run (post-install, post-upgrade, post-rollback;
Argo CD's PostSync): the hook's ServiceAccount and every right it has, the credentials of the spaces
above all. Gone when the hooks are over, whatever their outcome: Helm deletes them by hook-succeeded
once every hook succeeded or when a later one failed, Argo CD (which reads these policies too) at the
end of the sync. Pass (dict "weight" string).
*/}}
{{- define "its.installHookAnnotations" -}}
helm.sh/hook: post-install,post-upgrade,post-rollback
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded,hook-failed
argocd.argoproj.io/hook: PostSync
{{- end -}}

{{/*
Annotations of the preflight resources (pre-install, pre-upgrade, pre-rollback; Argo CD's PreSync),
which run before anything of the release is applied. A failed preflight Job stays for its logs until
the next run. Pass (dict "weight" string "keepFailed" bool).
*/}}
{{- define "its.preflightHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade,pre-rollback
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ ternary "before-hook-creation,hook-succeeded" "before-hook-creation,hook-succeeded,hook-failed" (.keepFailed | default false) }}
argocd.argoproj.io/hook: PreSync
{{- end -}}

{{/*
Annotations of the pre-delete cleanup resources: gone once the cleanup ran, whatever its outcome.
Argo CD deletes its own hook resources, so it never runs this one.
*/}}
{{- define "its.cleanupHookAnnotations" -}}
helm.sh/hook: pre-delete
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded,hook-failed
argocd.argoproj.io/hook: Skip
{{- end -}}

{{/*
Annotations of the `helm test` resources. Argo CD does not run Helm test hooks; Skip makes
sure it never applies them as ordinary resources either.
The test's ServiceAccount and its RoleBindings to the spaces' credentials (weight -10) are deleted
as soon as the test is over, passed or failed (Helm deletes the earlier hooks by their
hook-succeeded policy when a later one fails). All are named after the pod, as Helm 3's
`helm test --logs` reads a pod's logs by the name of each test hook. The pod (weight 0) stays for
`helm test --logs`; the pre-delete cleanup hook deletes it with the release.
*/}}
{{- define "its.testHookAnnotations" -}}
helm.sh/hook: test
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ ternary "before-hook-creation" "before-hook-creation,hook-succeeded" (eq .weight "0") }}
argocd.argoproj.io/hook: Skip
{{- end -}}
