#!/usr/bin/env bash
# Proves deploy/monitoring/: the rules file and the PrometheusRule carry the same groups; `promtool check rules` on
# both; `promtool test rules` (a case that fires each alert and one that must not); the component renders with
# kustomize, its ConfigMap validates against the Kubernetes schemas and its PodMonitor and PrometheusRule against
# the operator's CRD schemas (conformance/prometheus-operator/); then a real Prometheus scrapes a real controller
# between the emulators (scripts/monitoring_check.py).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
monitoring=$here/deploy/monitoring
work=$(mktemp -d)

"$python" - "$monitoring" "$work/operator-rules.yaml" <<'PY'
import sys, yaml
plain = yaml.safe_load(open(f"{sys.argv[1]}/rules.yaml"))
operator = yaml.safe_load(open(f"{sys.argv[1]}/prometheusrule.yaml"))
if plain["groups"] != operator["spec"]["groups"]:
    sys.exit("rules.yaml and prometheusrule.yaml differ: keep their groups equal")
yaml.safe_dump({"groups": operator["spec"]["groups"]}, open(sys.argv[2], "w"))
PY
promtool check rules "$monitoring/rules.yaml" "$work/operator-rules.yaml" | grep -c SUCCESS \
  | sed 's/^/promtool check rules: rules.yaml and the PrometheusRule, both valid (/; s/$/ files)/'
alerts=$(grep -c '^      - alert:' "$monitoring/rules.yaml")
cases=$("$python" -c "import yaml,sys; print(sum(len(t['alert_rule_test']) for t in yaml.safe_load(open(sys.argv[1]))['tests']))" "$monitoring/rules-test.yaml")
(cd "$monitoring" && promtool test rules rules-test.yaml) > "$work/rule-tests.log" 2>&1 || { cat "$work/rule-tests.log"; exit 1; }
echo "promtool test rules: $alerts alerts, $cases alert tests passed"

# The component turned on as the README says.
cp -r "$here/deploy" "$work/deploy"
sed -i 's|^# components:|components:|; s|^#   - monitoring|  - monitoring|' "$work/deploy/kustomization.yaml"
kubectl kustomize "$work/deploy" > "$work/rendered.yaml"
"$python" - "$work/rendered.yaml" "$here/conformance/prometheus-operator" "$work/core.yaml" <<'PY'
import json, sys, yaml, jsonschema
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
crds = {}
for name in ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"):
    crd = yaml.safe_load(open(f"{sys.argv[2]}/{name}"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    crds[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
checked, problems = [], []
for o in objs:
    if o["kind"] in crds:
        errors = sorted(jsonschema.Draft7Validator(crds[o["kind"]]).iter_errors(o), key=str)
        problems += [f"{o['kind']}/{o['metadata']['name']}: {e.message} at {list(e.absolute_path)}" for e in errors]
        checked.append(o["kind"])
dashboards = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
if len(dashboards) != 1:
    problems.append(f"want one ConfigMap labelled grafana_dashboard=1, got {len(dashboards)}")
else:
    json.loads(next(iter(dashboards[0]["data"].values())))
if sorted(checked) != ["PodMonitor", "PrometheusRule"]:
    problems.append(f"the component should render a PodMonitor and a PrometheusRule, got {checked}")
yaml.safe_dump_all([o for o in objs if o["kind"] not in crds], open(sys.argv[3], "w"))
for p in problems:
    print("  FAILED: " + p)
print(f"monitoring component: PodMonitor and PrometheusRule against the operator's CRD schemas, the dashboard ConfigMap: {3 - min(3, len(problems))} passed, {len(problems)} failed")
sys.exit(1 if problems else 0)
PY
"$here/.venv/bin/kubernetes-validate" --strict -k 1.37.0 "$work/core.yaml" > "$work/validate.log" 2>&1 \
  || { cat "$work/validate.log"; exit 1; }
echo "kubernetes-validate (1.37, strict) with the component on: $(grep -c ' passed ' "$work/validate.log") passed"

"$python" "$here/scripts/monitoring_check.py" "$(swift build --show-bin-path)" "$monitoring" "$work"
