#!/usr/bin/env bash
# Checks deploy/Dockerfile as far as a machine without a container engine can (run as root):
# - every build-context COPY source exists, and nothing in the Dockerfile names the build machine's architecture;
# - the run stage's file system is rebuilt from the build script's output, as the Dockerfile lays it out: the
#   binary at /app/service, libz.so.1 at /usr/lib, glibc, libstdc++ and libgcc_s in their Debian multiarch paths
#   (what distroless/cc-debian12 provides), CA certificates, and the nonroot user 65532; the binary may need
#   nothing else; and it stays under 40 MB stripped and 15 MB gzipped;
# - there the binary runs under chroot as 65532:65532, with a read-only root and /proc mounted: --help and
#   --version print, and a --once run against the emulators puts a node's address into DNS.
# usage: scripts/check-image.sh   (builds the release binary with deploy/build-release.sh, as the image does)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
passed=0
failed=0
check() { if eval "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi; }

dockerfile=deploy/Dockerfile
# COPY lines that read the build context (not --from=build): every source but the last word must exist.
while read -r -a words; do
  sources=("${words[@]:1:${#words[@]}-2}")
  for source in "${sources[@]}"; do check "COPY source $source exists" "[ -e '$source' ]"; done
done < <(grep -E '^COPY ' "$dockerfile" | grep -v -- '--from=')
check "the Dockerfile names no architecture" "! grep -nEi 'x86_64|amd64|aarch64|arm64|--platform' '$dockerfile'"
check "libz is found by the loader's cache, not a fixed multiarch path" "grep -q 'ldconfig -p' '$dockerfile'"

# The binary as the build stage makes it.
VERSION=${VERSION:-check-image} deploy/build-release.sh kube-node-dns "$work/out" > "$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; exit 1; }
binary="$work/out/kube-node-dns"
size=$(stat -c %s "$binary")
layer=$(gzip -9 -c "$binary" | wc -c)
echo "release binary: $size bytes stripped, $layer bytes gzipped (the image layer)"
# Issue 15's size targets, held from here on: a new node pulls this layer before it can run the controller.
check "the stripped binary is under 40 MB ($size bytes)" "[ $size -lt 40000000 ]"
check "the binary's image layer is under 15 MB gzipped ($layer bytes)" "[ $layer -lt 15000000 ]"

# The run stage's file system.
root="$work/rootfs"
multiarch="$(uname -m)-linux-gnu"
mkdir -p "$root/app" "$root/usr/lib/$multiarch" "$root/lib/$multiarch" "$root/proc" "$root/etc/ssl/certs" "$root/config"
cp "$binary" "$root/app/service"
cp -L "$(ldconfig -p | awk '/libz\.so\.1 /{print $NF; exit}')" "$root/usr/lib/libz.so.1"
interpreter=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
mkdir -p "$root$(dirname "$interpreter")"
cp -L "$interpreter" "$root$interpreter"
unexpected=()
while read -r name path; do
  case "$name" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*) cp -L "$path" "$root/lib/$multiarch/$name" ;;
    libstdc++.so.*|libgcc_s.so.*) cp -L "$path" "$root/usr/lib/$multiarch/$name" ;;
    libz.so.1) ;;
    *) unexpected+=("$name") ;;
  esac
done < <(ldd "$binary" | awk '$2 == "=>" {print $1, $3}')
check "the binary needs only glibc, libstdc++, libgcc_s and libz (also: ${unexpected[*]:-nothing})" "[ ${#unexpected[@]} -eq 0 ]"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/" 2>/dev/null || true
echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" > "$root/etc/passwd"
echo "nonroot:x:65532:" > "$root/etc/group"

# Emulators for the --once run, on free loopback ports.
bin=$(swift build --show-bin-path)
kube_port=${IMAGE_CHECK_KUBE_PORT:-18383}
cf_port=${IMAGE_CHECK_CLOUDFLARE_PORT:-18484}
"$bin/kube-api-emulator" --port "$kube_port" > "$work/kube.log" 2>&1 &
pids+=($!)
"$bin/cloudflare-emulator" --port "$cf_port" --zone example.com --token image-check-token > "$work/cf.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$kube_port/healthz" >/dev/null && curl -s -o /dev/null "http://127.0.0.1:$cf_port/client/v4/zones" && break
  sleep 0.1
done
curl -sf -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$kube_port/api/v1/nodes" -d '{
  "apiVersion": "v1", "kind": "Node", "metadata": {"name": "image-node"},
  "status": {"conditions": [{"type": "Ready", "status": "True"}],
             "addresses": [{"type": "ExternalIP", "address": "203.0.113.77"}]}}' > /dev/null
cat > "$root/config/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: e, cluster: {server: "http://127.0.0.1:$kube_port"}}]
contexts: [{name: e, context: {cluster: e, user: e}}]
users: [{name: e, user: {}}]
current-context: e
YAML
chmod -R a+rX "$root"

# Inside a private mount namespace: the root read-only, /proc mounted, the binary run as 65532 with only the
# environment given here (the image has no env, no shell).
# usage: run_in_image [VAR=value ...] -- COMMAND [ARGS ...]
run_in_image() {
  local vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${vars[@]}" unshare --mount --propagation private sh -c '
    root=$1; shift
    mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" && mount -t proc proc "$root/proc" &&
    exec chroot --userspec=65532:65532 "$root" "$@"' sh "$root" "$@"
}
run_in_image -- /app/service --help > "$work/help.txt" 2>&1 || true
check "--help prints under chroot" "grep -q 'usage: kube-node-dns' '$work/help.txt'"
run_in_image -- /app/service --version > "$work/version.txt" 2>&1 || true
check "--version prints under chroot ($(head -1 "$work/version.txt"))" "grep -q '^kube-node-dns ' '$work/version.txt'"
run_in_image CF_API_TOKEN=image-check-token -- /app/service --once --dns-name=k.example.com \
  --kubeconfig=/config/kubeconfig --cloudflare-api-url="http://127.0.0.1:$cf_port/client/v4" --http-address=off \
  > "$work/once.log" 2>&1 || { cat "$work/once.log"; }
records=$(curl -s -H "Authorization: Bearer image-check-token" \
  "http://127.0.0.1:$cf_port/client/v4/zones/$(curl -s -H 'Authorization: Bearer image-check-token' \
    "http://127.0.0.1:$cf_port/client/v4/zones" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"][0]["id"])')/dns_records")
check "a --once run under chroot reaches DNS" "echo '$records' | grep -q '203.0.113.77'"
check "the token never appears in the run's output" "! grep -q image-check-token '$work/once.log'"
echo "image check (run stage under chroot, uid 65532, read-only root): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
