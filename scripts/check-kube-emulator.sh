#!/usr/bin/env bash
# Proves the Kubernetes API emulator against independent clients: the conformance probe (39 checks, the 410 ones
# through the emulator's compaction switch) and the real kubectl.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
conformance=${CONFORMANCE_DIR:-$here/conformance}
bin=$(swift build --show-bin-path)
port=${KUBE_EMULATOR_PORT:-18181}
"$bin/kube-api-emulator" --port "$port" > /tmp/kube-api-emulator.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
PROBE_COMPACT_CMD="curl -sf -X POST http://127.0.0.1:$port/_emulator/compact" python3 "$conformance/kube-api/probe.py" "http://127.0.0.1:$port" | tail -2

cache=$(mktemp -d)
k() { KUBECONFIG=/dev/null kubectl --server "http://127.0.0.1:$port" --cache-dir "$cache" "$@"; }
cat > "$cache/node.yaml" <<'YAML'
apiVersion: v1
kind: Node
metadata: {name: ci-node, labels: {role: web}}
status:
  addresses: [{type: ExternalIP, address: 203.0.113.7}]
YAML
k create -f "$cache/node.yaml" --validate=false
k get nodes | grep -q ci-node
sed -i 's/role: web/role: edge/' "$cache/node.yaml"
k apply -f "$cache/node.yaml" --validate=false 2>/dev/null
k get nodes --show-labels | grep -q role=edge
k patch node ci-node --subresource=status -p '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}'
test "$(k get node ci-node -o jsonpath='{.status.conditions[0].status}')" = True
cat > "$cache/lease.yaml" <<'YAML'
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ci-lease, namespace: default}
spec: {holderIdentity: ci, leaseDurationSeconds: 15}
YAML
k create -f "$cache/lease.yaml" --validate=false
k get leases | grep -q ci-lease
k delete node ci-node
test -z "$(k get nodes -o name)"
cat > "$cache/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: ci-pod, namespace: default, labels: {app: nginx}}
spec:
  containers: [{name: nginx, image: nginx:1.30-alpine}]
YAML
k apply -f "$cache/pod.yaml" --validate=false > /dev/null
k get pods -A | grep -q "default *ci-pod"
k get pods -n default -l app=nginx -o name | grep -q pod/ci-pod
k delete pod ci-pod -n default > /dev/null
test -z "$(k get pods -A -o name)"
echo "kubectl: get, create -f, apply, patch --subresource=status, delete, get leases, apply/get -A/delete pod: 9 passed, 0 failed"
