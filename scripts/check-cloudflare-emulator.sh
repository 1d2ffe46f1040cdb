#!/usr/bin/env bash
# Proves the Cloudflare API emulator against Cloudflare's own code: the official Python SDK runs a scenario
# over every endpoint kube-node-dns uses, then every exchange is validated against Cloudflare's OpenAPI schema.
# Needs PYTHON with the `cloudflare` and `openapi-core` packages (scripts/install-test-tools makes .venv).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
conformance=${CONFORMANCE_DIR:-$here/conformance}
python=${PYTHON:-$here/.venv/bin/python}
bin=$(swift build --show-bin-path)
port=${CLOUDFLARE_EMULATOR_PORT:-18282}
traffic=$(mktemp -d)/sdk-traffic.jsonl
"$bin/cloudflare-emulator" --port "$port" --zone example.com --token sdk-token --readonly-token sdk-readonly \
  --email sdk@example.com --global-key sdk-global-key --traffic "$traffic" > /tmp/cloudflare-emulator.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/client/v4/zones" && break; sleep 0.1; done
"$python" "$here/scripts/cloudflare_sdk_scenario.py" "http://127.0.0.1:$port/client/v4" sdk-token sdk-readonly \
  sdk@example.com sdk-global-key > /tmp/cloudflare-sdk-scenario.log || { cat /tmp/cloudflare-sdk-scenario.log; exit 1; }
echo "Cloudflare SDK scenario: $(tail -1 /tmp/cloudflare-sdk-scenario.log)"
"$python" "$conformance/cloudflare/validate_traffic.py" "$traffic" > /tmp/cloudflare-sdk-schema.log \
  || { cat /tmp/cloudflare-sdk-schema.log; exit 1; }
echo "schema check of the SDK scenario's exchanges: $(tail -1 /tmp/cloudflare-sdk-schema.log)"
