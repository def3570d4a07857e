#!/usr/bin/env bash
# make package: the chart as dist/kubestellar-its-<version>.tgz; the version is chart/Chart.yaml's,
# the one place it is written (ci/check_versions.py keeps the hook package's appVersion in step).
# make release REGISTRY=host[:port] [REGISTRY_CA=ca.crt]: the hook image (`make image`) pushed to
# REGISTRY/kubestellar/ks-its-hooks:<appVersion>, and the chart, pointed at that image, pushed to
# oci://REGISTRY/charts: `helm upgrade --install <name> oci://REGISTRY/charts/kubestellar-its --version
# <version>` then needs no other value to pull the hook image. Credentials: `helm registry login` and
# skopeo's auth file (REGISTRY_AUTH_FILE), as for any push.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
helm=${HELM:-$root/.cache/bin/helm}
dist=${DIST:-$root/dist}
version=$(sed -n 's/^version: *//p' "$root/chart/Chart.yaml")
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/chart/Chart.yaml")
revision=$(git -C "$root" rev-parse HEAD)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# package [REGISTRY]: a copy of the chart with the commit it was made from (an OCI annotation once
# pushed) and, for a registry, the hook image from there; then helm package.
package() {
  local registry=${1:-} chart="$work/kubestellar-its"
  cp -r "$root/chart" "$chart"
  sed -i "s|^annotations:$|annotations:\n  org.opencontainers.image.revision: $revision|" "$chart/Chart.yaml"
  if [[ -n "$registry" ]]; then
    sed -i "s|^    registry: ghcr.io$|    registry: $registry|" "$chart/values.yaml"
    sed -i "s|image: ghcr.io/kubestellar/ks-its-hooks:|image: $registry/kubestellar/ks-its-hooks:|" "$chart/Chart.yaml"
    grep -q "^    registry: $registry$" "$chart/values.yaml" || { echo "release: cannot set hook.image.registry" >&2; exit 1; }
  fi
  mkdir -p "$dist"
  "$helm" package "$chart" --destination "$dist" >/dev/null
  echo "$dist/kubestellar-its-$version.tgz"
}

case "${1:-}" in
  package)
    echo "package: $(package)" ;;
  release)
    registry=${REGISTRY:?set REGISTRY=host[:port] to push to}
    ca_flags=() cert_flags=()
    if [[ -n "${REGISTRY_CA:-}" ]]; then
      mkdir -p "$work/certs" && cp "$REGISTRY_CA" "$work/certs/ca.crt"
      ca_flags=(--ca-file "$REGISTRY_CA") cert_flags=(--dest-cert-dir "$work/certs")
    fi
    archive="$root/.cache/images/ks-its-hooks.tar"
    [[ -f "$archive" ]] || { echo "release: $archive is missing: run make image" >&2; exit 1; }
    skopeo copy --quiet "${cert_flags[@]}" "oci-archive:$archive" \
      "docker://$registry/kubestellar/ks-its-hooks:$app_version"
    echo "release: image $registry/kubestellar/ks-its-hooks:$app_version"
    tgz=$(package "$registry")
    "$helm" push "$tgz" "oci://$registry/charts" "${ca_flags[@]}" 2>&1 | sed 's/^/release: /'
    echo "release: chart oci://$registry/charts/kubestellar-its $version" ;;
  *) echo "usage: $0 package | release (with REGISTRY=host[:port] [REGISTRY_CA=file])" >&2; exit 2 ;;
esac
