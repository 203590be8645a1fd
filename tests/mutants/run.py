#!/usr/bin/env python3
"""make check-mutants: put each mutant of tests/mutants/mutants.txt (a small,
realistic bug) into a scratch copy of the tree, rebuild, run the tests named
for it, and report whether they noticed (killed) or not (survived).

The scratch copy is made once with `make distdir` from the build directory and
configured with the same arguments, so what is tested is the current tree,
uncommitted changes included, and a file missing from the distribution shows
up here too. See docs/testing.md for the list format and how to add a mutant.

Exit status: 0 if the score (killed out of all mutants that are not marked
equivalent; a mutant that does not build counts against it) is at least
--min-score, 1 if it is lower, 2 if the list or the setup is broken.
"""

import argparse
import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
KEYS = ("mutant", "file", "bug", "tests", "equivalent")


class ListError(Exception):
    pass


class Mutant:
    def __init__(self, line):
        self.line = line
        self.id = None
        self.file = None
        self.bug = None
        self.tests = []
        self.equivalent = None
        self.find = None
        self.replace = None
        # Results.
        self.result = None       # killed, survived, invalid, equivalent
        self.by = None           # the test that killed it
        self.how = ""            # failed, crashed, timed out
        self.seconds = 0.0
        self.detail = ""


def parse_list(path):
    """Parse the mutant list; raise ListError naming every bad entry."""
    mutants, errors = [], []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i, cur = 0, None
    while i < len(lines):
        raw = lines[i]
        n = i + 1
        i += 1
        if cur is None:
            if raw.strip() == "" or raw.lstrip().startswith("#"):
                continue
            if not raw.startswith("mutant "):
                errors.append("%s:%d: expected 'mutant ID', got %r" % (path, n, raw))
                continue
            cur = Mutant(n)
            cur.id = raw[len("mutant "):].strip()
            continue
        if raw in ("find", "replace"):
            # A verbatim block, up to the next "replace" (after find) or "end".
            stop = "replace" if raw == "find" else "end"
            block = []
            while i < len(lines) and lines[i] != stop:
                block.append(lines[i])
                i += 1
            if i == len(lines):
                errors.append("%s:%d: %s block without '%s'" % (path, n, raw, stop))
                break
            if raw == "find":
                cur.find = "\n".join(block)
                # The "replace" line starts the next block: step back onto it.
            else:
                cur.replace = "\n".join(block)
                i += 1          # past "end"
                mutants.append(cur)
                cur = None
            continue
        key, _, value = raw.partition(" ")
        value = value.strip()
        if key not in KEYS[1:] or not value:
            errors.append("%s:%d: %s: expected one of file, bug, tests, "
                          "equivalent, find, got %r" % (path, n, cur.id, raw))
            continue
        if key == "tests":
            cur.tests = value.split()
        else:
            setattr(cur, key, value)
    if cur is not None:
        errors.append("%s:%d: mutant %s is not finished (find/replace/end)"
                      % (path, cur.line, cur.id))

    seen = {}
    for m in mutants:
        where = "%s:%d: %s" % (path, m.line, m.id)
        if not ID_RE.match(m.id or ""):
            errors.append("%s: bad id (lower-case letters, digits, '-')" % where)
        if m.id in seen:
            errors.append("%s: id already used at line %d" % (where, seen[m.id]))
        seen[m.id] = m.line
        for k in ("file", "bug", "find"):
            if not getattr(m, k):
                errors.append("%s: no %s" % (where, k))
        if not m.tests and m.equivalent is None:
            errors.append("%s: no tests (or 'equivalent REASON')" % where)
        for t in m.tests:
            if not (t.startswith("tests/unit/") or t.startswith("tests/fuzz/") or
                    (t.startswith("tests/integration/") and t.endswith(".py"))):
                errors.append("%s: test %s is not tests/unit/..., tests/fuzz/... "
                              "or tests/integration/....py" % (where, t))
        if m.find is not None and m.find == m.replace:
            errors.append("%s: the replacement is the same text" % where)
    if errors:
        raise ListError("\n".join(errors))
    return mutants


def check_snippets(mutants, srcdir):
    """Every snippet must occur exactly once in its file: the list stays true."""
    errors = []
    for m in mutants:
        path = os.path.join(srcdir, m.file)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            errors.append("%s (line %d): %s: %s" % (m.id, m.line, m.file, e.strerror))
            continue
        n = text.count(m.find)
        if n != 1:
            errors.append("%s (line %d): the find text occurs %d times in %s, "
                          "not once: update the entry to the code as it is now"
                          % (m.id, m.line, n, m.file))
        for t in m.tests:
            src = t if t.endswith(".py") else t + ".c"
            if not os.path.exists(os.path.join(srcdir, src)):
                errors.append("%s (line %d): no test %s (%s)" % (m.id, m.line, t, src))
    if errors:
        raise ListError("\n".join(errors))


def select(mutants, patterns):
    """Mutants whose id, or file, matches one of the patterns (globs)."""
    if not patterns:
        return mutants
    out = []
    for m in mutants:
        for p in patterns:
            if fnmatch.fnmatch(m.id, p) or fnmatch.fnmatch(m.file, p) or \
                    fnmatch.fnmatch(os.path.basename(m.file), p):
                out.append(m)
                break
    return out


def run(cmd, cwd, timeout=None, env=None, stop_at_failure=False):
    """Run cmd in its own session; kill the whole session at the end, on timeout,
    or (stop_at_failure) at the first TAP "not ok" line: one failure is enough.
    Returns (status, output, seconds, timed_out)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    failed = threading.Event()

    def reader():
        for raw in p.stdout:
            lines.append(raw)
            if stop_at_failure and raw.startswith(b"not ok"):
                failed.set()
        failed.set()    # end of output

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    timed_out = not failed.wait(timeout)
    # Daemons a test started and left behind belong to the same session.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()
    th.join(5)
    out = b"".join(lines).decode("utf-8", "replace")
    if stop_at_failure and "\nnot ok" in "\n" + out and p.returncode == -signal.SIGKILL:
        return 1, out, time.monotonic() - t0, False
    return p.returncode, out, time.monotonic() - t0, timed_out


class Scratch:
    """One configured, built copy of the tree that mutants are applied to."""

    def __init__(self, root, name, builddir, config_args, log):
        self.dir = os.path.join(root, name)
        self.builddir = builddir
        self.config_args = config_args
        self.log = log
        self.python = sys.executable
        try:
            with open(os.path.join(builddir, "Makefile")) as f:
                m = re.search(r"^PYTHON3 = (\S+)$", f.read(), re.M)
            if m:
                self.python = m.group(1)     # the one configure found, as make check
        except OSError:
            pass
        self.env = dict(os.environ)
        self.env.update(WX_SRCDIR=self.dir, WX_BUILDDIR=self.dir,
                        PYTHONPATH=os.path.join(self.dir, "tests", "integration"),
                        PYTHONDONTWRITEBYTECODE="1")
        # Make's own variables must not leak from `make check-mutants` into ours.
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
            self.env.pop(k, None)

    def setup(self, targets, jobs):
        rc, out, _, _ = run(["make", "-C", self.builddir, "distdir",
                             "distdir=" + self.dir], self.builddir, env=self.env)
        if rc != 0:
            raise RuntimeError("make distdir failed:\n" + out[-3000:])
        rc, out, _, _ = run(["sh", "-c", "./configure -q " + self.config_args],
                            self.dir, env=self.env)
        if rc != 0:
            raise RuntimeError("configure in %s failed:\n%s" % (self.dir, out[-3000:]))
        ok, out = self.build(targets, jobs)
        if not ok:
            raise RuntimeError("the unmutated tree does not build in %s:\n%s"
                               % (self.dir, out[-3000:]))

    def build(self, targets, jobs=1):
        rc, out, _, _ = run(["make", "-s", "-j%d" % jobs] + targets, self.dir,
                            env=self.env)
        return rc == 0, out

    def test(self, t, timeout):
        """Run one test; (passed, how, seconds, output)."""
        path = os.path.join(self.dir, t)
        cmd = [self.python, path] if t.endswith(".py") else [path]
        rc, out, secs, timed_out = run(cmd, self.dir, timeout, self.env,
                                       stop_at_failure=True)
        if timed_out:
            return False, "timed out after %.0f s" % timeout, secs, out
        if rc < 0:
            return False, "crashed (%s)" % signal.Signals(-rc).name, secs, out
        notok = [l for l in out.splitlines() if l.startswith("not ok")]
        plan = re.search(r"^1\.\.(\d+)", out, re.M)
        if rc != 0 or notok:
            what = notok[0] if notok else "exit status %d" % rc
            return False, "failed: " + what[:120], secs, out
        if plan is None:
            return False, "no TAP plan", secs, out
        return True, "passed", secs, out

    def apply(self, m):
        path = os.path.join(self.dir, m.file)
        with open(path, encoding="utf-8") as f:
            orig = f.read()
        if orig.count(m.find) != 1:
            raise RuntimeError("%s: find text not once in the scratch copy" % m.id)
        self._write(path, orig.replace(m.find, m.replace))
        return orig

    def restore(self, m, orig):
        self._write(os.path.join(self.dir, m.file), orig)

    @staticmethod
    def _write(path, text):
        before = os.stat(path).st_mtime_ns
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        # Make must see the change even on a coarse clock.
        now = max(time.time_ns(), before + 1000000)
        os.utime(path, ns=(now, now))


def targets_for(tests):
    """What to build for these tests: their programs, and all-am for integration.

    Not "all": automake's all runs a second make (for config.h), which would
    build the library beside this one's test programs, the same objects at
    once (libtool's .loT renames collide)."""
    out = []
    for t in tests:
        if t.endswith(".py"):
            if "all-am" not in out:
                out.append("all-am")
        elif t not in out:
            out.append(t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("select", nargs="*",
                    help="run only mutants whose id or file matches (globs)")
    ap.add_argument("--list", default=os.path.join(HERE, "mutants.txt"))
    ap.add_argument("--srcdir", default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument("--builddir", default=None,
                    help="a configured build directory (default: srcdir)")
    ap.add_argument("-j", "--jobs", type=int, default=1,
                    help="mutants at once, each in its own scratch copy")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per test run (default: 4 x its unmutated time + 20)")
    ap.add_argument("--min-score", type=float, default=95.0)
    ap.add_argument("--scratch", default=None, help="where to put the scratch copies")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copies")
    ap.add_argument("--plain", action="store_true",
                    help="configure the scratch copies without the build "
                    "directory's arguments (say, no sanitizers)")
    ap.add_argument("--check", action="store_true",
                    help="only check the list against the sources")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the output of the tests that let a mutant survive")
    a = ap.parse_args()
    builddir = os.path.abspath(a.builddir or a.srcdir)
    t_start = time.monotonic()

    try:
        allm = parse_list(a.list)
        mutants = select(allm, a.select)
        check_snippets(allm, a.srcdir)
    except ListError as e:
        print("check-mutants: the mutant list is out of date or malformed:\n" + str(e))
        return 2
    if not mutants:
        print("check-mutants: no mutant matches %s" % " ".join(a.select))
        return 2
    print("check-mutants: %d mutants in %s, %d selected, %d equivalent"
          % (len(allm), os.path.relpath(a.list), len(mutants),
             sum(m.equivalent is not None for m in mutants)))
    if a.check:
        return 0

    live = [m for m in mutants if m.equivalent is None]
    for m in mutants:
        if m.equivalent is not None:
            m.result = "equivalent"
    tests = []
    for m in live:
        for t in m.tests:
            if t not in tests:
                tests.append(t)
    targets = targets_for(tests)

    rc, out, _, _ = run([os.path.join(builddir, "config.status"), "--config"], builddir)
    if rc != 0:
        print("check-mutants: %s is not a configured build directory" % builddir)
        return 2
    config_args = "" if a.plain else out.strip()
    root = a.scratch or tempfile.mkdtemp(prefix="wxpushd-mutants.")
    os.makedirs(root, exist_ok=True)
    try:
        return run_mutants(a, root, mutants, live, tests, targets, builddir,
                           config_args, t_start)
    finally:
        if a.keep or a.scratch:
            print("check-mutants: scratch copies kept in %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def run_mutants(a, root, mutants, live, tests, targets, builddir, config_args,
                t_start):
    """Build the scratch copies, run the baseline, then every live mutant."""
    # Integration tests run clients as other users (nobody): they must reach it.
    os.chmod(root, 0o755)
    jobs = max(1, min(a.jobs, len(live)))
    scratches = [Scratch(root, "w%d" % k, builddir, config_args, None) for k in range(jobs)]
    errors = []

    def setup(s):
        try:
            s.setup(targets, 2 if jobs == 1 else 1)
        except RuntimeError as e:
            errors.append(str(e))

    print("check-mutants: building %d scratch cop%s under %s"
          % (jobs, "y" if jobs == 1 else "ies", root))
    ths = [threading.Thread(target=setup, args=(s,)) for s in scratches]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        print("check-mutants: setup failed:\n" + "\n".join(errors))
        return 2
    t_setup = time.monotonic() - t_start

    # The unmutated tree must pass every test the mutants use (and how long
    # each takes sets its time limit). Shared out among the scratch copies.
    base, broken = {}, []
    pending = list(tests)
    lock = threading.Lock()
    t0 = time.monotonic()

    def baseline(s):
        while True:
            with lock:
                if not pending:
                    return
                t = pending.pop(0)
            passed, how, secs, out = s.test(t, 600)
            with lock:
                base[t] = secs
                print("  baseline %-45s %s (%.1f s)" % (t, how, secs))
                if not passed:
                    broken.append((t, out))
                sys.stdout.flush()

    ths = [threading.Thread(target=baseline, args=(s,)) for s in scratches]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    for t, out in broken:
        print(out[-4000:])
        print("check-mutants: %s fails without any mutant: fix it first" % t)
    if broken:
        return 2
    t_base = time.monotonic() - t0

    # Longest first (by the unmutated time of their tests), so that with -j2
    # the slow integration mutants do not all come last on one copy.
    queue = sorted(live, key=lambda m: -sum(base[t] for t in m.tests))
    done = []

    def worker(s):
        while True:
            with lock:
                if not queue:
                    return
                m = queue.pop(0)
            t0 = time.monotonic()
            try:
                orig = s.apply(m)
            except (OSError, RuntimeError) as e:
                # Not in the distribution, or changed under us: a broken entry.
                m.result, m.detail, orig = "invalid", str(e), None
            try:
                if orig is not None:
                    built, out = s.build(targets_for(m.tests),
                                         2 if jobs == 1 else 1)
                    if not built:
                        m.result = "invalid"
                        m.detail = out[-2000:]
                    else:
                        m.result = "survived"
                        for t in m.tests:
                            limit = a.timeout or 4 * base[t] + 20
                            passed, how, secs, tout = s.test(t, limit)
                            if not passed:
                                m.result, m.by, m.how = "killed", t, how
                                break
                            m.detail += tout
            finally:
                if orig is not None:
                    s.restore(m, orig)
            m.seconds = time.monotonic() - t0
            with lock:
                done.append(m)
                print(line(m, len(done), len(live)))
                if m.result == "invalid":
                    print("    why:\n" + indent(m.detail))
                elif m.result == "survived" and a.verbose:
                    print(indent(m.detail[-3000:]))
                sys.stdout.flush()

    t0 = time.monotonic()
    ths = [threading.Thread(target=worker, args=(s,)) for s in scratches]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    t_mut = time.monotonic() - t0

    for m in mutants:
        if m.equivalent is not None:
            print("  %-28s equivalent: %s" % (m.id, m.equivalent))
    killed = sum(m.result == "killed" for m in live)
    survived = [m for m in live if m.result == "survived"]
    invalid = [m for m in live if m.result == "invalid"]
    score = 100.0 * killed / len(live) if live else 100.0
    for m in survived:
        print("SURVIVED %s (%s:%d): %s -- no test among %s noticed"
              % (m.id, os.path.relpath(a.list), m.line, m.bug, " ".join(m.tests)))
    for m in invalid:
        print("INVALID %s (%s:%d): does not build; a mutant must compile"
              % (m.id, os.path.relpath(a.list), m.line))
    total = time.monotonic() - t_start
    print("check-mutants: setup %.0f s, baseline %.0f s, mutants %.0f s (-j%d), "
          "total %.0f s" % (t_setup, t_base, t_mut, jobs, total))
    print("check-mutants: %d killed, %d survived, %d invalid, %d equivalent; "
          "score %.1f%% (minimum %.0f%%)"
          % (killed, len(survived), len(invalid), len(mutants) - len(live), score,
             a.min_score))
    return 0 if score >= a.min_score else 1


def line(m, n, total):
    if m.result == "killed":
        what = "killed   by %s: %s" % (m.by, m.how)
    else:
        what = m.result.upper()
    return "[%2d/%d] %-28s %-60s %5.1f s" % (n, total, m.id, what, m.seconds)


def indent(text):
    return "\n".join("    " + l for l in text.rstrip().splitlines())


if __name__ == "__main__":
    sys.exit(main())
