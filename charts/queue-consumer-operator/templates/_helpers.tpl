{{- define "qc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "qc.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "qc.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "qc.labels" -}}
{{ include "qc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "qc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "qc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
What the operator does in a namespace it watches: exactly the verbs its code (operator/qc_operator/kube.py)
and kopf use, each rule with its reason. The cluster-wide writes (pods, Deployments and the other owned
kinds) are fenced further by the ValidatingAdmissionPolicies in admission-policies.yaml.
*/}}
{{- define "qc.namespacedRules" -}}
# kopf lists and watches QueueConsumers and merge-patches them (its progress annotations); the operator
# GETs the owner of a child deleted by hand to re-create it.
- apiGroups: ["queueconsumer.io"]
  resources: ["queueconsumers"]
  verbs: ["get", "list", "watch", "patch"]
# The operator writes the status (conditions, backlog, replicas) through the status subresource.
- apiGroups: ["queueconsumer.io"]
  resources: ["queueconsumers/status"]
  verbs: ["patch"]
# The worker Deployments: watched (list, watch) so a tick reads its own from memory, get when the watch has
# not seen it yet, create, and replace its pod template (update) when the spec changed.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update"]
# Scaling goes through the scale subresource only, so the pod template is never rewritten to scale.
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
# Worker pods: listed by label to scrape their metrics, patched only for the deletion-cost annotation
# (the admission policy refuses any other change and any pod not managed by the operator).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
# Secrets: read by the name a QueueConsumer gives (backlog credentials), never listed nor watched.
- apiGroups: [""]
  resources: ["secrets"]
  {{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: ["get"]
# The other children: created (a 409 means it is there: get checks who controls it), list/watch to
# re-create one deleted by hand; get on ServiceAccounts also checks that spec.worker.serviceAccountName exists.
- apiGroups: [""]
  resources: ["serviceaccounts", "services"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create"]
# The rate-limit ConfigMap of a QueueConsumer with spec.worker.maxMessagesPerSecond: each pod's share,
# read every tick, created, and patched when the fleet changes (the admission policy allows only those a
# QueueConsumer controls).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
# kopf posts core/v1 Events (the operator's Warning and Normal events go through kopf).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if and .Values.peering.enabled (not .Values.watch.allNamespaces) }}
# Namespaced peering (kopf watches the peers and patches its own heartbeat into the KopfPeering, which
# each replica creates at startup if it is missing).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch", "create"]
{{- end }}
{{- end -}}

{{/*
The pod-security validations shared by the QueueConsumer policy and the operator's Deployment policy.
The policy defines the variables `podSpec` (a pod spec, possibly partial) and `containers` (all its
containers); every field may be missing. `where` names the checked thing in the messages; `guard` is an
optional "skip unless ... ||" prefix; `security` is .Values.admissionPolicies.podSecurity.
*/}}
{{- define "qc.podSecurityValidations" -}}
{{- $guard := default "" .guard }}
{{- $allowed := .security.allowedCapabilities | default list }}
{{- $how := "allowed only when the chart is installed with admissionPolicies.podSecurity.allowPrivileged=true" -}}
- expression: >-
    {{ $guard }}!(variables.podSpec.?hostNetwork.orValue(false) == true ||
    variables.podSpec.?hostPID.orValue(false) == true || variables.podSpec.?hostIPC.orValue(false) == true)
  message: "{{ .where }} may not use the host's namespaces (hostNetwork, hostPID, hostIPC): {{ $how }}"
  reason: Forbidden
- expression: >-
    {{ $guard }}!variables.podSpec.?volumes.orValue([]).exists(v, has(v.hostPath))
  messageExpression: >-
    "{{ .where }} may not mount hostPath volumes (" + variables.podSpec.volumes.filter(v,
    has(v.hostPath)).map(v, string(v.?name.orValue("?"))).join(", ") + "): {{ $how }}"
  reason: Forbidden
- expression: >-
    {{ $guard }}!variables.containers.exists(c, c.?securityContext.?privileged.orValue(false) == true)
  messageExpression: >-
    "{{ .where }} may not run privileged containers (" + variables.containers.filter(c,
    c.?securityContext.?privileged.orValue(false) == true).map(c, string(c.?name.orValue("?"))).join(", ")
    + "): {{ $how }}"
  reason: Forbidden
- expression: >-
    {{ $guard }}variables.containers.all(c,
    c.?securityContext.?capabilities.?add.orValue([]).all(cap, cap in {{ toJson $allowed }}))
  message: >-
    {{ .where }} may not add capabilities beyond admissionPolicies.podSecurity.allowedCapabilities
    ({{ join ", " $allowed | default "none" }}); more are {{ $how }}
  reason: Forbidden
{{- end -}}
