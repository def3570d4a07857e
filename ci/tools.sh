#!/usr/bin/env bash
# Builds the pinned toolchain from the Go module registry into .cache/bin.
# Idempotent: a tool whose stamp matches its pinned version is not rebuilt.
# A failed build prints one line naming the tool and its log, and exits 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ci/versions.env
source "$root/ci/versions.env"

cache="$root/.cache"
bin="$cache/bin"
logs="$cache/logs/tools"
work="$cache/build"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOPATH="$cache/go/path"
# -modcacherw keeps the module cache deletable; the local toolchain avoids a toolchain download.
export GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0
# The KubeFlex module is served by the registry but not listed in the public checksum database;
# its pinned hash is checked below instead.
export GONOSUMDB=github.com/kubestellar/kubeflex
KUBEFLEX_SUM="h1:ZeR3tQHAyQcNnS1Jj02CpVzV9087jrqyb4dAZs2l9gQ="

mkdir -p "$bin" "$logs" "$work"

fail() { echo "tools: $1 failed; log: $2" >&2; exit 1; }

is_current() { # name (a path under .cache/bin) version
  local stamp
  stamp="$(dirname "$bin/$1")/.$(basename "$1").version"
  [[ -x "$bin/$1" && -f "$stamp" && "$(cat "$stamp")" == "$2" ]]
}

# build NAME MODULE VERSION PACKAGE LDFLAGS [REPLACE...]
# Builds PACKAGE from MODULE@VERSION in a throw-away main module, so that the
# dependency's own replace directives (which `go install pkg@v` refuses) are not needed.
build() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=$5; shift 5
  is_current "$name" "$version" && return 0
  local dir="$work/$name" log="$logs/$name.log"
  echo "tools: building $name $version (log: $log)"
  rm -rf "$dir" && mkdir -p "$dir"
  {
    (cd "$dir" && go mod init "local.build/$name" && go mod edit -require="$module@$version" \
      && for r in "$@"; do go mod edit -replace="$r"; done \
      && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$bin/$name" "$pkg")
  } >"$log" 2>&1 || fail "building $name $version" "$log"
  echo "$version" >"$bin/.$name.version"
}

# install NAME MODULE VERSION PACKAGE LDFLAGS
# `go install pkg@version`: the module's own go.mod and go.sum decide every dependency.
install() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=$5
  is_current "$name" "$version" && return 0
  local log="$logs/$name.log" gobin="$work/$name-bin"
  echo "tools: building $name $version (log: $log)"
  rm -rf "$gobin"
  GOBIN="$gobin" go install -trimpath -ldflags "$ldflags" "$pkg@$version" >"$log" 2>&1 \
    || fail "building $name $version" "$log"
  mv "$gobin/$(basename "$pkg")" "$bin/$name"
  echo "$version" >"$bin/.$name.version"
}

# --- Kubernetes: kube-apiserver and kubectl from k8s.io/kubernetes, with its staging modules
# replaced by their published versions (v1.X.Y -> v0.X.Y).
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

k8s_tools() {
  local name all=1
  for name in "${K8S_COMMANDS[@]}"; do is_current "$name" "$KUBERNETES_VERSION" || all=0; done
  [[ $all == 1 ]] && return 0
  local log="$logs/kubernetes-mod.log" gomod staging minor replaces=()
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" 2>"$log" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
    || fail "downloading k8s.io/kubernetes $KUBERNETES_VERSION" "$log"
  staging="v0.${KUBERNETES_VERSION#v1.}"
  while read -r mod; do replaces+=("$mod=$mod@$staging"); done \
    < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  [[ ${#replaces[@]} -gt 10 ]] || fail "reading staging modules of k8s.io/kubernetes" "$gomod"
  minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ver_flags="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ver_flags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ver_flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  # One recipe and one build cache for every command: the second and later ones mostly link.
  for name in "${K8S_COMMANDS[@]}"; do
    build "$name" k8s.io/kubernetes "$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/$name" "-s -w $ver_flags" "${replaces[@]}"
  done
}

# --- The pause container: upstream's C program from the same module, static, as upstream builds it.
pause_binary() {
  is_current pause "$PAUSE_VERSION" && return 0
  local log="$logs/pause.log" dir
  dir=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" 2>"$log" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  echo "tools: building pause $PAUSE_VERSION (log: $log)"
  { gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$bin/pause" "$dir/build/pause/linux/pause.c" \
      && strip "$bin/pause"; } >>"$log" 2>&1 || fail "building pause $PAUSE_VERSION" "$log"
  echo "$PAUSE_VERSION" >"$bin/.pause.version"
}

# --- CoreDNS for the sandbox's cluster DNS, with the plugins it uses (ci/coredns/main.go).
coredns() {
  is_current coredns "$COREDNS_VERSION" && return 0
  local dir="$work/coredns" log="$logs/coredns.log"
  echo "tools: building coredns $COREDNS_VERSION (log: $log)"
  rm -rf "$dir" && mkdir -p "$dir" && cp "$root/ci/coredns/main.go" "$dir/"
  (cd "$dir" && go mod init local.build/coredns && go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION" \
    && go build -mod=mod -trimpath -ldflags "-s -w" -o "$bin/coredns" .) >"$log" 2>&1 \
    || fail "building coredns $COREDNS_VERSION" "$log"
  echo "$COREDNS_VERSION" >"$bin/.coredns.version"
}

# --- OCM's hub and klusterlet commands (the images clusteradm installs), in .cache/bin/ocm/.
# The module ships vendor/modules.txt only: build it as a dependency of a throw-away module.
OCM_COMMANDS=(registration-operator registration work placement addon)

ocm() {
  is_current ocm/registration-operator "$OCM_VERSION" && return 0
  local dir="$work/ocm" log="$logs/ocm.log" pkgs=() name
  for name in "${OCM_COMMANDS[@]}"; do pkgs+=("open-cluster-management.io/ocm/cmd/$name"); done
  echo "tools: building ocm $OCM_VERSION (log: $log)"
  rm -rf "$dir" && mkdir -p "$dir" "$bin/ocm"
  (cd "$dir" && go mod init local.build/ocm && go mod edit -require="open-cluster-management.io/ocm@$OCM_VERSION" \
    && go build -mod=mod -trimpath -ldflags "-s -w" -o "$bin/ocm/" "${pkgs[@]}") >"$log" 2>&1 \
    || fail "building ocm $OCM_VERSION" "$log"
  for name in "${OCM_COMMANDS[@]}"; do echo "$OCM_VERSION" >"$bin/ocm/.$name.version"; done
}

helm_flags() { # major version
  local flags="-s -w -X helm.sh/helm/v$1/internal/version.version=$2 -X helm.sh/helm/v$1/internal/version.gitTreeState=clean"
  [[ $1 == 3 ]] && flags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"
  [[ $1 == 3 ]] && flags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37"
  echo "$flags"
}

# --- helm-unittest as a plugin in a cache-local HELM_PLUGINS, shared by helm 3 and helm 4.
helm_unittest() {
  local plugin="$cache/helm/plugins/helm-unittest"
  # Upstream's go.mod replaces yaml-jsonpath with its fork; the throw-away module must do the same.
  build helm-unittest github.com/helm-unittest/helm-unittest "$HELM_UNITTEST_VERSION" \
    github.com/helm-unittest/helm-unittest/cmd/helm-unittest "-s -w" \
    github.com/vmware-labs/yaml-jsonpath@v0.3.2=github.com/helm-unittest/yaml-jsonpath@v0.4.0
  if [[ ! -f "$plugin/.version" || "$(cat "$plugin/.version")" != "$HELM_UNITTEST_VERSION" ]]; then
    local src
    src=$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    rm -rf "$plugin" && mkdir -p "$plugin"
    # The upstream plugin.yaml downloads a release binary in an install hook; the binary is
    # already built, so only the manifest (without hooks) and the binary are placed.
    sed '/^platformHooks:/,$d' "$src/plugin.yaml" >"$plugin/plugin.yaml"
    cp "$bin/helm-unittest" "$plugin/untt-linux-amd64"
    echo "$HELM_UNITTEST_VERSION" >"$plugin/.version"
  fi
}

# --- chart-testing's configuration (its Chart.yaml schema and yamllint rules) ships in its module, not its binary.
ct_config() {
  local dir="$cache/ct" log="$logs/ct-config.log" src
  [[ -f "$dir/.version" && "$(cat "$dir/.version")" == "$CHART_TESTING_VERSION" ]] && return 0
  src=$(go mod download -json "github.com/helm/chart-testing/v3@$CHART_TESTING_VERSION" 2>"$log" \
        | sed -n 's/.*"Dir": "\(.*\)".*/\1/p') || fail "downloading chart-testing $CHART_TESTING_VERSION" "$log"
  mkdir -p "$dir" && cp "$src/etc/chart_schema.yaml" "$src/etc/lintconf.yaml" "$dir/" && chmod 0644 "$dir"/*.yaml
  echo "$CHART_TESTING_VERSION" >"$dir/.version"
}

# --- Argo CD, for the tests of the chart under Argo CD: one multi-call binary (it acts by
# ARGOCD_BINARY_NAME: argocd-repo-server, argocd-application-controller). As a dependency it needs
# the module's own replace directives, read from its go.mod as for Kubernetes.
argocd() {
  is_current argocd "$ARGOCD_VERSION" && return 0
  local log="$logs/argocd-mod.log" gomod replaces=()
  gomod=$(go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" 2>"$log" \
          | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') || fail "downloading argo-cd $ARGOCD_VERSION" "$log"
  while read -r from to version; do replaces+=("$from=$to@$version"); done \
    < <(sed -n '/^replace (/,/^)/s#^\s*\([^ /][^ ]*\) => \([^ ]*\) \(v[^ ]*\)$#\1 \2 \3#p' "$gomod")
  [[ ${#replaces[@]} -gt 10 ]] || fail "reading the replace directives of argo-cd $ARGOCD_VERSION" "$gomod"
  build argocd github.com/argoproj/argo-cd/v3 "$ARGOCD_VERSION" github.com/argoproj/argo-cd/v3/cmd \
    "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}" "${replaces[@]}"
}

# --- The KubeFlex operator (its manager, and cmupdate, which its vcluster spaces run as a Job), in
# .cache/bin/kubeflex/: the sandbox runs it as KubeFlex's chart installs it. A dependency of a
# throw-away module; the module's hash is checked by module_sources.
KUBEFLEX_COMMANDS=(manager cmupdate)

kubeflex() {
  is_current kubeflex/manager "$KUBEFLEX_VERSION" && is_current kubeflex/cmupdate "$KUBEFLEX_VERSION" && return 0
  local dir="$work/kubeflex" log="$logs/kubeflex.log" pkgs=() name
  for name in "${KUBEFLEX_COMMANDS[@]}"; do pkgs+=("github.com/kubestellar/kubeflex/cmd/$name"); done
  echo "tools: building kubeflex $KUBEFLEX_VERSION (log: $log)"
  rm -rf "$dir" && mkdir -p "$dir" "$bin/kubeflex"
  (cd "$dir" && go mod init local.build/kubeflex && go mod edit -require="github.com/kubestellar/kubeflex@$KUBEFLEX_VERSION" \
    && go build -mod=mod -trimpath -ldflags "-s -w" -o "$bin/kubeflex/" "${pkgs[@]}") >"$log" 2>&1 \
    || fail "building kubeflex $KUBEFLEX_VERSION" "$log"
  for name in "${KUBEFLEX_COMMANDS[@]}"; do echo "$KUBEFLEX_VERSION" >"$bin/kubeflex/.$name.version"; done
}

# --- Stand-ins the sandbox builds from tests/images/<name> (Go, standard library only), for images
# whose upstream module the Go module registry here does not serve.
standin() { # name
  local src="$root/tests/images/$1" stamp
  stamp=$(cat "$src"/*.go | sha256sum | cut -c1-16)
  is_current "sandbox/$1" "$stamp" && return 0
  mkdir -p "$bin/sandbox"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$bin/sandbox/$1" .) >"$logs/$1.log" 2>&1 \
    || fail "building the $1 stand-in" "$logs/$1.log"
  echo "$stamp" >"$bin/sandbox/.$1.version"
}

# --- Module sources read at run time by the sandbox (KubeFlex's CRDs), checked against pinned hashes.
module_sources() {
  local log="$logs/modules.log" sum
  sum=$(go mod download -json "github.com/kubestellar/kubeflex@$KUBEFLEX_VERSION" 2>"$log" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p') \
    || fail "downloading github.com/kubestellar/kubeflex $KUBEFLEX_VERSION" "$log"
  [[ "$sum" == "$KUBEFLEX_SUM" ]] || fail "checking github.com/kubestellar/kubeflex hash (got $sum)" "$log"
}

start=$(date +%s)
# A cold build (empty cache) is timed for `make bench`, which reports when CI gets slow.
cold=$([[ -z "$(ls -A "$bin" 2>/dev/null)" ]] && echo 1 || echo 0)
bash "$root/ci/debian.sh"
k8s_tools
pause_binary
coredns
ocm
build etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "-s -w"
install helm3 helm.sh/helm/v3 "$HELM3_VERSION" helm.sh/helm/v3/cmd/helm "$(helm_flags 3 "$HELM3_VERSION")"
install helm4 helm.sh/helm/v4 "$HELM4_VERSION" helm.sh/helm/v4/cmd/helm "$(helm_flags 4 "$HELM4_VERSION")"
ln -sfn helm3 "$bin/helm"
helm_unittest
build clusteradm open-cluster-management.io/clusteradm "$CLUSTERADM_VERSION" \
  open-cluster-management.io/clusteradm/cmd/clusteradm \
  "-s -w"
# Not `go install`: it asks the registry for the module's version list, which it refuses for
# chart-testing and helm-tool.
build ct github.com/helm/chart-testing/v3 "$CHART_TESTING_VERSION" github.com/helm/chart-testing/v3/ct \
  "-s -w -X github.com/helm/chart-testing/v3/ct/cmd.Version=$CHART_TESTING_VERSION"
ct_config
install actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint "-s -w"
build helm-tool github.com/cert-manager/helm-tool "$HELM_TOOL_VERSION" github.com/cert-manager/helm-tool "-s -w"
argocd
module_sources
kubeflex
standin kube-rbac-proxy
standin k3s
elapsed=$(($(date +%s) - start))
[[ "$cold" == 1 ]] && echo "$elapsed" >"$cache/tools-cold-build-seconds"
echo "tools: ready in ${elapsed}s: $(cd "$bin" && ls | tr '\n' ' ')"
