"""etc/grafana/wxpushd-dashboard.json: valid JSON with the shape Grafana
imports (panels with unique ids on the 24-column grid, not overlapping, each
querying the dashboard's data source variable), panels for what an operator
looks at (sends by outcome, latency quantiles from the histogram, token
lifetimes, token calls against the daily quota, the queue), every query
accepted by Prometheus's own parser (promtool, with Grafana's variables
filled in; SKIP without promtool), and every metric it queries present in a
running daemon's /metrics."""

import json
import os
import shutil
import subprocess

import yaml

from wxtest import SRCDIR, Tap, tmpdir
from wxmetrics import expr_metrics, live_series_names

DASH = os.path.join(SRCDIR, "etc", "grafana", "wxpushd-dashboard.json")

t = Tap(timeout=180)

try:
    with open(DASH) as f:
        dash = json.load(f)
    t.ok(True, "the dashboard is valid JSON")
except ValueError as e:
    t.ok(False, "the dashboard is valid JSON", e)
    t.done()

t.ok(dash.get("title") and dash.get("uid") and isinstance(dash.get("schemaVersion"), int),
     "it has a title, a uid and a schemaVersion")
variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
t.ok(variables.get("datasource", {}).get("type") == "datasource" and
     variables["datasource"].get("query") == "prometheus",
     "a data source variable of type prometheus", variables.get("datasource"))

panels = []
for p in dash.get("panels", []):
    panels.append(p)
    panels.extend(p.get("panels", []))
ids = [p.get("id") for p in panels]
t.ok(len(ids) == len(set(ids)) and None not in ids, "panel ids are unique", ids)
cells = {}
overlap = []
for p in panels:
    g = p["gridPos"]
    if not (0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0):
        overlap.append(("off the grid", p["title"]))
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells:
                overlap.append((cells[(x, y)], p["title"]))
            cells[(x, y)] = p["title"]
t.eq(overlap[:3], [], "panels lie on the 24-column grid without overlapping")

graphs = [p for p in panels if p["type"] != "row"]
exprs = []
bad = []
for p in graphs:
    if p.get("datasource", {}).get("uid") != "${datasource}" or not p.get("targets"):
        bad.append(p["title"])
    for tg in p.get("targets", []):
        if tg.get("datasource", {}).get("uid") != "${datasource}" or not tg.get("expr"):
            bad.append(p["title"])
        exprs.append((p["title"], tg.get("expr", "")))
t.eq(bad, [], "every panel queries the data source variable")
t.ok(all(p.get("title") and p.get("description") for p in graphs),
     "every panel has a title and a description")


def panel_exprs(word):
    return " ".join(e for title, e in exprs if word in title.lower())


t.ok("by (outcome)" in panel_exprs("by outcome") and
     "wxpushd_sends_total" in panel_exprs("by outcome"), "a panel of sends by outcome")
lat = panel_exprs("latency")
t.ok(all("histogram_quantile(%s," % q in lat for q in ("0.5", "0.9", "0.99")) and
     "wxpushd_send_duration_seconds_bucket" in lat,
     "latency quantiles from the histogram's buckets")
t.ok("wxpushd_token_expires_in_seconds" in panel_exprs("lifetime"), "token lifetimes")
quota = [p for p in graphs if "quota" in p["title"].lower()]
t.ok(len(quota) == 1 and "wxpushd_token_calls_today" in quota[0]["targets"][0]["expr"] and
     quota[0]["fieldConfig"]["defaults"].get("max") == 2000,
     "token calls today against the quota of 2000")
t.ok("wxpushd_queue_depth" in panel_exprs("queue") and
     "wxpushd_queue_oldest_seconds" in panel_exprs("queue"), "queue depth and queue wait")

# Prometheus's parser: each query as a recording rule, Grafana's variables filled.
queries = [e for _, e in exprs]
for v in variables.values():
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    if isinstance(q, str) and q.startswith("label_values("):
        # label_values(SELECTOR, label): the selector is PromQL.
        queries.append(q[len("label_values("):].rsplit(",", 1)[0])
fill = {"$__rate_interval": "1m", "$instance": ".*", "$appid": ".*"}
promtool = shutil.which("promtool")
if promtool is None:
    t.n += 1
    print("ok %d # SKIP every query parses: promtool is not installed "
          "(Debian package prometheus)" % t.n)
else:
    rules = []
    for i, q in enumerate(queries):
        for k, v in fill.items():
            q = q.replace(k, v)
        rules.append({"record": "dashboard:query_%d" % i, "expr": q})
    path = os.path.join(tmpdir(), "dashboard-queries.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    t.ok(r.returncode == 0, "every one of the %d queries parses (promtool)" % len(queries),
         r.stdout + r.stderr)

# Every metric queried is one the daemon exposes.
names = live_series_names(t)
used = set()
for q in queries:
    used |= expr_metrics(q)
t.ok(len(used) >= 12, "the dashboard queries %d wxpushd metrics" % len(used), sorted(used))
for m in sorted(used):
    t.ok(m in names, "%s is in a running daemon's /metrics" % m, sorted(names))
t.done()
