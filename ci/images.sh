#!/usr/bin/env bash
# Builds the images into .cache/images as OCI archives, with buildah, from nothing pulled:
#   base images made of Debian packages by mmdebstrap (the Python runtime, a builder with pip and
#   the machine's Go toolchain, a shell), the hook image from hooks/Dockerfile on those bases,
#   and for the sandbox: pause, OCM's hub and klusterlet commands, KubeFlex's images and what KubeFlex
#   runs (see kubeflex() below).
# Usage: ci/images.sh hook | all. Idempotent: an image whose inputs did not change is not rebuilt.
# A failure prints one line naming the image and its log, and exits 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ci/versions.env
source "$root/ci/versions.env"
cache="$root/.cache"
out="$cache/images"
logs="$cache/logs/images"
bin="$cache/bin"
mkdir -p "$out" "$logs" "$cache/containers"

# buildah's storage inside the project's cache, not the machine's.
export CONTAINERS_STORAGE_CONF="$cache/containers/storage.conf"
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/containers/storage"
runroot = "$cache/containers/run"
EOF
export BUILDAH_ISOLATION=chroot

fail() { echo "images: $1 failed; log: $2" >&2; exit 1; }

APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/chart/Chart.yaml")
SUITE=bookworm

# fresh NAME STAMP: true when .cache/images/NAME.tar was built from inputs hashing to STAMP.
fresh() { [[ -f "$out/$1.tar" && -f "$out/.$1.stamp" && "$(cat "$out/.$1.stamp")" == "$2" ]]; }
record() { echo "$2" >"$out/.$1.stamp"; }
# offer ARCHIVE REF: the sandbox pushes .cache/images/ARCHIVE.tar to its registry as REF.
offer() { echo "$2" >"$out/$1.ref"; }

# base NAME PACKAGES...: a root filesystem of Debian packages (extracted, not installed: no
# maintainer scripts run), with the users the images run as, committed as localhost/NAME.
base() {
  local name=$1; shift
  local stamp extra=""
  [[ "$name" == builder ]] && extra=$(go version)
  stamp=$(echo "$SUITE $* $extra" | sha256sum | cut -c1-16)
  if fresh "$name" "$stamp" && buildah inspect --type image "localhost/$name:$SUITE" >/dev/null 2>&1; then
    return 0
  fi
  echo "images: building base $name (log: $logs/$name.log)"
  build_base "$name" "$@" >"$logs/$name.log" 2>&1 || fail "base $name" "$logs/$name.log"
  record "$name" "$stamp"
}

# Every command checked: errexit does not apply inside a function called on the left of ||.
build_base() {
  local name=$1 dir="$cache/images/rootfs-$1" container; shift
  rm -rf "$dir" && mkdir -p "$dir" || return 1
  mmdebstrap --variant=extract --include="$(IFS=,; echo "$*")" "$SUITE" "$dir" || return 1
  # The users the images run as: root, and nonroot (65532) as in distroless images.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$dir/etc/passwd" || return 1
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group" || return 1
  mkdir -p "$dir/home/nonroot" "$dir/tmp" "$dir/usr/local/bin" "$dir/etc/ssl/certs" || return 1
  chmod 1777 "$dir/tmp" && chown 65532:65532 "$dir/home/nonroot" || return 1
  rm -rf "$dir/var/cache/apt" "$dir/var/lib/apt/lists" "$dir/usr/share/doc" "$dir/usr/share/man"
  # pip and go inside a build verify TLS with the machine's CA bundle.
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/" || return 1
  # This is a build image, not a system Python: pip may install into a --target.
  rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
  if [[ "$name" == builder ]]; then cp -a "$(go env GOROOT)" "$dir/usr/local/go" || return 1; fi
  container=$(buildah from scratch) || return 1
  buildah copy "$container" "$dir" / || return 1
  buildah config --env PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin --env GOPATH=/go \
    --env GOTOOLCHAIN=local "$container" || return 1
  buildah commit --rm --format oci "$container" "localhost/$name:$SUITE" || return 1
  buildah push "localhost/$name:$SUITE" "oci-archive:$out/$name.tar:localhost/$name:$SUITE" || return 1
  rm -rf "$dir"
}

# hook: hooks/Dockerfile unchanged, with the bases above as its build arguments. The Go stage
# mounts the project's Go caches, so clusteradm links instead of compiling cold a second time.
hook() {
  base runtime python3 netbase base-files
  base builder python3 python3-pip dash coreutils sed base-files netbase
  local stamp log="$logs/ks-its-hooks.log" image="localhost/kubestellar/ks-its-hooks:$APP_VERSION"
  stamp=$( (cat "$root/hooks/Dockerfile" "$root/ci/versions.env" "$out/.runtime.stamp" "$out/.builder.stamp";
            cd "$root" && git ls-files -co --exclude-standard hooks | grep -v '^hooks/tests/' | sort | xargs cat) \
          | sha256sum | cut -c1-16)
  fresh ks-its-hooks "$stamp" && return 0
  echo "images: building ks-its-hooks $APP_VERSION (log: $log)"
  mkdir -p "$cache/go/mod" "$cache/go/build"
  build_hook "$image" >"$log" 2>&1 || fail "ks-its-hooks" "$log"
  record ks-its-hooks "$stamp"
  offer ks-its-hooks "kubestellar/ks-its-hooks:$APP_VERSION"
  echo "images: ks-its-hooks $APP_VERSION: $(buildah images --format '{{.Size}}' "$image") unpacked," \
    "$(du -h "$out/ks-its-hooks.tar" | cut -f1) as an OCI archive"
}

build_hook() {
  local image=$1 revision
  revision=$(cd "$root" && git rev-parse HEAD)
  buildah bud --pull=never --network host --layers=false -f "$root/hooks/Dockerfile" \
    --build-arg GO_IMAGE="localhost/builder:$SUITE" --build-arg PYTHON_IMAGE="localhost/builder:$SUITE" \
    --build-arg RUNTIME_IMAGE="localhost/runtime:$SUITE" --build-arg CLUSTERADM_VERSION="$CLUSTERADM_VERSION" \
    --build-arg HELM_VERSION="$HELM3_VERSION" \
    --build-arg VERSION="$APP_VERSION" --build-arg REVISION="$revision" \
    --annotation org.opencontainers.image.source=https://github.com/kubestellar/kubestellar \
    --annotation org.opencontainers.image.version="$APP_VERSION" \
    --annotation org.opencontainers.image.revision="$revision" \
    --annotation org.opencontainers.image.licenses=Apache-2.0 \
    -v "$cache/go/mod:/go/pkg/mod" -v "$cache/go/build:/root/.cache/go-build" \
    -t "$image" "$root" || return 1
  buildah push "$image" "oci-archive:$out/ks-its-hooks.tar:$image"
}

# binary FROM NAME TAG USER ENTRYPOINT FILE:PATH...: an image of static binaries FROM scratch or a base
# above, as upstream's: OCM's images have no entrypoint (each Deployment's args[0] is the binary's path).
binary() {
  local from=$1 name=$2 tag=$3 user=$4 entrypoint=$5 stamp log="$logs/${2//\//-}.log" archive=${2//\//-} pair; shift 5
  stamp=$( (echo "$from $user $entrypoint $*"; [[ $from == scratch ]] || cat "$out/.$from.stamp"
            for pair in "$@"; do cat "${pair%%:*}"; done) | sha256sum | cut -c1-16)
  fresh "$archive" "$stamp" && return 0
  build_binary "$from" "$name" "$tag" "$user" "$entrypoint" "$archive" "$@" >"$log" 2>&1 || fail "$name" "$log"
  record "$archive" "$stamp"
  offer "$archive" "$name:$tag"
}

build_binary() {
  local from=$1 name=$2 tag=$3 user=$4 entrypoint=$5 archive=$6 container pair; shift 6
  [[ $from == scratch ]] || from="localhost/$from:$SUITE"
  container=$(buildah from --pull=never "$from") || return 1
  for pair in "$@"; do buildah copy --chmod 0755 "$container" "${pair%%:*}" "${pair#*:}" || return 1; done
  buildah config --user "$user" "$container" || return 1
  if [[ -n "$entrypoint" ]]; then buildah config --entrypoint "[\"$entrypoint\"]" "$container" || return 1; fi
  buildah commit --rm --format oci "$container" "localhost/$name:$tag" || return 1
  buildah push "localhost/$name:$tag" "oci-archive:$out/$archive.tar:localhost/$name:$tag"
}

sandbox() {
  base shell dash coreutils base-files
  offer shell "sandbox/shell:$SUITE"
  binary scratch pause "$PAUSE_VERSION" 65535:65535 /pause "$bin/pause:/pause"
  # Image name -> command (upstream's images keep the binary at /<command>, USER 10001).
  local image command
  for image in registration-operator registration work placement addon-manager; do
    command=$image; [[ $image == addon-manager ]] && command=addon
    binary scratch "open-cluster-management/$image" "$OCM_VERSION" 10001 "" "$bin/ocm/$command:/$command"
  done
  kubeflex
}

# KubeFlex's images, and those its chart and its vcluster spaces run, under upstream's names: the
# node pulls <host>/<path> from the sandbox's registry (a mirror of each host, tests/sandbox/node.py).
# `static` stands for distroless/static (nonroot 65532, CA bundle, /tmp, no shell).
kubeflex() {
  base static base-files netbase
  local kf=${KUBEFLEX_VERSION#v}
  binary static ghcr.io/kubestellar/kubeflex/manager "$kf" 65532:65532 /manager "$bin/kubeflex/manager:/manager"
  # ko's layout (upstream builds cmupdate with ko); the operator runs the tag `latest`.
  binary static ghcr.io/kubestellar/kubeflex/cmupdate latest 65532:65532 /ko-app/cmupdate \
    "$bin/kubeflex/cmupdate:/ko-app/cmupdate"
  # Stand-ins (tests/images): no module of these is served here; README lists them.
  binary static quay.io/brancz/kube-rbac-proxy v0.19.1 65532:65532 /usr/local/bin/kube-rbac-proxy \
    "$bin/sandbox/kube-rbac-proxy:/usr/local/bin/kube-rbac-proxy"
  # The chart's Job runs `sh -c "kubectl apply ..."`: a shell and the pinned kubectl.
  binary shell quay.io/kubestellar/kubectl 1.30.14 65532:65532 "" "$bin/kubectl:/usr/local/bin/kubectl"
  # The vcluster chart's k3s: the launcher and the control plane's binaries (tests/images/k3s).
  binary static docker.io/rancher/k3s v1.27.2-k3s1 0:0 /bin/k3s "$bin/sandbox/k3s:/bin/k3s" "$bin/etcd:/bin/etcd" \
    "$bin/kube-apiserver:/bin/kube-apiserver" "$bin/kube-controller-manager:/bin/kube-controller-manager"
  syncer
}

# The vcluster chart's syncer: the sandbox's pod syncer (tests/sandbox/vcluster.py) on the hook image,
# which has Python and the Kubernetes client.
syncer() {
  local name=ghcr.io/loft-sh/vcluster tag=0.16.4 archive=ghcr.io-loft-sh-vcluster log="$logs/vcluster-syncer.log" stamp
  local files=(tests/__init__.py tests/sandbox/__init__.py tests/sandbox/host.py tests/sandbox/kube.py
               tests/sandbox/syncer.py tests/sandbox/vcluster.py)
  stamp=$( (cat "$out/.ks-its-hooks.stamp"; cd "$root" && cat "${files[@]}") | sha256sum | cut -c1-16)
  fresh "$archive" "$stamp" && return 0
  build_syncer "$name:$tag" "$archive" "${files[@]}" >"$log" 2>&1 || fail "$name" "$log"
  record "$archive" "$stamp"
  offer "$archive" "$name:$tag"
}

build_syncer() {
  local image=$1 archive=$2 container file; shift 2
  container=$(buildah from --pull=never "localhost/kubestellar/ks-its-hooks:$APP_VERSION") || return 1
  for file in "$@"; do buildah copy "$container" "$root/$file" "/opt/sandbox/$file" || return 1; done
  buildah config --env PYTHONPATH=/opt/ks-its:/opt/sandbox --workingdir /opt/sandbox \
    --entrypoint '["python3", "-m", "tests.sandbox.vcluster"]' --user 0:0 "$container" || return 1
  buildah commit --rm --format oci "$container" "localhost/$image" || return 1
  buildah push "localhost/$image" "oci-archive:$out/$archive.tar:localhost/$image"
}

case "${1:-all}" in
  hook) hook ;;
  all) hook; sandbox ;;
  *) echo "usage: $0 hook|all" >&2; exit 2 ;;
esac
