#!/usr/bin/env python3
"""Reads the rendered manifests (`kubectl kustomize deploy/`) and checks what the design promises: RBAC grants
exactly the listed rules and nothing more, the controller runs 2 replicas with leader election, probes, limits
and a locked-down security context, the token comes from a Secret that is not itself applied, nginx sits on
host port 80 with ClusterFirstWithHostNet, and every container has probes and a memory limit.

usage: check_deploy.py RENDERED.yaml SECRET_EXAMPLE.yaml     Last line: 'N passed, M failed'.
"""
import sys

import yaml

objects = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
secret_example = yaml.safe_load(open(sys.argv[2]))
passed = failed = 0


def check(label, condition):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {label}")


def find(kind, name, namespace=None):
    for o in objects:
        m = o["metadata"]
        if o["kind"] == kind and m["name"] == name and (namespace is None or m.get("namespace") == namespace):
            return o
    raise SystemExit(f"missing {kind} {namespace}/{name} in the rendered manifests")


def rules(o):
    return sorted((tuple(r.get("apiGroups", [])), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"])),
                   tuple(r.get("resourceNames", []))) for r in o["rules"])


# RBAC: the whole set of grants, compared exactly; nothing else may bind to the controller's account.
expected = {
    ("ClusterRole", None, "kube-node-dns"): [(("",), ("nodes",), ("get", "list", "watch"), ())],
    ("Role", "kube-node-dns", "kube-node-dns-leases"): [(("coordination.k8s.io",), ("leases",), ("create", "get", "update"), ())],
    ("Role", "default", "kube-node-dns-node-events"): [(("",), ("events",), ("create",), ())],
    ("Role", "www", "kube-node-dns-serving-pods"): [(("",), ("pods",), ("get", "list", "watch"), ())],
}
granted = {}
for o in objects:
    if o["kind"] in ("ClusterRole", "Role"):
        granted[(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])] = rules(o)
check(f"roles and their rules are exactly the listed set; rendered {granted}", granted == expected)
for key, want in expected.items():
    check(f"{key} rules", granted.get(key) == want)
for o in objects:
    if o["kind"] in ("ClusterRoleBinding", "RoleBinding"):
        subjects = o.get("subjects", [])
        check(f"{o['metadata']['name']} binds only the kube-node-dns account",
              subjects == [{"kind": "ServiceAccount", "name": "kube-node-dns", "namespace": "kube-node-dns"}])
        ref = o["roleRef"]
        check(f"{o['metadata']['name']} refers to a checked role",
              (ref["kind"], o["metadata"].get("namespace") if ref["kind"] == "Role" else None, ref["name"]) in expected)
check("no wildcard anywhere in RBAC", "'*'" not in str([o.get("rules") for o in objects if "rules" in o]))

# The controller.
controller = find("Deployment", "kube-node-dns", "kube-node-dns")
spec = controller["spec"]["template"]["spec"]
container = spec["containers"][0]
check("2 replicas", controller["spec"]["replicas"] == 2)
check("--leader-elect", "--leader-elect" in container.get("args", []))
check("its own ServiceAccount", spec["serviceAccountName"] == "kube-node-dns")
pod_security = spec["securityContext"]
check("runAsNonRoot", pod_security.get("runAsNonRoot") is True and pod_security.get("runAsUser", 0) != 0)
check("seccomp RuntimeDefault", pod_security.get("seccompProfile") == {"type": "RuntimeDefault"})
security = container["securityContext"]
check("read-only root filesystem", security.get("readOnlyRootFilesystem") is True)
check("all capabilities dropped, none added", security.get("capabilities") == {"drop": ["ALL"]})
check("no privilege escalation", security.get("allowPrivilegeEscalation") is False)
check("liveness on /healthz", container["livenessProbe"]["httpGet"]["path"] == "/healthz")
check("readiness on /readyz", container["readinessProbe"]["httpGet"]["path"] == "/readyz")
check("memory request and limit", "memory" in container["resources"]["requests"] and "memory" in container["resources"]["limits"])
env = {e["name"]: e for e in container["env"]}
nginx_ds = find("DaemonSet", "nginx", "www")
serving = env.get("SERVING_PODS", {}).get("value", "")
serving_ns, _, serving_selector = serving.partition("/")
pod_labels = nginx_ds["spec"]["template"]["metadata"]["labels"]
wanted = dict(part.split("=", 1) for part in serving_selector.split(",") if "=" in part)
check(f"--serving-pods ({serving}) selects the nginx DaemonSet's pods in their namespace",
      serving_ns == nginx_ds["metadata"]["namespace"] and wanted and all(pod_labels.get(k) == v for k, v in wanted.items()))
check("the token from a file, not a literal", "CF_API_TOKEN" not in env and "CF_API_TOKEN_FILE" in env)
volumes = {v["name"]: v for v in spec["volumes"]}
check("the token file comes from the Secret", any(v.get("secret", {}).get("secretName") == "cloudflare-api-token" for v in volumes.values()))
check("the Secret example is not applied", not any(o["kind"] == "Secret" for o in objects))
check("the Secret example names the mounted Secret", secret_example["metadata"] == {"name": "cloudflare-api-token", "namespace": "kube-node-dns"})
pdb = find("PodDisruptionBudget", "kube-node-dns", "kube-node-dns")
check("the PDB selects the controller", pdb["spec"]["selector"]["matchLabels"] == controller["spec"]["selector"]["matchLabels"])

# Rollout and disruption arithmetic: with every replica Ready (standbys are), a rollout surges one pod and never
# drops below the replica count, and a drain may evict exactly one replica at a time.
replicas = controller["spec"]["replicas"]
strategy = controller["spec"].get("strategy", {})
rolling = strategy.get("rollingUpdate", {})
check("RollingUpdate strategy, stated", strategy.get("type") == "RollingUpdate")
check("rollout surges one pod", rolling.get("maxSurge") == 1)
check("rollout never has fewer Ready replicas than wanted", rolling.get("maxUnavailable") == 0)
pdb_max = pdb["spec"].get("maxUnavailable")
check("the PDB states maxUnavailable, not minAvailable", pdb_max is not None and "minAvailable" not in pdb["spec"])
allowed = replicas - (replicas - (pdb_max or 0))
check(f"a drain may evict one replica when all are Ready (allowed {allowed})", allowed == 1)
args = container.get("args", [])


def flag(name, default):
    for a in args:
        if a.startswith(f"--{name}="):
            value = a.split("=", 1)[1]
            return float(value[:-1]) if value.endswith("s") else float(value)
    return default


renew_deadline, lease_duration, retry = flag("lease-renew-deadline", 10), flag("lease-duration", 15), flag("lease-retry-period", 2)
grace = spec.get("terminationGracePeriodSeconds", 30)
check(f"the grace period ({grace} s) covers a Lease release as slow as the renew deadline ({renew_deadline} s)", grace > renew_deadline)
check(f"a standby retries the Lease within a second or two of its release ({retry} s)", retry <= 2)
check("the renew deadline is shorter than the lease", renew_deadline < lease_duration)

# nginx and the app.
nginx = find("DaemonSet", "nginx", "www")["spec"]["template"]["spec"]
check("nginx on the host network", nginx.get("hostNetwork") is True)
check("nginx resolves Services", nginx.get("dnsPolicy") == "ClusterFirstWithHostNet")
check("nginx on host port 80", {"name": "http", "containerPort": 80, "hostPort": 80} in nginx["containers"][0]["ports"])
config_volume = [v for v in nginx["volumes"] if "configMap" in v][0]["configMap"]["name"]
check("nginx mounts the generated ConfigMap", any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == config_volume for o in objects))
check("nginx's root filesystem is read-only", nginx["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True)
app = find("Deployment", "swift-www-example", "www")["spec"]["template"]["spec"]
service = find("Service", "swift-www-example", "www")
check("the Service selects the app", service["spec"]["selector"] == find("Deployment", "swift-www-example", "www")["spec"]["selector"]["matchLabels"])
check("the app runs as non-root, read-only", app["securityContext"]["runAsNonRoot"] and app["containers"][0]["securityContext"]["readOnlyRootFilesystem"])
for o in objects:
    if o["kind"] in ("Deployment", "DaemonSet"):
        for c in o["spec"]["template"]["spec"]["containers"]:
            label = f"{o['metadata']['name']}/{c['name']}"
            check(f"{label} has probes", "livenessProbe" in c and "readinessProbe" in c)
            check(f"{label} has a memory limit and requests", "memory" in c["resources"]["limits"] and "cpu" in c["resources"]["requests"])
            check(f"{label} image is pinned to a tag", ":" in c["image"] and not c["image"].endswith(":latest"))

print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
