#!/usr/bin/env bash
# Proves deploy/components/https: it renders with kustomize and validates against the Kubernetes schemas, the
# security checks cover its cert-reloader, the cert-manager examples validate against cert-manager's CRD schemas
# (conformance/cert-manager/), its nginx.conf passes `nginx -t` unchanged, and a real nginx serves the app over
# TLS with a test CA's certificate laid out as the kubelet mounts a Secret: http/2, the chain and the name verified,
# 308 from http except /nginx-health, TLS 1.0/1.1 and weak ciphers refused. Then the certificate is rotated by the
# kubelet's symlink flip while clients loop (keep-alive and new connections): the component's own cert-reloader.sh
# makes nginx serve the new certificate, and no request fails.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
component=$here/deploy/components/https
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

cp -r "$here/deploy" "$work/deploy"
sed -i 's|^# components:|components:|; s|^#   - components/https|  - components/https|' "$work/deploy/kustomization.yaml"
kubectl kustomize "$work/deploy" > "$work/rendered.yaml"
"$here/.venv/bin/kubernetes-validate" --strict -k 1.37.0 "$work/rendered.yaml" "$component/site-tls.example.yaml" \
  > "$work/validate.log" 2>&1 || { cat "$work/validate.log"; exit 1; }
echo "kubernetes-validate (1.37, strict) with the https component: $(grep -c ' passed ' "$work/validate.log") passed"
"$python" "$here/scripts/check_deploy.py" "$work/rendered.yaml" "$here/deploy/kube-node-dns/secret.example.yaml" \
  | sed 's/^\([0-9]* passed\)/RBAC and security settings with the https component: \1/'
"$python" - "$work/rendered.yaml" "$component" "$here/conformance/cert-manager" "$work/nginx.conf" <<'PY'
import sys, yaml, jsonschema
rendered, component, crds, nginx_out = sys.argv[1:5]
objs = [o for o in yaml.safe_load_all(open(rendered)) if o]
checks = {}
ds = next(o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "nginx")
pod = ds["spec"]["template"]["spec"]
containers = {c["name"]: c for c in pod["containers"]}
nginx, reloader = containers["nginx"], containers.get("cert-reloader", {})
checks["nginx on host port 443"] = {"name": "https", "containerPort": 443, "hostPort": 443} in nginx["ports"]
checks["the pod shares one process namespace (the reloader signals nginx)"] = pod.get("shareProcessNamespace") is True
tls = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "site-tls"]
checks["the Secret site-tls is a volume, mode 0400"] = len(tls) == 1 and tls[0]["secret"].get("defaultMode") == 0o400
for name, c in (("nginx", nginx), ("cert-reloader", reloader)):
    checks[f"{name} mounts site-tls read-only at /etc/nginx/tls"] = any(
        m["name"] == tls[0]["name"] and m["mountPath"] == "/etc/nginx/tls" and m.get("readOnly") for m in c.get("volumeMounts", []))
n, r = nginx["securityContext"], reloader.get("securityContext", {})
checks["cert-reloader: no privilege escalation, read-only root"] = r.get("allowPrivilegeEscalation") is False and r.get("readOnlyRootFilesystem") is True
checks["cert-reloader: every capability dropped, none added"] = r.get("capabilities", {}).get("drop") == ["ALL"] and not r.get("capabilities", {}).get("add")
checks["cert-reloader runs as the user nginx runs as"] = r.get("runAsUser") == n.get("runAsUser") and r.get("runAsNonRoot") == n.get("runAsNonRoot")
checks["cert-reloader uses an image the kit already uses"] = reloader.get("image") == nginx["image"]
script = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("cert-reloader")), {})
checks["the cert-reloader ConfigMap is cert-reloader.sh"] = script.get("data", {}).get("cert-reloader.sh") == open(f"{component}/cert-reloader.sh").read()
config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("nginx-config"))["data"]["nginx.conf"]
checks["the nginx ConfigMap is the component's nginx.conf"] = config == open(f"{component}/nginx.conf").read()
open(nginx_out, "w").write(config)
# cert-manager's examples against its CRD schemas.
schemas = {}
for name in ("cert-manager.io_certificates.yaml", "cert-manager.io_clusterissuers.yaml"):
    crd = yaml.safe_load(open(f"{crds}/{name}"))
    schemas[crd["spec"]["names"]["kind"]] = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
for name in ("cluster-issuer-cloudflare.yaml", "cluster-issuer-rfc2136.yaml", "certificate.yaml"):
    o = yaml.safe_load(open(f"{component}/cert-manager/{name}"))
    errors = [f"{e.message} at {list(e.absolute_path)}" for e in jsonschema.Draft7Validator(schemas[o["kind"]]).iter_errors(o)]
    checks[f"{name} validates against cert-manager's {o['kind']} schema" + (f": {errors}" if errors else "")] = not errors
cert = yaml.safe_load(open(f"{component}/cert-manager/certificate.yaml"))
checks["the Certificate fills the Secret nginx serves"] = cert["spec"]["secretName"] == "site-tls" and cert["metadata"]["namespace"] == "www"
bad = [k for k, ok in checks.items() if not ok]
print(f"https component: {len(checks) - len(bad)} passed, {len(bad)} failed" + "".join(f"\n  FAILED: {b}" for b in bad))
sys.exit(1 if bad else 0)
PY

# A test CA and certificates for the site's name, laid out as the kubelet mounts a Secret: files in a timestamped
# directory, a ..data symlink to it, and tls.crt and tls.key as symlinks through ..data.
name=www.example.com
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" -out "$work/ca.crt" \
  -days 2 -subj "/CN=kube-node-dns test CA" 2>/dev/null
issue() {  # issue SERIAL DIR: a certificate for $name signed by the test CA
  mkdir -p "$2"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$2/tls.key" -out "$work/req.csr" \
    -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=DNS:%s\n' "$name" > "$work/san.ext"
  openssl x509 -req -in "$work/req.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -set_serial "$1" -days 1 \
    -extfile "$work/san.ext" -out "$2/tls.crt" 2>/dev/null
}
tls=$work/tls
issue 1001 "$tls/..2026_12_05_00_00_00.000000001"
ln -s ..2026_12_05_00_00_00.000000001 "$tls/..data"
ln -s ..data/tls.crt "$tls/tls.crt"
ln -s ..data/tls.key "$tls/tls.key"

# nginx -t on the file exactly as it ships: in a private mount namespace, with the certificate where the Secret's
# mount puts it and the app's Service name resolving (the file needs no other file of /etc/nginx).
nginx=$(command -v nginx || echo /usr/sbin/nginx)
upstream=$(grep -oE 'server [a-z0-9.-]+\.svc\.cluster\.local:[0-9]+' "$work/nginx.conf" | awk '{print $2}')
printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "${upstream%:*}" > "$work/hosts"
unshare --mount sh -c "mount --bind '$work/hosts' /etc/hosts && mount -t tmpfs none /etc/nginx && cp -r '$tls' /etc/nginx/tls \
  && '$nginx' -t -q -c '$work/nginx.conf'"
echo "nginx -t: the https component's nginx.conf is valid ($("$nginx" -v 2>&1))"

# The run: only the listen addresses, the certificate directory, the temporary paths and the upstream rewritten.
www_port=${WWW_PORT:-18381}
http_port=${HTTPS_CHECK_HTTP_PORT:-18481}
https_port=${HTTPS_CHECK_HTTPS_PORT:-18443}
PORT=$www_port "$(swift build --show-bin-path)/swift-www-example" > "$work/www.log" 2>&1 &
pids+=($!)
sed -e "s|listen 80 default_server;|listen 127.0.0.1:$http_port default_server;|" \
  -e "s|listen 443 ssl http2 default_server;|listen 127.0.0.1:$https_port ssl http2 default_server;|" \
  -e "s|/tmp/|$work/|g" -e "s|/etc/nginx/tls/|$tls/|g" -e "s|$upstream|127.0.0.1:$www_port|" \
  "$work/nginx.conf" > "$work/nginx-run.conf"
"$nginx" -c "$work/nginx-run.conf" -g 'daemon off;' > "$work/nginx.log" 2>&1 &
pids+=($!)
fail() { echo "FAILED: $*"; cat "$work/nginx.log"; exit 1; }
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$http_port/nginx-health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http_port/nginx-health" >/dev/null || fail "nginx did not start"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$www_port/healthz" >/dev/null && break; sleep 0.1; done
site=(--cacert "$work/ca.crt" --resolve "$name:$https_port:127.0.0.1")
page=$(curl -s --http2 "${site[@]}" -w '\n%{http_version}' "https://$name:$https_port/")
case "$page" in
  "Hello world from swift-www-example! The time is "*$'\n'2) ;;
  *) fail "https did not return the app's page over http/2 with a verified chain: '$page'" ;;
esac
curl -s "${site[@]}" "https://other.example.org:$https_port/" --resolve "other.example.org:$https_port:127.0.0.1" -o /dev/null \
  && fail "a certificate for $name was accepted for another name"
redirect=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $name" "http://127.0.0.1:$http_port/page?x=1")
[ "$redirect" = "308 https://$name/page?x=1" ] || fail "http should redirect with 308 to https, got '$redirect'"
health=$(curl -s -w ' %{http_code}' -H "Host: $name" "http://127.0.0.1:$http_port/nginx-health")
[ "$health" = $'ok\n 200' ] || fail "/nginx-health on port 80 should answer 200 directly, got '$health'"
handshake() { openssl s_client -connect "127.0.0.1:$https_port" -servername "$name" -CAfile "$work/ca.crt" "$@" </dev/null >/dev/null 2>&1; }
handshake -tls1_2 -cipher 'DEFAULT@SECLEVEL=0' || fail "TLS 1.2 should be accepted"
handshake -tls1_3 || fail "TLS 1.3 should be accepted"
handshake -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' && fail "TLS 1.1 should be refused"
handshake -tls1 -cipher 'DEFAULT@SECLEVEL=0' && fail "TLS 1.0 should be refused"
handshake -tls1_2 -cipher 'AES128-SHA:DES-CBC3-SHA:RC4-SHA@SECLEVEL=0' && fail "a cipher without forward secrecy should be refused"
echo "nginx over TLS: the app's page over http/2 with the chain and the name verified; 308 from http, /nginx-health on 80; TLS 1.2 and 1.3 accepted, TLS 1.0, 1.1 and weak ciphers refused"

# Rotation: the kubelet's symlink flip, with clients looping throughout.
serial() {  # the serial number of the certificate nginx serves now, in decimal
  local hex
  hex=$(openssl s_client -connect "127.0.0.1:$https_port" -servername "$name" </dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2)
  echo $((16#${hex:-0}))
}
[ "$(serial)" = 1001 ] || fail "nginx does not serve the first certificate"
interval=${HTTPS_CHECK_RELOADER_INTERVAL:-2}
TLS_DIR=$tls PID_FILE=$work/nginx.pid INTERVAL=$interval BEAT_FILE=$work/beat sh "$component/cert-reloader.sh" > "$work/reloader.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -f "$work/beat" ] && break; sleep 0.1; done
# Keep-alive: one curl, many requests on one connection, as a browser does (it reconnects when nginx's old
# worker closes an idle connection, as browsers do). New connections: one request per connection.
for _ in $(seq 1 400); do printf 'url = "https://%s:%s/"\noutput = "/dev/null"\n' "$name" "$https_port"; done > "$work/keepalive.curl"
curl -s --http2 "${site[@]}" --rate 40/s -w '%{http_code}\n' -K "$work/keepalive.curl" > "$work/keepalive.codes" 2>&1 &
keepalive=$!
"$python" - "$name" "$https_port" "$work/ca.crt" "$work/newconn.codes" <<'PY' &
import http.client, socket, ssl, sys, time
name, port, ca, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=ca)


class SiteConnection(http.client.HTTPSConnection):
    """A new connection to nginx on loopback that verifies the certificate against the site's name."""

    def connect(self):
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), 5), server_hostname=name)


codes = []
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        connection = SiteConnection(name, port, timeout=5)
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        codes.append(str(response.status))
        connection.close()
    except Exception as error:  # every failure counts, whatever it is
        codes.append(f"error {error!r}")
    time.sleep(0.025)
open(out, "w").write("\n".join(codes) + "\n")
PY
newconn=$!
# The flip comes while traffic flows: once nginx has logged the clients' first 40 requests.
before=$(grep -c '"GET / HTTP' "$work/nginx.log" || true)
for _ in $(seq 1 200); do [ "$(grep -c '"GET / HTTP' "$work/nginx.log" || true)" -ge $((before + 40)) ] && break; sleep 0.05; done
issue 1002 "$tls/..2026_12_05_01_00_00.000000002"
flipped=$(date +%s.%N)
ln -s ..2026_12_05_01_00_00.000000002 "$tls/..data_tmp" && mv -T "$tls/..data_tmp" "$tls/..data"
served=""
for _ in $(seq 1 300); do [ "$(serial)" = 1002 ] && { served=$(date +%s.%N); break; }; sleep 0.05; done
[ -n "$served" ] || fail "nginx still serves the old certificate $(( interval + 15 )) s after the flip: $(cat "$work/reloader.log")"
reload=$(awk -v a="$flipped" -v b="$served" 'BEGIN { printf "%.2f", b - a }')
wait "$keepalive" "$newconn"
declare -A totals
for file in keepalive newconn; do
  total=$(wc -l < "$work/$file.codes")
  bad=$(grep -vc '^200$' "$work/$file.codes" || true)
  [ "$bad" = 0 ] || fail "$bad of $total requests on $file failed during the rotation: $(grep -v '^200$' "$work/$file.codes" | sort | uniq -c)"
  [ "$total" -ge 100 ] || fail "only $total $file requests were made"
  totals[$file]=$total
done
grep -q "nginx reloads it" "$work/reloader.log" || fail "the cert-reloader did not reload nginx"
echo "certificate rotation (symlink flip): the new certificate served after ${reload} s (reloader interval ${interval} s; the kit's is 10 s)," \
  "failed requests 0 of $((totals[keepalive] + totals[newconn])) (${totals[keepalive]} on one keep-alive connection, ${totals[newconn]} on new connections)"
