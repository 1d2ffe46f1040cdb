"""A real Prometheus scrapes a real kube-node-dns between the two emulators, with deploy/monitoring/rules.yaml loaded.

Checks that every metric a rule or a dashboard panel names has a series, that every rule expression and panel query
evaluates without error, that `promtool check metrics` finds nothing in /metrics, and that driving the controller into
alerting states (a conflicting record, every node NotReady, a revoked token) makes the matching alerts pend.

usage: monitoring_check.py BIN_DIR MONITORING_DIR WORK_DIR
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import yaml

bin_dir, monitoring, work = sys.argv[1:4]
TOKEN = "monitoring-check-token"
NAME = "k.example.com"
processes = []
failures = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, argv, env=None):
    log = open(os.path.join(work, name + ".log"), "w")
    processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}))


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def wait(what, condition, timeout=60):
    """Waits for a condition the system under test makes true (each is a state it reaches, not a delay)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    failures.append(f"timed out waiting for {what}")
    return False


def query(expr):
    status, text = http("GET", f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return json.loads(text) if status in (200, 400, 422) and text else {"status": "error", "error": f"HTTP {status}"}


def stop():
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


try:
    kube_port, cf_port, ops_port, prom_port = free_port(), free_port(), free_port(), free_port()
    kube = f"http://127.0.0.1:{kube_port}"
    cf = f"http://127.0.0.1:{cf_port}"
    ops = f"http://127.0.0.1:{ops_port}"
    prom = f"http://127.0.0.1:{prom_port}"
    start("kube-api-emulator", [f"{bin_dir}/kube-api-emulator", "--port", str(kube_port)])
    start("cloudflare-emulator", [f"{bin_dir}/cloudflare-emulator", "--port", str(cf_port), "--zone", "example.com", "--token", TOKEN])
    wait("the emulators", lambda: http("GET", f"{kube}/healthz")[0] == 200 and http("GET", f"{cf}/_emulator/records")[0] == 200)
    for index in (1, 2, 3):
        node = {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{index}"},
            "status": {
                "addresses": [{"type": "ExternalIP", "address": f"203.0.113.{index}"}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            },
        }
        http("POST", f"{kube}/api/v1/nodes", node, {"Content-Type": "application/json"})
    kubeconfig = os.path.join(work, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: e, cluster: {{server: '{kube}'}}}}]\n"
            "contexts: [{name: e, context: {cluster: e, user: e}}]\nusers: [{name: e, user: {}}]\ncurrent-context: e\n")
    start(
        "kube-node-dns",
        [f"{bin_dir}/kube-node-dns", f"--http-address=127.0.0.1:{ops_port}", "--resync-interval=2s", "--debounce=50ms"],
        {"KUBECONFIG": kubeconfig, "CF_API_TOKEN": TOKEN, "CF_API_URL": f"{cf}/client/v4", "DNS_NAME": NAME})
    wait("the controller to be ready", lambda: http("GET", f"{ops}/readyz")[0] == 200)

    # promtool's lint of the exposition: names, units, help, counters ending in _total.
    _, metrics_text = http("GET", f"{ops}/metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=metrics_text, capture_output=True, text=True)
    lint_findings = (lint.stdout + lint.stderr).strip()
    if lint.returncode != 0 or lint_findings:
        failures.append(f"promtool check metrics: {lint_findings or lint.returncode}")
    counters = re.findall(r"^# TYPE (\S+) counter$", metrics_text, re.M)
    if any(not name.endswith("_total") for name in counters):
        failures.append(f"counters not ending in _total: {[n for n in counters if not n.endswith('_total')]}")

    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [os.path.join(monitoring, "rules.yaml")],
            "scrape_configs": [{"job_name": "kube-node-dns", "static_configs": [{"targets": [f"127.0.0.1:{ops_port}"]}]}],
        }, f)
    start("prometheus", [
        "prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
        f"--web.listen-address=127.0.0.1:{prom_port}"])
    wait("Prometheus to scrape the controller", lambda: query('up{job="kube-node-dns"} == 1').get("data", {}).get("result"))

    rules = yaml.safe_load(open(os.path.join(monitoring, "rules.yaml")))["groups"][0]["rules"]
    dashboard = json.load(open(os.path.join(monitoring, "dashboard.json")))
    expressions = [("rule " + r["alert"], r["expr"]) for r in rules]
    expressions += [(f"panel {p['title']!r}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    names = sorted({n for _, e in expressions for n in re.findall(r"\b(kube_node_dns_[a-z0-9_]+|up)\b", e)})
    for name in names:
        if not wait(f"a series of {name}", lambda: query(f'count({{__name__="{name}"}})').get("data", {}).get("result"), 30):
            failures.append(f"no series for {name}, which a rule or a panel uses")
    for label, expr in expressions:
        answer = query(expr)
        if answer.get("status") != "success":
            failures.append(f"{label}: {expr} does not evaluate: {answer.get('error')}")

    def rule_health():
        _, text = http("GET", f"{prom}/api/v1/rules")
        found = [r for g in json.loads(text)["data"]["groups"] for r in g["rules"]]
        return found if len(found) == len(rules) and all(r.get("health") == "ok" for r in found) else None
    wait("every rule evaluated with health ok", rule_health)

    def pending(alert):
        def check():
            _, text = http("GET", f"{prom}/api/v1/alerts")
            return any(a["labels"].get("alertname") == alert and a["state"] in ("pending", "firing")
                       for a in json.loads(text)["data"]["alerts"])
        return check

    driven = []
    # 1. A record without our mark on the managed name: a conflict.
    _, zones = http("GET", f"{cf}/client/v4/zones?name=example.com", headers={"Authorization": f"Bearer {TOKEN}"})
    zone_id = json.loads(zones)["result"][0]["id"]
    http("POST", f"{cf}/client/v4/zones/{zone_id}/dns_records",
         {"type": "A", "name": NAME, "content": "192.0.2.50", "ttl": 300, "comment": "added by hand"},
         {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    if wait("KubeNodeDNSConflict to pend", pending("KubeNodeDNSConflict")):
        driven.append("KubeNodeDNSConflict")
    # 2. Every node NotReady at once: the name is held.
    for index in (1, 2, 3):
        http("PATCH", f"{kube}/api/v1/nodes/node-{index}/status",
             {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}},
             {"Content-Type": "application/merge-patch+json"})
    if wait("KubeNodeDNSNameHeld to pend", pending("KubeNodeDNSNameHeld")):
        driven.append("KubeNodeDNSNameHeld")
    # 3. The token is revoked: Cloudflare answers 403 9109, and /readyz turns 503 with it.
    http("POST", f"{cf}/_emulator/revoke?token={TOKEN}")
    for alert in ("KubeNodeDNSProviderRefused", "KubeNodeDNSReconcileFailing"):
        if wait(f"{alert} to pend", pending(alert)):
            driven.append(alert)
    if http("GET", f"{ops}/readyz")[0] != 503:
        failures.append("/readyz did not turn 503 after the token was revoked")

    print(f"promtool check metrics: {len(counters)} counters, {'no findings' if not lint_findings else lint_findings}")
    print(f"metric names checked against Prometheus: {len(names)} ({', '.join(names)})")
    print(f"expressions evaluated: {len(expressions)} ({len(rules)} rules, {len(expressions) - len(rules)} panel queries)")
    print(f"alerts driven to pending through the real controller: {len(driven)} ({', '.join(driven)})")
finally:
    stop()
for failure in failures:
    print("FAILED: " + failure)
print("monitoring against a real Prometheus: " + (f"{len(failures)} problem(s)" if failures else "no problem"))
sys.exit(1 if failures else 0)
