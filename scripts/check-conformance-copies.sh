#!/usr/bin/env bash
# The repository carries its own copies of the conformance checks and Cloudflare's schema (conformance/). When the
# project's shared design folder sits beside it (../shared, as in the project's CI), each copy must be
# byte-identical to its counterpart there; a copy that drifted fails, named.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_DIR:-$here/../shared}
files=(kube-api/probe.py cloudflare/validate_traffic.py cloudflare/dns-openapi.json cloudflare/dns-openapi.LICENSE)
# The operators' CRDs live under shared/crds/ there.
crds=(prometheus-operator/LICENSE prometheus-operator/monitoring.coreos.com_podmonitors.yaml
  prometheus-operator/monitoring.coreos.com_prometheusrules.yaml
  cert-manager/LICENSE cert-manager/cert-manager.io_certificates.yaml cert-manager/cert-manager.io_clusterissuers.yaml)
files+=("${crds[@]}")
original() { case "$1" in prometheus-operator/* | cert-manager/*) echo "$shared/crds/$1" ;; *) echo "$shared/$1" ;; esac; }
for file in "${files[@]}"; do
  [ -f "$here/conformance/$file" ] || { echo "conformance/$file is missing"; exit 1; }
done
if [ ! -d "$shared" ]; then
  echo "conformance copies: ${#files[@]} present; no $shared beside the repository to compare with"
  exit 0
fi
drifted=0
for file in "${files[@]}"; do
  if ! cmp -s "$here/conformance/$file" "$(original "$file")"; then
    echo "FAIL conformance/$file differs from $(original "$file"): copy it again (cp $(original "$file") conformance/$file)"
    drifted=$((drifted + 1))
  fi
done
echo "conformance copies identical to $shared: $((${#files[@]} - drifted)) passed, $drifted failed"
[ "$drifted" -eq 0 ]
