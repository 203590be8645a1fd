"""The manual pages: each renders without a warning (groff -ww, and mandoc
-Tlint when installed), has every configured path filled in, and documents
what the programs actually have: every wxpush command, every wxpush-mock and
wxpushd option, every key of docs/configuration.md."""

import glob
import os
import re
import shutil
import subprocess

from wxtest import BUILDDIR, MOCK, SRCDIR, WXPUSH, Tap

t = Tap(timeout=60)
mandir = os.path.join(SRCDIR, "man")
pages = {}
for src in sorted(glob.glob(os.path.join(mandir, "*"))):
    name = os.path.basename(src)
    if name.endswith(".in"):
        pages[name[:-3]] = os.path.join(BUILDDIR, "man", name[:-3])
    elif re.search(r"\.[1-8]$", name):
        pages[name] = src
for want in ("wxpushd.8", "wxpushd.conf.5", "wxpush.1", "wxpush-mock.1"):
    t.ok(want in pages and os.path.exists(pages[want]), "%s is there" % want)
if os.path.exists(os.path.join(BUILDDIR, "src", "bench", "wxpush-bench")):
    t.ok("wxpush-bench.1" in pages, "wxpush-bench.1 is there, as wxpush-bench is")

text = {}
for name, path in pages.items():
    if os.path.exists(path):
        text[name] = open(path).read()
        t.ok(not re.search(r"@[A-Za-z_]+@", text[name]), "%s: every path is filled in" % name)
        t.ok(text[name].count("\n.Sh NAME\n") == 1 and "\n.Dt " in text[name],
             "%s is an mdoc page" % name)

groff = shutil.which("groff")
if groff is None:
    t.ok(True, "# SKIP groff is not installed")
else:
    for name, path in sorted(pages.items()):
        r = subprocess.run([groff, "-ww", "-z", "-mandoc", path], capture_output=True,
                           text=True, timeout=30)
        t.ok(r.returncode == 0 and r.stderr == "", "groff -ww renders %s cleanly" % name,
             r.stderr)
mandoc = shutil.which("mandoc")
if mandoc is None:
    t.ok(True, "# SKIP mandoc is not installed")
else:
    for name, path in sorted(pages.items()):
        r = subprocess.run([mandoc, "-Tlint", "-Wwarning", path], capture_output=True,
                           text=True, timeout=30)
        t.ok(r.returncode == 0 and r.stdout + r.stderr == "", "mandoc -Tlint passes %s" % name,
             r.stdout + r.stderr)

# The pages say what the programs do.
usage = subprocess.run([WXPUSH, "--help"], capture_output=True, text=True).stdout
commands = re.findall(r"^  ([a-z][a-z-]+)", usage, re.M)
t.ok(len(commands) >= 6, "wxpush --help lists its commands", usage)
for c in sorted(set(commands)):
    t.ok(re.search(r"^\.(It|Cm) .*\b%s\b|^\.Cm %s$" % (c, c), text.get("wxpush.1", ""), re.M),
         "wxpush.1 documents %s" % c)
for opt in sorted(set(re.findall(r"--([a-z][a-z-]+)", usage))):
    t.ok("Fl Fl %s" % opt in text.get("wxpush.1", ""), "wxpush.1 documents --%s" % opt)

mock_usage = subprocess.run([MOCK, "-h"], capture_output=True, text=True).stdout
for opt in sorted(set(re.findall(r"--([a-z][a-z-]+)", mock_usage))):
    t.ok("Fl Fl %s" % opt in text.get("wxpush-mock.1", ""), "wxpush-mock.1 documents --%s" % opt)
for flag in re.findall(r"\[-([a-zA-Z]+)\]", mock_usage)[0]:
    t.ok(".It Fl %s" % flag in text.get("wxpush-mock.1", ""), "wxpush-mock.1 documents -%s" % flag)

bench = os.path.join(BUILDDIR, "src", "bench", "wxpush-bench")
if os.path.exists(bench):
    bench_usage = subprocess.run([bench, "--help"], capture_output=True, text=True).stdout
    for opt in sorted(set(re.findall(r"--([a-z][a-z-]+)", bench_usage))):
        t.ok("Fl Fl %s" % opt in text.get("wxpush-bench.1", ""),
             "wxpush-bench.1 documents --%s" % opt)

for flag in "dfnV":
    t.ok(".It Fl %s" % flag in text.get("wxpushd.8", ""), "wxpushd.8 documents -%s" % flag)

conf_md = open(os.path.join(SRCDIR, "docs", "configuration.md")).read()
keys = re.findall(r"^\| `([a-z_]+)` \|", conf_md, re.M)
t.ok(len(keys) >= 20, "docs/configuration.md lists its keys")
for k in sorted(set(keys)):
    t.ok(re.search(r"^\.It (Ic [a-z_]+ .*)?Ic %s\b" % k, text.get("wxpushd.conf.5", ""), re.M),
         "wxpushd.conf.5 documents %s" % k)
t.done()
