#!/usr/bin/python3
# tests/bench/walk_store.py N DB: times the daemon's STORE_AUTH_LEARN (a page of 500 rows in one transaction,
# synchronous FULL, WAL) and a write-back page read (STORE_AUTH_LIST, 200 rows)
# on a table of N authorizers shaped as store.c's migration 6.
import sqlite3, sys, time, os
n = int(sys.argv[1]); path = sys.argv[2]
if os.path.exists(path): os.remove(path)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE authorizers (appid TEXT PRIMARY KEY NOT NULL, component_appid TEXT NOT NULL, refresh_token TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, last_used INTEGER NOT NULL DEFAULT 0)")
db.execute("CREATE INDEX authorizers_component ON authorizers (component_appid, appid)")
db.execute("CREATE INDEX authorizers_used ON authorizers (component_appid, last_used, appid)")
db.execute("BEGIN")
db.executemany("INSERT INTO authorizers VALUES (?, 'wxcomponent0001', ?, 0, 1, 1)",
    (("wxa%07d" % i, "RT%d-%s" % (i, "x" * 40)) for i in range(n)))
db.execute("COMMIT")
learn = ("INSERT INTO authorizers (appid, component_appid, refresh_token, revoked, updated_at, last_used)"
 " VALUES (?1, ?2, ?3, 0, ?4, 0) ON CONFLICT (appid) DO UPDATE SET refresh_token = excluded.refresh_token,"
 " updated_at = excluded.updated_at WHERE authorizers.component_appid = excluded.component_appid"
 " AND authorizers.revoked = 0 AND authorizers.refresh_token <> excluded.refresh_token AND authorizers.updated_at < ?5")
pages = []
for p in range(20):
    base = p * 40000
    t = time.perf_counter()
    db.execute("BEGIN")
    for i in range(base, base + 500):
        # half new tokens, half the same
        rt = ("RTnew%d" % i) if i % 2 else ("RT%d-%s" % (i, "x" * 40))
        db.execute(learn, ("wxa%07d" % i, "wxcomponent0001", rt, 100, 50))
    db.execute("COMMIT")
    pages.append((time.perf_counter() - t) * 1000)
pages.sort()
print("learn page of 500 (250 changed): p50 %.2f ms max %.2f ms over %d pages" % (pages[len(pages)//2], pages[-1], len(pages)))
reads = []
frm = ""
for p in range(50):
    t = time.perf_counter()
    rows = db.execute("SELECT component_appid, appid, refresh_token, revoked, updated_at, last_used FROM authorizers"
        " WHERE component_appid = ?1 AND appid > ?2 ORDER BY appid LIMIT ?3", ("wxcomponent0001", frm, 200)).fetchall()
    frm = rows[-1][1]
    reads.append((time.perf_counter() - t) * 1000)
reads.sort()
print("write-back page read of 200: p50 %.3f ms max %.3f ms over %d pages" % (reads[len(reads)//2], reads[-1], len(reads)))
