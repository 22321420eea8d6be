#!/usr/bin/env bash
# Checks the monitoring files under deploy/:
#   - deploy/prometheus/alerts.yaml parses (promtool check rules) and passes its unit tests
#     (promtool test rules deploy/prometheus/alerts_test.yaml);
#   - deploy/prometheus/prometheus.yaml is a valid configuration (promtool check config);
#   - deploy/grafana/nearnd-dashboard.json is valid JSON, and every panel query is valid PromQL
#     once the dashboard's variables are replaced with sample values.
#
# Usage: tests/deploy_check.sh [REPOSITORY_ROOT]   (default: the folder above this script)
# Exits 0 when every check passes, 1 when one fails, and 77, which CTest reports as skipped,
# when promtool or python3 is missing.
set -euo pipefail

root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
alerts="${root}/deploy/prometheus/alerts.yaml"
alerts_test="${root}/deploy/prometheus/alerts_test.yaml"
config="${root}/deploy/prometheus/prometheus.yaml"
dashboard="${root}/deploy/grafana/nearnd-dashboard.json"

for tool in promtool python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "deploy_check: SKIP: $tool is not installed; scripts/setup installs it (Debian packages prometheus and python3)" >&2
    exit 77
  fi
done

failures=0

# run_check NAME COMMAND...: runs one check, shows its output only when it fails.
run_check() {
  local name="$1"
  shift
  local output
  if output="$("$@" 2>&1)"; then
    echo "deploy_check: ok: $name"
  else
    echo "deploy_check: FAILED: $name" >&2
    echo "$output" >&2
    failures=$((failures + 1))
  fi
}

# check_dashboard_queries DASHBOARD: writes every panel query as a recording rule, with the
# Grafana variables replaced, and lets promtool parse them.
check_dashboard_queries() {
  local rules
  rules="$(mktemp --suffix=.yaml)"
  # shellcheck disable=SC2064  # rules is fixed now.
  trap "rm -f '$rules'" RETURN
  # errexit is off in here because run_check calls this function in a condition, so each
  # step's status is checked by hand.
  python3 - "$1" "$rules" <<'EOF' || return 1
import json
import re
import sys

dashboard_path, rules_path = sys.argv[1], sys.argv[2]
with open(dashboard_path) as f:
    dashboard = json.load(f)

# Sample values for the dashboard's variables and Grafana's built-in interval.
variables = {
    "__rate_interval": "1m",
    "instance": ".*",
    "job": "nearnd-scorer",
}
variable_reference = re.compile(r"\$\{(\w+)\}|\$(\w+)")
rules = []
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        names = [a or b for a, b in variable_reference.findall(target["expr"])]
        unknown = sorted(set(names) - variables.keys())
        if unknown:
            sys.exit(f"panel {panel['title']!r} query {target['refId']} uses unknown variables {unknown}")
        expr = variable_reference.sub(lambda m: variables[m.group(1) or m.group(2)], target["expr"])
        rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": expr})
if not rules:
    sys.exit("the dashboard has no panel queries")

# JSON is valid YAML, so promtool reads this file as a rule file.
with open(rules_path, "w") as f:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=2)
print(f"{len(rules)} panel queries")
EOF
  promtool check rules "$rules"
}

run_check "promtool check rules ${alerts}" promtool check rules "$alerts"
run_check "promtool test rules ${alerts_test}" promtool test rules "$alerts_test"
run_check "promtool check config ${config}" promtool check config "$config"
run_check "${dashboard} is valid JSON" python3 -m json.tool "$dashboard"
run_check "${dashboard} panel queries are valid PromQL" check_dashboard_queries "$dashboard"

if ((failures > 0)); then
  echo "deploy_check: ${failures} check(s) failed" >&2
  exit 1
fi
echo "deploy_check: all checks passed"
