#!/usr/bin/env bash
# Installs the pinned Debian packages of ci/debian-packages.txt with apt-get (needs root).
# Idempotent: nothing is fetched when every package is installed at its pinned version.
# A failure prints one line naming the package and the log, and exits 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log="$root/.cache/logs/tools/debian.log"
mkdir -p "$(dirname "$log")"

wanted=()
while read -r package version; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  installed=$(dpkg-query -W -f='${Status} ${Version}' "$package" 2>/dev/null || true)
  [[ "$installed" == "install ok installed $version" ]] || wanted+=("$package=$version")
done <"$root/ci/debian-packages.txt"
[[ ${#wanted[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "tools: Debian packages ${wanted[*]} are missing and installing them needs root; log: $log" >&2
  exit 1
fi
echo "tools: installing Debian packages ${wanted[*]} (log: $log)"
export DEBIAN_FRONTEND=noninteractive
{
  apt-get update -q
  # The services these packages would start are not wanted: the sandbox runs its own instances.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -q --no-install-recommends "${wanted[@]}"
} >"$log" 2>&1 || {
  missing=$(grep -oE "Version '[^']+' for '[^']+' was not found" "$log" | head -1)
  echo "tools: apt-get install failed${missing:+ ($missing)}; log: $log" >&2
  exit 1
}
