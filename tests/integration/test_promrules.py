"""etc/prometheus/wxpushd-rules.yml: promtool check rules, promtool test rules
on its synthetic series (wxpushd-rules.test.yml), every alert with a
severity, a summary, a description and a runbook_url whose section exists in
docs/operations.md, and every metric it uses present in a running daemon's
/metrics. The promtool steps are skipped (TAP SKIP) when promtool (Debian's
prometheus package) is absent."""

import os
import re
import shutil
import subprocess

import yaml

from wxtest import SRCDIR, Tap
from wxmetrics import expr_metrics, live_series_names

RULES = os.path.join(SRCDIR, "etc", "prometheus", "wxpushd-rules.yml")
TESTS = os.path.join(SRCDIR, "etc", "prometheus", "wxpushd-rules.test.yml")
OPS = os.path.join(SRCDIR, "docs", "operations.md")

t = Tap(timeout=180)

promtool = shutil.which("promtool")
if promtool is None:
    for what in ("promtool check rules", "promtool test rules"):
        t.n += 1
        print("ok %d # SKIP %s: promtool is not installed (Debian package prometheus)"
              % (t.n, what))
else:
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    t.ok(r.returncode == 0, "promtool check rules", r.stdout + r.stderr)
    r = subprocess.run([promtool, "test", "rules", os.path.basename(TESTS)],
                       cwd=os.path.dirname(TESTS), capture_output=True, text=True)
    t.ok(r.returncode == 0 and "SUCCESS" in r.stdout, "promtool test rules",
         r.stdout + r.stderr)

with open(RULES) as f:
    doc = yaml.safe_load(f)
rules = [r for g in doc["groups"] for r in g["rules"]]
alerts = [r for r in rules if "alert" in r]
t.ok(len(alerts) >= 10 and len(alerts) == len(rules), "%d alerting rules" % len(alerts))

# GitHub's heading anchors: lower case, punctuation dropped, spaces as '-'.
with open(OPS) as f:
    anchors = {re.sub(r"[^a-z0-9 _-]", "", m.lower()).replace(" ", "-")
               for m in re.findall(r"^#+ (.+)$", f.read(), re.M)}
with open(TESTS) as f:
    tested = {c["alertname"] for tc in yaml.safe_load(f)["tests"]
              for c in tc.get("alert_rule_test", []) if c.get("exp_alerts")}
for a in alerts:
    name = a["alert"]
    ann = a.get("annotations", {})
    t.ok(a.get("labels", {}).get("severity") in ("warning", "critical") and
         ann.get("summary") and ann.get("description"),
         "%s has a severity, a summary and a description" % name, a)
    url = ann.get("runbook_url", "")
    t.ok(url.startswith("docs/operations.md#") and url.split("#", 1)[1] in anchors,
         "%s: its runbook %s is a section of docs/operations.md" % (name, url))
    t.ok(name in tested, "%s fires in a promtool unit test" % name)

# Every metric the rules use is one the daemon exposes.
names = live_series_names(t)
used = set()
for r in rules:
    used |= expr_metrics(r["expr"])
t.ok(len(used) >= 8, "the rules use %d wxpushd metrics" % len(used), sorted(used))
for m in sorted(used):
    t.ok(m in names, "%s is in a running daemon's /metrics" % m, sorted(names))
t.done()
