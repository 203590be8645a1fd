"""What the monitoring tests share: the names of every series a running
wxpushd exposes at /metrics (an official account after a send, and a
third-party platform with its verify ticket, so that every family has
samples), parsed with prometheus_client; and the metric names a PromQL
expression uses."""

import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from wxtest import COMPONENT, COMPONENT_KEY, COMPONENT_SECRET, COMPONENT_TOKEN, \
    COMPONENTS, Daemon, Mock, free_port, message, wait_for

# wxpushd's metric names (docs/protocol.md#prometheus) all start so.
METRIC_RE = re.compile(r"\bwxpushd_[a-zA-Z0-9_]+")


def live_series_names(t):
    """Start wxpush-mock and wxpushd, send once, scrape; the set of sample names."""
    mock = Mock(components=COMPONENTS)
    port = free_port()
    d = Daemon(mock=mock, components={COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN,
                                                  COMPONENT_KEY)},
               callback=True, start=False, extra='metrics_listen = "127.0.0.1:%d"' % port)
    mock.config(event_url=d.callback_url)
    d.start()
    err, _ = d.call("send", message())
    t.ok(err is None, "a send through the daemon to scrape", err)
    t.ok(wait_for(lambda: any(c["appid"] == COMPONENT and c["state"] == "valid"
                              for c in d.status()["credentials"]), 15),
         "the platform got its verify ticket and token")
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    d.stop()
    mock.stop()
    names = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            names.add(s.name)
    return names


def expr_metrics(expr):
    """The wxpushd metric names in a PromQL expression."""
    return set(METRIC_RE.findall(expr))
