#!/usr/bin/env bash
# Proves deploy/: kustomize renders it; every object validates against the Kubernetes 1.37 schemas (strict);
# the RBAC and security settings are what the design lists (scripts/check_deploy.py); nginx.conf, taken from
# the rendered ConfigMap, passes `nginx -t` unchanged and, with only the listen port and the upstream address
# rewritten to loopback, a real nginx proxies to a running swift-www-example and returns its page.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

kubectl kustomize "$here/deploy" > "$work/rendered.yaml"
echo "kustomize: $(grep -c '^kind:' "$work/rendered.yaml") objects rendered"
"$here/.venv/bin/kubernetes-validate" --strict -k 1.37.0 "$work/rendered.yaml" "$here/deploy/kube-node-dns/secret.example.yaml" \
  > "$work/validate.log" 2>&1 || { cat "$work/validate.log"; exit 1; }
echo "kubernetes-validate (1.37, strict): $(grep -c ' passed ' "$work/validate.log") passed, $(grep -Ec 'failed|ERROR' "$work/validate.log" || true) failed"
"$python" "$here/scripts/check_deploy.py" "$work/rendered.yaml" "$here/deploy/kube-node-dns/secret.example.yaml" \
  | sed 's/^\([0-9]* passed\)/RBAC and security settings: \1/'

# The RFC 2136 component, turned on as the README says (uncommenting its line in deploy/kustomization.yaml).
cp -r "$here/deploy" "$work/deploy-rfc2136"
sed -i 's|^# components:|components:|; s|^#   - components/rfc2136|  - components/rfc2136|' "$work/deploy-rfc2136/kustomization.yaml"
kubectl kustomize "$work/deploy-rfc2136" > "$work/rendered-rfc2136.yaml"
"$here/.venv/bin/kubernetes-validate" --strict -k 1.37.0 "$work/rendered-rfc2136.yaml" \
  "$here/deploy/components/rfc2136/secret.example.yaml" > "$work/validate-rfc2136.log" 2>&1 \
  || { cat "$work/validate-rfc2136.log"; exit 1; }
"$python" - "$work/rendered-rfc2136.yaml" <<'PY'
import sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "kube-node-dns")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
env = {e["name"]: e.get("value") for e in c["env"]}
checks = {
    "PROVIDER is rfc2136": env.get("PROVIDER") == "rfc2136",
    "server, zone, key name and secret file are set": all(k in env for k in ["RFC2136_SERVER", "RFC2136_ZONE", "RFC2136_TSIG_KEY_NAME", "RFC2136_TSIG_SECRET_FILE"]),
    "no Cloudflare variable is left": not any(k.startswith("CF_") for k in env),
    "the TSIG secret comes from a Secret volume, mode 0400, mounted read-only": any(
        v.get("secret", {}).get("secretName") == "kube-node-dns-tsig" and v["secret"].get("defaultMode") == 0o400 for v in pod["volumes"])
        and any(m["mountPath"] == "/var/run/secrets/rfc2136" and m.get("readOnly") for m in c["volumeMounts"]),
    "the secret file is inside the mount": env.get("RFC2136_TSIG_SECRET_FILE", "").startswith("/var/run/secrets/rfc2136/"),
    "no Cloudflare token volume is left": not any(v["name"] == "cloudflare-token" for v in pod["volumes"]),
}
bad = [k for k, ok in checks.items() if not ok]
print(f"RFC 2136 component: {len(checks) - len(bad)} passed, {len(bad)} failed" + "".join(f"\n  FAILED: {b}" for b in bad))
sys.exit(1 if bad else 0)
PY

# nginx.conf exactly as the ConfigMap ships it.
"$python" - "$work/rendered.yaml" > "$work/nginx.conf" <<'PY'
import sys, yaml
for o in yaml.safe_load_all(open(sys.argv[1])):
    if o and o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("nginx-config"):
        print(o["data"]["nginx.conf"], end="")
PY
nginx=$(command -v nginx || echo /usr/sbin/nginx)
upstream=$(grep -oE 'server [a-z0-9.-]+\.svc\.cluster\.local:[0-9]+' "$work/nginx.conf" | awk '{print $2}')
# `nginx -t` resolves the upstream's cluster DNS name; give it one in a private mount namespace (/etc/hosts).
printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "${upstream%:*}" > "$work/hosts"
if unshare --mount true 2>/dev/null; then
  unshare --mount sh -c "mount --bind '$work/hosts' /etc/hosts && '$nginx' -t -q -c '$work/nginx.conf'"
  echo "nginx -t: the shipped nginx.conf is valid ($("$nginx" -v 2>&1))"
else
  sed "s/$upstream/127.0.0.1:80/" "$work/nginx.conf" > "$work/nginx-t.conf"
  "$nginx" -t -q -c "$work/nginx-t.conf"
  echo "nginx -t: valid with the upstream name replaced (no mount namespace here to resolve it) ($("$nginx" -v 2>&1))"
fi

# A real proxy run: the app on loopback, nginx in front of it.
www_port=${WWW_PORT:-18380}
nginx_port=${NGINX_PORT:-18480}
PORT=$www_port "$(swift build --show-bin-path)/swift-www-example" > "$work/www.log" 2>&1 &
pids+=($!)
sed -e "s/listen 80 default_server;/listen 127.0.0.1:$nginx_port default_server;/" -e "s/$upstream/127.0.0.1:$www_port/" \
  "$work/nginx.conf" > "$work/nginx-run.conf"
changed=$( (diff "$work/nginx.conf" "$work/nginx-run.conf" || true) | grep -c '^>' || true)
[ "$changed" = 2 ] || { echo "expected exactly 2 rewritten lines (listen, upstream), got $changed"; exit 1; }
"$nginx" -c "$work/nginx-run.conf" -g 'daemon off;' > "$work/nginx.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$nginx_port/nginx-health" >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$www_port/healthz" >/dev/null && break; sleep 0.1; done
page=$(curl -sf "http://127.0.0.1:$nginx_port/")
case "$page" in
  "Hello world from swift-www-example! The time is "*) echo "nginx proxy: $page" ;;
  *) echo "nginx did not return the app's page: '$page'"; cat "$work/nginx.log"; exit 1 ;;
esac
