/*
 * The outbox's store: state_dir/outbox.db (SQLite, WAL), written by one
 * writer thread with its own connection, so that no fsync ever runs on the
 * event loop. The loop hands the thread operations (inserts, claims, state
 * changes, expiry sweeps); the thread runs every operation waiting into one
 * transaction (group commit: one fsync per batch), then hands them back
 * through a pipe the loop watches, where each operation's done callback runs.
 * The loop reads (one message by id, per-appid depth) through a second,
 * read-only connection: WAL readers never wait for the writer.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "wxpushd.h"

#define OUTBOX_DB_FILE		"outbox.db"
#define OUTBOX_DB_BUSY_MS	1000	/* only an outside reader holds a lock */
#define OUTBOX_DB_KEEP_CHUNK	5000	/* final rows deleted per transaction */
#define OUTBOX_DB_BATCH_ROWS	1024	/* rows per transaction, claims apart */
#define OUTBOX_DB_LAZY_ROWS	512	/* state changes worth a transaction */
#define OUTBOX_DB_LAZY_MS	20	/* the longest a state change waits */

#define OUTBOX_DB_NITEMS(a)	(sizeof (a) / sizeof (a)[0])

/* The writer thread's statements. */
enum outbox_db_wq {
	OBW_INSERT,
	OBW_CLAIM,
	OBW_CLAIM_UID,
	OBW_SET,
	OBW_RELEASE,
	OBW_EXPIRE,
	OBW_KEEP,
	OBW_NQUERIES
};
static const char *outbox_db_wsql[OBW_NQUERIES] = {
	[OBW_INSERT] =
	    "INSERT INTO outbox (appid, kind, body, uid, watch, state,"
	    " created_at, updated_at, next_at, not_after, consent_openid,"
	    " consent_template, consent_scene, consent_tag)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
	/* Due rows of one appid, oldest first, marked sending. */
	[OBW_CLAIM] =
	    "UPDATE outbox SET state = 1, updated_at = ?2 WHERE id IN"
	    " (SELECT id FROM outbox WHERE appid = ?1 AND state = 0"
	    " AND next_at <= ?2 ORDER BY next_at, id LIMIT ?3)"
	    " RETURNING id, kind, body, uid, watch, attempts, uncertain,"
	    " created_at, not_after, consent_openid, consent_template,"
	    " consent_scene, consent_tag",
	/* The same, of one caller (uid): fair shares between callers. */
	[OBW_CLAIM_UID] =
	    "UPDATE outbox SET state = 1, updated_at = ?2 WHERE id IN"
	    " (SELECT id FROM outbox WHERE appid = ?1 AND uid = ?4"
	    " AND state = 0 AND next_at <= ?2 ORDER BY next_at, id LIMIT ?3)"
	    " RETURNING id, kind, body, uid, watch, attempts, uncertain,"
	    " created_at, not_after, consent_openid, consent_template,"
	    " consent_scene, consent_tag",
	[OBW_SET] =
	    "UPDATE outbox SET state = ?2, attempts = ?3, uncertain = ?4,"
	    " updated_at = ?5, next_at = ?6, code = ?7, errcode = ?8,"
	    " errmsg = ?9 WHERE id = ?1",
	/* Every row claimed by an earlier run: attempted again. */
	[OBW_RELEASE] =
	    "UPDATE outbox SET state = 0, uncertain = 1 WHERE state = 1",
	[OBW_EXPIRE] =
	    "UPDATE outbox SET state = 4, updated_at = ?1, code = 'expired'"
	    " WHERE id IN (SELECT id FROM outbox WHERE state = 0"
	    " AND not_after < ?1 LIMIT ?2)"
	    " RETURNING id, appid, uid, watch, attempts, created_at,"
	    " consent_openid, consent_template, consent_scene, consent_tag,"
	    " uncertain",
	[OBW_KEEP] =
	    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
	    " WHERE state >= 2 AND updated_at < ?1 LIMIT ?2)",
};

/* The loop's (read-only) statements. */
enum outbox_db_rq {
	OBR_GET,
	OBR_DEPTH,
	OBR_OLDEST,
	OBR_CONSENTS,
	OBR_NQUERIES
};
static const char *outbox_db_rsql[OBR_NQUERIES] = {
	[OBR_GET] =
	    "SELECT id, appid, uid, state, attempts, created_at, updated_at,"
	    " code, errcode, errmsg, not_after FROM outbox WHERE id = ?1",
	[OBR_DEPTH] =
	    "SELECT appid, count(*) FROM outbox WHERE state < 2 GROUP BY appid",
	[OBR_OLDEST] =
	    "SELECT created_at FROM outbox WHERE appid = ?1 AND state < 2"
	    " ORDER BY id LIMIT 1",
	/* The consents messages not yet final hold (at start; indexed). */
	[OBR_CONSENTS] =
	    "SELECT appid, consent_openid, consent_template, consent_scene,"
	    " consent_tag FROM outbox WHERE state < 2 AND consent_tag != ''",
};

/* Migrations, as in store.c: entry i takes user_version from i to i + 1. */
static const char *outbox_db_migrations[] = {
	/* 1: the outbox. */
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" appid TEXT NOT NULL,"
	" kind TEXT NOT NULL,"
	" body BLOB NOT NULL,"
	" uid INTEGER NOT NULL,"
	" watch INTEGER NOT NULL,"
	" state INTEGER NOT NULL,"		/* enum outbox_state */
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" uncertain INTEGER NOT NULL DEFAULT 0,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" next_at INTEGER NOT NULL,"
	" not_after INTEGER NOT NULL,"
	" code TEXT,"
	" errcode INTEGER,"
	" errmsg TEXT);"
	"CREATE INDEX outbox_due ON outbox (appid, next_at, id)"
	" WHERE state = 0;"
	"CREATE INDEX outbox_pending ON outbox (appid, id) WHERE state < 2;"
	"CREATE INDEX outbox_expiry ON outbox (not_after) WHERE state = 0;"
	"CREATE INDEX outbox_final ON outbox (updated_at) WHERE state >= 2;",
	/* 2: claims per caller (fair shares between the uids of an appid). */
	"CREATE INDEX outbox_due_uid ON outbox (appid, uid, next_at, id)"
	" WHERE state = 0;",
	/* 3: the consent a subscribe_once holds (outbox-consent.c). */
	"ALTER TABLE outbox ADD COLUMN consent_openid TEXT;"
	"ALTER TABLE outbox ADD COLUMN consent_template TEXT;"
	"ALTER TABLE outbox ADD COLUMN consent_scene INTEGER;"
	"ALTER TABLE outbox ADD COLUMN consent_tag TEXT;"
	"CREATE INDEX outbox_consent ON outbox (id)"
	" WHERE state < 2 AND consent_tag != '';",
};

static char		*outbox_db_path;
static sqlite3		*outbox_db_w;		/* the thread's */
static sqlite3		*outbox_db_r;		/* the loop's */
static sqlite3_stmt	*outbox_db_ws[OBW_NQUERIES];
static sqlite3_stmt	*outbox_db_rs[OBR_NQUERIES];

static pthread_t	 outbox_db_thread;
static int		 outbox_db_running;
static pthread_mutex_t	 outbox_db_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 outbox_db_cond;		/* CLOCK_MONOTONIC */
static pthread_once_t	 outbox_db_cond_once = PTHREAD_ONCE_INIT;
static TAILQ_HEAD(, outbox_op) outbox_db_todo =
    TAILQ_HEAD_INITIALIZER(outbox_db_todo);
/* Claims go first: deliveries wait for them, and they are few. */
static TAILQ_HEAD(, outbox_op) outbox_db_urgent =
    TAILQ_HEAD_INITIALIZER(outbox_db_urgent);
/*
 * State changes wait for other work, for OUTBOX_DB_LAZY_ROWS of them or for
 * OUTBOX_DB_LAZY_MS: a drain would otherwise commit a few rows at a time,
 * one fsync each, and keep claims waiting behind those commits.
 */
static TAILQ_HEAD(, outbox_op) outbox_db_lazy =
    TAILQ_HEAD_INITIALIZER(outbox_db_lazy);
static size_t		 outbox_db_nlazy;	/* rows in outbox_db_lazy */
static long		 outbox_db_lazy_ms = OUTBOX_DB_LAZY_MS;
static struct timespec	 outbox_db_lazy_at;	/* when its first came */
static TAILQ_HEAD(, outbox_op) outbox_db_done =
    TAILQ_HEAD_INITIALIZER(outbox_db_done);
static int		 outbox_db_quit;
static int		 outbox_db_pipe[2] = { -1, -1 };
static struct event	*outbox_db_ev;
static uint64_t		 outbox_db_commits;	/* transactions committed */
static uint64_t		 outbox_db_ops;		/* operations committed */

/* A cause from a connection's last error. */
static char *
outbox_db_cause(sqlite3 *db, const char *what)
{
	char *cause;

	xasprintf(&cause, "%s: %s: %s", outbox_db_path, what,
	    db != NULL ? sqlite3_errmsg(db) : "not open");
	return (cause);
}

/* Run SQL at open time; 0, or -1 and a cause. */
static int
outbox_db_exec(sqlite3 *db, const char *sql, const char *what, char **cause)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return (0);
	*cause = outbox_db_cause(db, what);
	return (-1);
}

/* Bring the schema to the newest version in one transaction. */
static int
outbox_db_migrate(char **cause)
{
	const int	 latest = (int)OUTBOX_DB_NITEMS(outbox_db_migrations);
	sqlite3_stmt	*st;
	char		*sql;
	int		 version = -1, i;

	if (outbox_db_exec(outbox_db_w, "BEGIN IMMEDIATE", "migrating",
	    cause) != 0)
		return (-1);
	if (sqlite3_prepare_v2(outbox_db_w, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK)
		goto fail_cause;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0 || version > latest) {
		xasprintf(cause, "%s: schema version %d is not one this wxpushd "
		    "knows (it knows up to %d)", outbox_db_path, version, latest);
		goto fail;
	}
	for (i = version; i < latest; i++) {
		if (outbox_db_exec(outbox_db_w, outbox_db_migrations[i],
		    "migrating the schema", cause) != 0)
			goto fail;
	}
	xasprintf(&sql, "PRAGMA user_version = %d", latest);
	i = outbox_db_exec(outbox_db_w, sql, "setting the schema version",
	    cause);
	free(sql);
	if (i != 0)
		goto fail;
	if (outbox_db_exec(outbox_db_w, "COMMIT", "migrating", cause) != 0)
		goto fail;
	return (0);

fail_cause:
	*cause = outbox_db_cause(outbox_db_w, "migrating");
fail:
	sqlite3_exec(outbox_db_w, "ROLLBACK", NULL, NULL, NULL);
	return (-1);
}

/* Create the file 0600 before SQLite sees it; 0 or -1 and a cause. */
static int
outbox_db_create(char **cause)
{
	int fd;

	fd = open(outbox_db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1) {
		xasprintf(cause, "%s: %s", outbox_db_path, strerror(errno));
		return (-1);
	}
	close(fd);
	return (0);
}

/* Prepare n statements of sql on db into st; 0, or -1 and a cause. */
static int
outbox_db_prepare(sqlite3 *db, const char **sql, sqlite3_stmt **st, size_t n,
    char **cause)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (sqlite3_prepare_v3(db, sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st[i], NULL) != SQLITE_OK) {
			*cause = outbox_db_cause(db, "preparing a query");
			return (-1);
		}
	}
	return (0);
}

/* Read the consent columns from col on (NULL: the row holds none). */
static void
outbox_db_consent(sqlite3_stmt *st, int col, struct outbox_consent *oc)
{
	const unsigned char *p;

	memset(oc, 0, sizeof *oc);
	if ((p = sqlite3_column_text(st, col)) == NULL)
		return;
	oc->on = 1;
	snprintf(oc->openid, sizeof oc->openid, "%s", (const char *)p);
	if ((p = sqlite3_column_text(st, col + 1)) != NULL)
		snprintf(oc->template_id, sizeof oc->template_id, "%s",
		    (const char *)p);
	oc->scene = sqlite3_column_int(st, col + 2);
	if ((p = sqlite3_column_text(st, col + 3)) != NULL)
		snprintf(oc->tag, sizeof oc->tag, "%s", (const char *)p);
}

/* Run one insert operation: every message, ids filled in. */
static int
outbox_db_run_insert(struct outbox_op *op)
{
	sqlite3_stmt *st = outbox_db_ws[OBW_INSERT];
	struct outbox_item *it;
	size_t i;
	int rc;

	for (i = 0; i < op->n; i++) {
		it = &op->items[i];
		sqlite3_bind_text(st, 1, it->appid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, it->kind, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, it->body, (int)it->len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, it->uid);
		sqlite3_bind_int(st, 5, it->watch);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)op->now);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)it->not_after);
		if (it->consent != NULL && it->consent->on) {
			sqlite3_bind_text(st, 8, it->consent->openid, -1,
			    SQLITE_STATIC);
			sqlite3_bind_text(st, 9, it->consent->template_id, -1,
			    SQLITE_STATIC);
			sqlite3_bind_int(st, 10, it->consent->scene);
			sqlite3_bind_text(st, 11, it->consent->tag, -1,
			    SQLITE_STATIC);
		} else {
			sqlite3_bind_null(st, 8);
			sqlite3_bind_null(st, 9);
			sqlite3_bind_null(st, 10);
			sqlite3_bind_null(st, 11);
		}
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return (-1);
		it->id = sqlite3_last_insert_rowid(outbox_db_w);
	}
	sqlite3_clear_bindings(st);
	return (0);
}

/* Claim up to limit rows with st (bound but for the limit), appended to op. */
static int
outbox_db_claim_rows(struct outbox_op *op, sqlite3_stmt *st, int limit)
{
	struct outbox_claimed *c;
	const void *p;
	int rc, n;

	sqlite3_bind_text(st, 1, op->appid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)op->now);
	sqlite3_bind_int(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (op->nclaimed >= (size_t)op->limit)
			continue;
		c = &op->claimed[op->nclaimed++];
		c->id = sqlite3_column_int64(st, 0);
		snprintf(c->kind, sizeof c->kind, "%s",
		    (const char *)sqlite3_column_text(st, 1));
		p = sqlite3_column_blob(st, 2);
		n = sqlite3_column_bytes(st, 2);
		c->body = xmalloc((size_t)n + 1);
		if (n > 0)
			memcpy(c->body, p, (size_t)n);
		c->body[n] = '\0';
		c->len = (size_t)n;
		c->uid = (uint32_t)sqlite3_column_int64(st, 3);
		c->watch = sqlite3_column_int(st, 4);
		c->attempts = sqlite3_column_int(st, 5);
		c->uncertain = sqlite3_column_int(st, 6);
		c->created_at = (time_t)sqlite3_column_int64(st, 7);
		c->not_after = (time_t)sqlite3_column_int64(st, 8);
		outbox_db_consent(st, 9, &c->consent);
	}
	sqlite3_reset(st);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/*
 * Run one claim: up to op->limit due rows of op->appid, copied out. With
 * callers (op->uids), each first gets an equal share (op->got says how many
 * it had); what is left goes to the oldest due rows of anyone.
 */
static int
outbox_db_run_claim(struct outbox_op *op)
{
	size_t i, before;
	int share, left;

	op->claimed = xcalloc((size_t)op->limit, sizeof *op->claimed);
	op->nclaimed = 0;
	if (op->nuids > 0) {
		share = op->limit / (int)op->nuids;
		if (share < 1)
			share = 1;
		for (i = 0; i < op->nuids; i++) {
			left = op->limit - (int)op->nclaimed;
			if (left <= 0)
				break;
			before = op->nclaimed;
			if (share < left)
				left = share;
			sqlite3_bind_int64(outbox_db_ws[OBW_CLAIM_UID], 4,
			    op->uids[i]);
			if (outbox_db_claim_rows(op, outbox_db_ws[OBW_CLAIM_UID],
			    left) != 0)
				return (-1);
			/* Fewer than asked: none of its rows is due now. */
			op->got[i] = (int)(op->nclaimed - before) < left;
		}
	}
	left = op->limit - (int)op->nclaimed;
	if (left > 0)
		return (outbox_db_claim_rows(op, outbox_db_ws[OBW_CLAIM], left));
	return (0);
}

/* Run one operation's state changes. */
static int
outbox_db_run_set(struct outbox_op *op)
{
	sqlite3_stmt *st = outbox_db_ws[OBW_SET];
	const struct outbox_set *set;
	size_t i;
	int rc;

	for (i = 0; i < op->nsets; i++) {
		set = &op->sets[i];
		sqlite3_bind_int64(st, 1, set->id);
		sqlite3_bind_int(st, 2, set->state);
		sqlite3_bind_int(st, 3, set->attempts);
		sqlite3_bind_int(st, 4, set->uncertain);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)op->now);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)set->next_at);
		if (set->code[0] != '\0') {
			sqlite3_bind_text(st, 7, set->code, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 8, set->errcode);
			sqlite3_bind_text(st, 9, set->errmsg != NULL ?
			    set->errmsg : "", -1, SQLITE_STATIC);
		} else {
			sqlite3_bind_null(st, 7);
			sqlite3_bind_null(st, 8);
			sqlite3_bind_null(st, 9);
		}
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return (-1);
	}
	return (0);
}

/* Run one expiry sweep: queued rows past not_after become expired. */
static int
outbox_db_run_expire(struct outbox_op *op)
{
	sqlite3_stmt *st = outbox_db_ws[OBW_EXPIRE];
	struct outbox_claimed *c;
	int rc;

	op->claimed = xcalloc((size_t)op->limit, sizeof *op->claimed);
	op->nclaimed = 0;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)op->now);
	sqlite3_bind_int(st, 2, op->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (op->nclaimed >= (size_t)op->limit)
			continue;
		c = &op->claimed[op->nclaimed++];
		c->id = sqlite3_column_int64(st, 0);
		snprintf(c->appid, sizeof c->appid, "%s",
		    (const char *)sqlite3_column_text(st, 1));
		c->uid = (uint32_t)sqlite3_column_int64(st, 2);
		c->watch = sqlite3_column_int(st, 3);
		c->attempts = sqlite3_column_int(st, 4);
		c->created_at = (time_t)sqlite3_column_int64(st, 5);
		outbox_db_consent(st, 6, &c->consent);
		c->uncertain = sqlite3_column_int(st, 10);
	}
	sqlite3_reset(st);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* Run one deletion of final rows older than outbox_keep. */
static int
outbox_db_run_keep(struct outbox_op *op)
{
	sqlite3_stmt *st = outbox_db_ws[OBW_KEEP];
	int rc;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)op->now);
	sqlite3_bind_int(st, 2, OUTBOX_DB_KEEP_CHUNK);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	op->nclaimed = (size_t)sqlite3_changes(outbox_db_w);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* Run one operation inside the open transaction. */
static int
outbox_db_run(struct outbox_op *op)
{
	switch (op->type) {
	case OUTBOX_OP_INSERT:
		return (outbox_db_run_insert(op));
	case OUTBOX_OP_CLAIM:
		return (outbox_db_run_claim(op));
	case OUTBOX_OP_SET:
		return (outbox_db_run_set(op));
	case OUTBOX_OP_EXPIRE:
		return (outbox_db_run_expire(op));
	case OUTBOX_OP_KEEP:
		return (outbox_db_run_keep(op));
	}
	return (-1);
}

/* Undo what a failed transaction's operations returned. */
static void
outbox_db_unclaim(struct outbox_op *op)
{
	size_t i;

	for (i = 0; i < op->nclaimed && op->claimed != NULL; i++)
		free(op->claimed[i].body);
	free(op->claimed);
	op->claimed = NULL;
	op->nclaimed = 0;
}

/*
 * Run a batch in one transaction. If it fails (the disk is full, say),
 * nothing of it is on disk: every operation of the batch reports failure.
 */
static int
outbox_db_batch(struct outbox_op **ops, size_t n)
{
	const char *err = NULL;
	size_t i;
	int failed = 0;

	if (sqlite3_exec(outbox_db_w, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		err = sqlite3_errmsg(outbox_db_w);
		failed = 1;
	}
	for (i = 0; i < n && !failed; i++) {
		if (outbox_db_run(ops[i]) != 0) {
			err = sqlite3_errmsg(outbox_db_w);
			failed = 1;
		}
	}
	if (!failed && sqlite3_exec(outbox_db_w, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		err = sqlite3_errmsg(outbox_db_w);
		failed = 1;
	}
	if (failed) {
		/* Copy before ROLLBACK replaces the message. */
		for (i = 0; i < n; i++) {
			ops[i]->rc = -1;
			snprintf(ops[i]->error, sizeof ops[i]->error, "%s",
			    err != NULL ? err : "unknown error");
			outbox_db_unclaim(ops[i]);
		}
		sqlite3_exec(outbox_db_w, "ROLLBACK", NULL, NULL, NULL);
		return (-1);
	}
	for (i = 0; i < n; i++)
		ops[i]->rc = 0;
	return (0);
}

/* Whether the writer has work to commit now (the mutex held). */
static int
outbox_db_ready(void)
{
	struct timespec now;
	long ms;

	if (outbox_db_quit || !TAILQ_EMPTY(&outbox_db_urgent) ||
	    !TAILQ_EMPTY(&outbox_db_todo) ||
	    outbox_db_nlazy >= OUTBOX_DB_LAZY_ROWS)
		return (1);
	if (TAILQ_EMPTY(&outbox_db_lazy))
		return (0);
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - outbox_db_lazy_at.tv_sec) * 1000 +
	    (now.tv_nsec - outbox_db_lazy_at.tv_nsec) / 1000000;
	return (ms >= outbox_db_lazy_ms);
}

/* Wait for work, or until the oldest state change is due (the mutex held). */
static void
outbox_db_wait(void)
{
	struct timespec at;

	if (TAILQ_EMPTY(&outbox_db_lazy)) {
		pthread_cond_wait(&outbox_db_cond, &outbox_db_mtx);
		return;
	}
	at = outbox_db_lazy_at;
	at.tv_sec += outbox_db_lazy_ms / 1000;
	at.tv_nsec += outbox_db_lazy_ms % 1000 * 1000000L;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&outbox_db_cond, &outbox_db_mtx, &at);
}

/* The writer thread: take everything waiting, commit it, hand it back. */
static void *
outbox_db_main(void *arg)
{
	TAILQ_HEAD(, outbox_op) batch;
	struct outbox_op **ops = NULL, *op;
	size_t n, cap = 0, rows;
	int wake, rc;
	char c = 0;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&outbox_db_mtx);
		while (!outbox_db_ready())
			outbox_db_wait();
		if (TAILQ_EMPTY(&outbox_db_todo) &&
		    TAILQ_EMPTY(&outbox_db_urgent) &&
		    TAILQ_EMPTY(&outbox_db_lazy) && outbox_db_quit) {
			pthread_mutex_unlock(&outbox_db_mtx);
			break;
		}
		/*
		 * The state changes (first: a claim then sees rows queued
		 * again), every claim, then the rest up to a bound on rows, so
		 * that a claim never waits behind a huge transaction.
		 */
		TAILQ_INIT(&batch);
		TAILQ_CONCAT(&batch, &outbox_db_lazy, entry);
		outbox_db_nlazy = 0;
		TAILQ_CONCAT(&batch, &outbox_db_urgent, entry);
		rows = 0;
		while ((op = TAILQ_FIRST(&outbox_db_todo)) != NULL &&
		    (rows == 0 || rows + (op->type == OUTBOX_OP_INSERT ?
		    op->n : 1) <= OUTBOX_DB_BATCH_ROWS)) {
			TAILQ_REMOVE(&outbox_db_todo, op, entry);
			TAILQ_INSERT_TAIL(&batch, op, entry);
			rows += op->type == OUTBOX_OP_INSERT ? op->n : 1;
		}
		pthread_mutex_unlock(&outbox_db_mtx);

		n = 0;
		TAILQ_FOREACH(op, &batch, entry) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				ops = xreallocarray(ops, cap, sizeof *ops);
			}
			ops[n++] = op;
		}
		rc = outbox_db_batch(ops, n);

		pthread_mutex_lock(&outbox_db_mtx);
		if (rc == 0) {
			outbox_db_commits++;
			outbox_db_ops += n;
		}
		wake = TAILQ_EMPTY(&outbox_db_done);
		TAILQ_CONCAT(&outbox_db_done, &batch, entry);
		pthread_mutex_unlock(&outbox_db_mtx);
		if (wake) {
			while (write(outbox_db_pipe[1], &c, 1) == -1 &&
			    errno == EINTR)
				;
		}
	}
	free(ops);
	return (NULL);
}

/* The loop's side of the pipe: run the done callbacks of finished batches. */
static void
outbox_db_done_cb(evutil_socket_t fd, short events, void *arg)
{
	TAILQ_HEAD(, outbox_op) done;
	struct outbox_op *op;
	char buf[64];

	(void)events;
	(void)arg;
	while (read(fd, buf, sizeof buf) > 0)
		;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&outbox_db_mtx);
	TAILQ_CONCAT(&done, &outbox_db_done, entry);
	pthread_mutex_unlock(&outbox_db_mtx);
	while ((op = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, op, entry);
		op->done(op);
	}
}

/* The condition variable waits on the monotonic clock (lazy deadlines). */
static void
outbox_db_cond_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&outbox_db_cond, &ca);
	pthread_condattr_destroy(&ca);
}

/* Hand op to the writer thread; op->done runs on the loop when committed. */
void
outbox_db_submit(struct outbox_op *op)
{
	pthread_mutex_lock(&outbox_db_mtx);
	switch (op->type) {
	case OUTBOX_OP_CLAIM:
		TAILQ_INSERT_TAIL(&outbox_db_urgent, op, entry);
		break;
	case OUTBOX_OP_SET:
		if (TAILQ_EMPTY(&outbox_db_lazy))
			clock_gettime(CLOCK_MONOTONIC, &outbox_db_lazy_at);
		TAILQ_INSERT_TAIL(&outbox_db_lazy, op, entry);
		outbox_db_nlazy += op->nsets;
		break;
	default:
		TAILQ_INSERT_TAIL(&outbox_db_todo, op, entry);
		break;
	}
	/* The first state change starts the thread's clock. */
	if (op->type != OUTBOX_OP_SET || outbox_db_nlazy == op->nsets ||
	    outbox_db_nlazy >= OUTBOX_DB_LAZY_ROWS)
		pthread_cond_signal(&outbox_db_cond);
	pthread_mutex_unlock(&outbox_db_mtx);
}

/* Open one connection to the file with the pragmas both sides need. */
static int
outbox_db_connect(sqlite3 **db, int flags, char **cause)
{
	if (sqlite3_open_v2(outbox_db_path, db, flags | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK) {
		*cause = outbox_db_cause(*db, "opening");
		return (-1);
	}
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_busy_timeout(*db, OUTBOX_DB_BUSY_MS);
	sqlite3_db_config(*db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	return (0);
}

/*
 * Open state_dir/outbox.db, migrate it, mark the rows an earlier run had
 * claimed as queued again (uncertain), and start the writer thread.
 */
int
outbox_db_open(const char *state_dir, char **cause)
{
	int flags;

	*cause = NULL;
	xasprintf(&outbox_db_path, "%s/%s", state_dir, OUTBOX_DB_FILE);
	if (outbox_db_create(cause) != 0)
		goto fail;
	if (outbox_db_connect(&outbox_db_w, SQLITE_OPEN_READWRITE, cause) != 0)
		goto fail;
	if (outbox_db_exec(outbox_db_w, "PRAGMA journal_mode = WAL", "opening",
	    cause) != 0)
		goto fail;
	/* A commit is on disk when COMMIT returns: one fsync per batch. */
	if (outbox_db_exec(outbox_db_w, "PRAGMA synchronous = FULL",
	    "opening", cause) != 0)
		goto fail;
	if (outbox_db_migrate(cause) != 0)
		goto fail;
	if (outbox_db_prepare(outbox_db_w, outbox_db_wsql, outbox_db_ws,
	    OBW_NQUERIES, cause) != 0)
		goto fail;
	if (sqlite3_step(outbox_db_ws[OBW_RELEASE]) != SQLITE_DONE) {
		*cause = outbox_db_cause(outbox_db_w, "releasing claims");
		goto fail;
	}
	if (sqlite3_changes(outbox_db_w) > 0)
		log_info("outbox: %d message%s in flight at the last stop will "
		    "be attempted again", sqlite3_changes(outbox_db_w),
		    sqlite3_changes(outbox_db_w) == 1 ? "" : "s");
	sqlite3_reset(outbox_db_ws[OBW_RELEASE]);

	flags = SQLITE_OPEN_READONLY;
	if (outbox_db_connect(&outbox_db_r, flags, cause) != 0)
		goto fail;
	if (outbox_db_prepare(outbox_db_r, outbox_db_rsql, outbox_db_rs,
	    OBR_NQUERIES, cause) != 0)
		goto fail;

	if (pipe2(outbox_db_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		xasprintf(cause, "outbox: pipe: %s", strerror(errno));
		goto fail;
	}
	outbox_db_ev = event_new(wx_base, outbox_db_pipe[0],
	    EV_READ | EV_PERSIST, outbox_db_done_cb, NULL);
	event_add(outbox_db_ev, NULL);
	outbox_db_quit = 0;
	pthread_once(&outbox_db_cond_once, outbox_db_cond_init);
	if ((errno = pthread_create(&outbox_db_thread, NULL, outbox_db_main,
	    NULL)) != 0) {
		xasprintf(cause, "outbox: pthread_create: %s", strerror(errno));
		goto fail;
	}
	outbox_db_running = 1;
	log_debug("outbox: opened %s", outbox_db_path);
	return (0);

fail:
	outbox_db_close();
	return (-1);
}

/*
 * Stop the writer after it has committed what it was given (their done
 * callbacks run here), then close both connections.
 */
void
outbox_db_close(void)
{
	size_t i;

	if (outbox_db_running) {
		pthread_mutex_lock(&outbox_db_mtx);
		outbox_db_quit = 1;
		pthread_cond_signal(&outbox_db_cond);
		pthread_mutex_unlock(&outbox_db_mtx);
		pthread_join(outbox_db_thread, NULL);
		outbox_db_running = 0;
		outbox_db_done_cb(outbox_db_pipe[0], EV_READ, NULL);
	}
	if (outbox_db_ev != NULL) {
		event_free(outbox_db_ev);
		outbox_db_ev = NULL;
	}
	for (i = 0; i < 2; i++) {
		if (outbox_db_pipe[i] != -1)
			close(outbox_db_pipe[i]);
		outbox_db_pipe[i] = -1;
	}
	for (i = 0; i < OBW_NQUERIES; i++) {
		sqlite3_finalize(outbox_db_ws[i]);
		outbox_db_ws[i] = NULL;
	}
	for (i = 0; i < OBR_NQUERIES; i++) {
		sqlite3_finalize(outbox_db_rs[i]);
		outbox_db_rs[i] = NULL;
	}
	if (outbox_db_w != NULL)
		sqlite3_close(outbox_db_w);
	if (outbox_db_r != NULL)
		sqlite3_close(outbox_db_r);
	outbox_db_w = outbox_db_r = NULL;
	free(outbox_db_path);
	outbox_db_path = NULL;
}

/* Read a text column into buf ("" for NULL). */
static void
outbox_db_text(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *p = sqlite3_column_text(st, col);

	snprintf(buf, size, "%s", p != NULL ? (const char *)p : "");
}

/* One message by id (on the loop, an indexed read): 1 found, 0 not, -1. */
int
outbox_db_get(int64_t id, struct outbox_row *row)
{
	sqlite3_stmt *st = outbox_db_rs[OBR_GET];
	int rc;

	if (st == NULL)
		return (-1);
	memset(row, 0, sizeof *row);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row->id = sqlite3_column_int64(st, 0);
		outbox_db_text(st, 1, row->appid, sizeof row->appid);
		row->uid = (uint32_t)sqlite3_column_int64(st, 2);
		row->state = sqlite3_column_int(st, 3);
		row->attempts = sqlite3_column_int(st, 4);
		row->created_at = (time_t)sqlite3_column_int64(st, 5);
		row->updated_at = (time_t)sqlite3_column_int64(st, 6);
		outbox_db_text(st, 7, row->code, sizeof row->code);
		row->errcode = (long)sqlite3_column_int64(st, 8);
		outbox_db_text(st, 9, row->errmsg, sizeof row->errmsg);
		row->not_after = (time_t)sqlite3_column_int64(st, 10);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return (1);
	if (rc == SQLITE_DONE)
		return (0);
	log_warnx("outbox: reading message %lld: %s", (long long)id,
	    sqlite3_errmsg(outbox_db_r));
	return (-1);
}

/* Call cb(appid, depth) for each appid with messages waiting (startup). */
int
outbox_db_depths(void (*cb)(const char *, int64_t))
{
	sqlite3_stmt *st = outbox_db_rs[OBR_DEPTH];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cb((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int64(st, 1));
	sqlite3_reset(st);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* When the oldest waiting message of appid was queued; 0 if none. */
time_t
outbox_db_oldest(const char *appid)
{
	sqlite3_stmt *st = outbox_db_rs[OBR_OLDEST];
	time_t t = 0;

	sqlite3_bind_text(st, 1, appid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		t = (time_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (t);
}

/* Call cb(appid, consent) for each consent a message not final holds. */
int
outbox_db_consents(void (*cb)(const char *, const struct outbox_consent *))
{
	sqlite3_stmt *st = outbox_db_rs[OBR_CONSENTS];
	struct outbox_consent oc;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		outbox_db_consent(st, 1, &oc);
		cb((const char *)sqlite3_column_text(st, 0), &oc);
	}
	sqlite3_reset(st);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* How long a lone state change may wait (tests make it long). */
void
outbox_db_set_lazy(long ms)
{
	pthread_mutex_lock(&outbox_db_mtx);
	outbox_db_lazy_ms = ms;
	pthread_cond_signal(&outbox_db_cond);
	pthread_mutex_unlock(&outbox_db_mtx);
}

/* Transactions and operations committed so far (loop only, approximate). */
void
outbox_db_counts(uint64_t *commits, uint64_t *ops)
{
	pthread_mutex_lock(&outbox_db_mtx);
	*commits = outbox_db_commits;
	*ops = outbox_db_ops;
	pthread_mutex_unlock(&outbox_db_mtx);
}
