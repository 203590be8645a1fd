/*
 * Durable state in SQLite (WAL): tokens, verify tickets, authorizer refresh
 * tokens, idempotency keys, the order of component events, pending
 * authorization exchanges and the permissions authorizers granted.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "wxpushd.h"

#define STORE_FILE		"wxpushd.db"
#define STORE_BUSY_TIMEOUT	250	/* ms; only an outside reader can hold a lock */
#define STORE_CHUNK		256	/* authorizers read per query by foreach */
#define STORE_AUTH_BATCH	32	/* appids per STORE_AUTH_COMPONENTS */
#define STORE_TICKET_MAX	WX_TOKEN_MAX
#define STORE_INTEGRITY_MAX	200	/* bytes of an integrity message in a cause */
#define STORE_PERMS_MAX		1024	/* bytes of an authorizer's permission ids */

#define STORE_NITEMS(a)		(sizeof (a) / sizeof (a)[0])

/* Every query the daemon runs, prepared once at open. */
enum store_query {
	STORE_TOKEN_SAVE,
	STORE_TOKEN_LOAD,
	STORE_TICKET_SAVE,
	STORE_TICKET_LOAD,
	STORE_AUTH_SAVE,
	STORE_AUTH_LOAD,
	STORE_AUTH_COMPONENTS,
	STORE_AUTH_LIST,
	STORE_AUTH_ACTIVE,
	STORE_AUTH_COUNT,
	STORE_AUTH_TOUCH,
	STORE_AUTH_LEARN,
	STORE_WALK_SAVE,
	STORE_WALK_LOAD,
	STORE_WALK_DELETE,
	STORE_INTEGRITY,
	STORE_IDEM_PUT,
	STORE_IDEM_LOAD,
	STORE_IDEM_EXPIRE,
	STORE_MARK_SAVE,
	STORE_MARK_LOAD,
	STORE_PENDING_SAVE,
	STORE_PENDING_DELETE,
	STORE_PENDING_LIST,
	STORE_PERMS_SAVE,
	STORE_PERMS_LOAD,
	STORE_CONSENT_PUT,
	STORE_CONSENT_LOAD,
	STORE_CONSENT_EXPIRE,
	STORE_CONSENT_FORGET,
	STORE_NQUERIES
};

static const char *store_sql[STORE_NQUERIES] = {
	[STORE_TOKEN_SAVE] =
	    "INSERT INTO tokens (appid, kind, token, expires_at, refreshed_at,"
	    " calls_day, calls_today) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
	    " ON CONFLICT (appid) DO UPDATE SET kind = excluded.kind,"
	    " token = excluded.token, expires_at = excluded.expires_at,"
	    " refreshed_at = excluded.refreshed_at,"
	    " calls_day = excluded.calls_day, calls_today = excluded.calls_today",
	[STORE_TOKEN_LOAD] =
	    "SELECT kind, token, expires_at, refreshed_at, calls_day, calls_today"
	    " FROM tokens WHERE appid = ?1",
	[STORE_TICKET_SAVE] =
	    "INSERT INTO tickets (component_appid, ticket, received_at)"
	    " VALUES (?1, ?2, ?3) ON CONFLICT (component_appid) DO UPDATE SET"
	    " ticket = excluded.ticket, received_at = excluded.received_at",
	[STORE_TICKET_LOAD] =
	    "SELECT ticket, received_at FROM tickets WHERE component_appid = ?1",
	/* last_used only moves forward: a save that does not know it keeps it. */
	[STORE_AUTH_SAVE] =
	    "INSERT INTO authorizers (appid, component_appid, refresh_token,"
	    " revoked, updated_at, last_used) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	    " ON CONFLICT (appid) DO UPDATE SET"
	    " component_appid = excluded.component_appid,"
	    " refresh_token = excluded.refresh_token,"
	    " revoked = excluded.revoked, updated_at = excluded.updated_at,"
	    " last_used = max(last_used, excluded.last_used)",
	[STORE_AUTH_LOAD] =
	    "SELECT component_appid, appid, refresh_token, revoked, updated_at,"
	    " last_used FROM authorizers WHERE appid = ?1",
	/* Up to STORE_AUTH_BATCH appids (unused ones NULL), by primary key. */
	[STORE_AUTH_COMPONENTS] =
	    "SELECT appid, component_appid FROM authorizers WHERE appid IN"
	    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
	    " ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26,"
	    " ?27, ?28, ?29, ?30, ?31, ?32)",
	/* Keyset paging: the index gives rows in appid order, no sort. */
	[STORE_AUTH_LIST] =
	    "SELECT component_appid, appid, refresh_token, revoked, updated_at,"
	    " last_used FROM authorizers WHERE component_appid = ?1"
	    " AND appid > ?2 ORDER BY appid LIMIT ?3",
	/*
	 * The ones used since ?2, paged on (last_used, appid) after (?3, ?4):
	 * the authorizers_used index reads only them, however many are idle.
	 * Two index ranges merged, the rest of ?3's second then later ones:
	 * a row value "(last_used, appid) > (?3, ?4)" ranges on last_used
	 * alone, and rescans every row of a tie (a quadratic start when
	 * 100,000 share one last_used).
	 */
	[STORE_AUTH_ACTIVE] =
	    "SELECT component_appid, appid, refresh_token, revoked, updated_at,"
	    " last_used FROM authorizers WHERE component_appid = ?1"
	    " AND last_used = ?3 AND last_used >= ?2 AND appid > ?4"
	    " UNION ALL"
	    " SELECT component_appid, appid, refresh_token, revoked, updated_at,"
	    " last_used FROM authorizers WHERE component_appid = ?1"
	    " AND last_used > ?3 AND last_used >= ?2"
	    " ORDER BY 6, 2 LIMIT ?5",
	[STORE_AUTH_TOUCH] =
	    "UPDATE authorizers SET last_used = max(last_used, ?2)"
	    " WHERE appid = ?1",
	/*
	 * A row of api_get_authorizer_list asked for at ?5: a new authorizer,
	 * or a refresh token other than ours not rewritten since (a rotation
	 * of ours that raced the page wins); never a revoked row.
	 */
	[STORE_AUTH_LEARN] =
	    "INSERT INTO authorizers (appid, component_appid, refresh_token,"
	    " revoked, updated_at, last_used) VALUES (?1, ?2, ?3, 0, ?4, 0)"
	    " ON CONFLICT (appid) DO UPDATE SET"
	    " refresh_token = excluded.refresh_token,"
	    " updated_at = excluded.updated_at"
	    " WHERE authorizers.component_appid = excluded.component_appid"
	    " AND authorizers.revoked = 0"
	    " AND authorizers.refresh_token <> excluded.refresh_token"
	    " AND authorizers.updated_at < ?5",
	[STORE_WALK_SAVE] =
	    "INSERT OR REPLACE INTO authorizer_walks (component_appid,"
	    " next_offset, started_at) VALUES (?1, ?2, ?3)",
	[STORE_WALK_LOAD] =
	    "SELECT next_offset, started_at FROM authorizer_walks"
	    " WHERE component_appid = ?1",
	[STORE_WALK_DELETE] =
	    "DELETE FROM authorizer_walks WHERE component_appid = ?1",
	/* Counted on the index alone. */
	[STORE_AUTH_COUNT] =
	    "SELECT count(*), count(CASE WHEN last_used >= ?2 THEN 1 END)"
	    " FROM authorizers WHERE component_appid = ?1",
	[STORE_INTEGRITY] =
	    "PRAGMA integrity_check",
	[STORE_IDEM_PUT] =
	    "INSERT OR REPLACE INTO idempotency (uid, appid, key, created,"
	    " digest, code, attempts, errcode, errmsg, message, retryable,"
	    " retry_after, msgid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	    " ?10, ?11, ?12, ?13)",
	[STORE_IDEM_LOAD] =
	    "SELECT uid, appid, key, created, digest, code, attempts, errcode,"
	    " errmsg, message, retryable, retry_after, msgid FROM idempotency"
	    " WHERE created > ?1 ORDER BY created",
	[STORE_IDEM_EXPIRE] =
	    "DELETE FROM idempotency WHERE created <= ?1",
	[STORE_MARK_SAVE] =
	    "INSERT INTO event_marks (component_appid, subject, create_time,"
	    " info_type, digest) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " ON CONFLICT (component_appid, subject) DO UPDATE SET"
	    " create_time = excluded.create_time,"
	    " info_type = excluded.info_type, digest = excluded.digest",
	[STORE_MARK_LOAD] =
	    "SELECT create_time, info_type, digest FROM event_marks"
	    " WHERE component_appid = ?1 AND subject = ?2",
	[STORE_PENDING_SAVE] =
	    "INSERT INTO pending_authorizations (component_appid,"
	    " authorizer_appid, info_type, code, create_time, attempts)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	    " ON CONFLICT (component_appid, authorizer_appid) DO UPDATE SET"
	    " info_type = excluded.info_type, code = excluded.code,"
	    " create_time = excluded.create_time, attempts = excluded.attempts",
	[STORE_PENDING_DELETE] =
	    "DELETE FROM pending_authorizations WHERE component_appid = ?1"
	    " AND authorizer_appid = ?2",
	[STORE_PENDING_LIST] =
	    "SELECT authorizer_appid, info_type, code, create_time, attempts"
	    " FROM pending_authorizations WHERE component_appid = ?1"
	    " ORDER BY create_time LIMIT ?2",
	[STORE_PERMS_SAVE] =
	    "INSERT INTO authorizer_permissions (appid, ids) VALUES (?1, ?2)"
	    " ON CONFLICT (appid) DO UPDATE SET ids = excluded.ids",
	[STORE_PERMS_LOAD] =
	    "SELECT ids FROM authorizer_permissions WHERE appid = ?1",
	[STORE_CONSENT_PUT] =
	    "INSERT OR REPLACE INTO consents (appid, openid, tag, template_id,"
	    " scene, reference, state, recorded_at, spent_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[STORE_CONSENT_LOAD] =
	    "SELECT appid, openid, tag, template_id, scene, reference, state,"
	    " recorded_at, spent_at FROM consents WHERE recorded_at > ?1"
	    " ORDER BY recorded_at",
	[STORE_CONSENT_EXPIRE] =
	    "DELETE FROM consents WHERE recorded_at <= ?1",
	[STORE_CONSENT_FORGET] =
	    "DELETE FROM consents WHERE appid = ?1 AND openid = ?2",
};

/*
 * Schema migrations: entry i takes PRAGMA user_version from i to i + 1. Never
 * edit an entry once released; append a new one.
 */
static const char *store_migrations[] = {
	/* 1: the first schema. */
	"CREATE TABLE tokens ("
	" appid TEXT PRIMARY KEY NOT NULL,"
	" kind TEXT NOT NULL,"
	" token TEXT NOT NULL,"
	" expires_at INTEGER NOT NULL,"
	" refreshed_at INTEGER NOT NULL,"
	" calls_day INTEGER NOT NULL,"
	" calls_today INTEGER NOT NULL);"
	"CREATE TABLE tickets ("
	" component_appid TEXT PRIMARY KEY NOT NULL,"
	" ticket TEXT NOT NULL,"
	" received_at INTEGER NOT NULL);"
	"CREATE TABLE authorizers ("
	" appid TEXT PRIMARY KEY NOT NULL,"
	" component_appid TEXT NOT NULL,"
	" refresh_token TEXT NOT NULL,"
	" revoked INTEGER NOT NULL DEFAULT 0,"
	" updated_at INTEGER NOT NULL);"
	"CREATE INDEX authorizers_component"
	" ON authorizers (component_appid, appid);",
	/* 2: idempotency keys (idem.c). */
	"CREATE TABLE IF NOT EXISTS idempotency ("
	" uid INTEGER NOT NULL,"
	" appid TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" digest BLOB NOT NULL,"
	" code TEXT NOT NULL,"
	" attempts INTEGER NOT NULL,"
	" errcode INTEGER NOT NULL,"
	" errmsg TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" retryable INTEGER NOT NULL,"
	" retry_after INTEGER NOT NULL,"
	" PRIMARY KEY (uid, appid, key)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS idempotency_created"
	" ON idempotency (created);",
	/*
	 * 3: the CreateTime of the last event applied per component (subject
	 * "": the verify ticket) and per authorizer (authorization changes),
	 * authorization codes whose exchange is pending, and the permission
	 * sets (func_info) each authorizer granted.
	 */
	"CREATE TABLE IF NOT EXISTS event_marks ("
	" component_appid TEXT NOT NULL,"
	" subject TEXT NOT NULL,"
	" create_time INTEGER NOT NULL,"
	" info_type TEXT NOT NULL,"
	" digest TEXT NOT NULL,"
	" PRIMARY KEY (component_appid, subject)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS pending_authorizations ("
	" component_appid TEXT NOT NULL,"
	" authorizer_appid TEXT NOT NULL,"
	" info_type TEXT NOT NULL,"
	" code TEXT NOT NULL,"
	" create_time INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL,"
	" PRIMARY KEY (component_appid, authorizer_appid)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS authorizer_permissions ("
	" appid TEXT PRIMARY KEY NOT NULL,"
	" ids TEXT NOT NULL);",
	/*
	 * 4: WeChat's msgid of a delivered send (0: none), for repeats. A new
	 * table copied over rather than ALTER TABLE ADD COLUMN, so that the
	 * step can run again on a table that has the column.
	 */
	"CREATE TABLE idempotency_3 ("
	" uid INTEGER NOT NULL,"
	" appid TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" digest BLOB NOT NULL,"
	" code TEXT NOT NULL,"
	" attempts INTEGER NOT NULL,"
	" errcode INTEGER NOT NULL,"
	" errmsg TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" retryable INTEGER NOT NULL,"
	" retry_after INTEGER NOT NULL,"
	" msgid INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (uid, appid, key)) WITHOUT ROWID;"
	"INSERT INTO idempotency_3 (uid, appid, key, created, digest, code,"
	" attempts, errcode, errmsg, message, retryable, retry_after)"
	" SELECT uid, appid, key, created, digest, code, attempts, errcode,"
	" errmsg, message, retryable, retry_after FROM idempotency;"
	"DROP TABLE idempotency;"
	"ALTER TABLE idempotency_3 RENAME TO idempotency;"
	"CREATE INDEX IF NOT EXISTS idempotency_created"
	" ON idempotency (created);",
	/*
	 * 5: the consent ledger (consent.c): one row per consent page answer,
	 * keyed by the user and the signed link's tag so a reload is one row.
	 */
	"CREATE TABLE IF NOT EXISTS consents ("
	" appid TEXT NOT NULL,"
	" openid TEXT NOT NULL,"
	" tag TEXT NOT NULL,"
	" template_id TEXT NOT NULL,"
	" scene INTEGER NOT NULL,"
	" reference TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" recorded_at INTEGER NOT NULL,"
	" spent_at INTEGER NOT NULL,"
	" PRIMARY KEY (appid, openid, tag)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS consents_recorded"
	" ON consents (recorded_at);",
	/*
	 * 6: when an authorizer was last used (a send), so that start-up
	 * loads only the recently used (authorizer_idle) through an index.
	 * Copied over like 4; the last refresh stands in for the last use.
	 */
	"CREATE TABLE authorizers_6 ("
	" appid TEXT PRIMARY KEY NOT NULL,"
	" component_appid TEXT NOT NULL,"
	" refresh_token TEXT NOT NULL,"
	" revoked INTEGER NOT NULL DEFAULT 0,"
	" updated_at INTEGER NOT NULL,"
	" last_used INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO authorizers_6 (appid, component_appid, refresh_token,"
	" revoked, updated_at, last_used) SELECT appid, component_appid,"
	" refresh_token, revoked, updated_at, updated_at FROM authorizers;"
	"DROP TABLE authorizers;"
	"ALTER TABLE authorizers_6 RENAME TO authorizers;"
	"CREATE INDEX IF NOT EXISTS authorizers_component"
	" ON authorizers (component_appid, appid);"
	"CREATE INDEX IF NOT EXISTS authorizers_used"
	" ON authorizers (component_appid, last_used, appid);",
	/*
	 * 7: where a component's api_get_authorizer_list walk stands, so that
	 * a restart resumes it rather than starting over.
	 */
	"CREATE TABLE IF NOT EXISTS authorizer_walks ("
	" component_appid TEXT PRIMARY KEY NOT NULL,"
	" next_offset INTEGER NOT NULL,"
	" started_at INTEGER NOT NULL) WITHOUT ROWID;",
};

/* Stored names of enum cred_kind, so reordering the enum cannot remap rows. */
static const char *store_kind_names[] = {
	[CRED_OFFICIAL] = "official",
	[CRED_COMPONENT] = "component",
	[CRED_AUTHORIZER] = "authorizer",
	[CRED_JSAPI] = "jsapi_ticket",
};

static sqlite3		*store_db;
static sqlite3_stmt	*store_stmts[STORE_NQUERIES];
static char		*store_path;

/* Build a cause from sqlite's last error, with a hint if the file is corrupt. */
static char *
store_cause(const char *what)
{
	char	*cause;
	int	 code;

	/* The primary code: extended result codes are on. */
	code = store_db != NULL ? sqlite3_errcode(store_db) & 0xff : SQLITE_ERROR;
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
		xasprintf(&cause, "%s: %s: %s (the file is left in place: restore "
		    "it from a backup or move it aside)", store_path, what,
		    sqlite3_errmsg(store_db));
	} else {
		xasprintf(&cause, "%s: %s: %s", store_path, what,
		    store_db != NULL ? sqlite3_errmsg(store_db) : "not open");
	}
	return (cause);
}

/* Run SQL that returns no rows we need (open time only); 0 or -1 and a cause. */
static int
store_exec(const char *sql, const char *what, char **cause)
{
	char	*errmsg = NULL;

	if (sqlite3_exec(store_db, sql, NULL, NULL, &errmsg) == SQLITE_OK)
		return (0);
	sqlite3_free(errmsg);
	*cause = store_cause(what);
	return (-1);
}

/* Read the schema version (PRAGMA user_version); 0 or -1 and a cause. */
static int
store_user_version(int *value, char **cause)
{
	sqlite3_stmt	*stmt;
	const char	*sql = "PRAGMA user_version";
	int		 rc;

	if (sqlite3_prepare_v2(store_db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		*cause = store_cause("reading the schema version");
		return (-1);
	}
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		*cause = store_cause("reading the schema version");
		sqlite3_finalize(stmt);
		return (-1);
	}
	*value = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return (0);
}

/* Switch to WAL; it is not fatal if the filesystem cannot do it. */
static int
store_wal(char **cause)
{
	sqlite3_stmt		*stmt;
	const unsigned char	*mode;
	const char		*sql = "PRAGMA journal_mode = WAL";

	if (sqlite3_prepare_v2(store_db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		*cause = store_cause("opening");
		return (-1);
	}
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		*cause = store_cause("opening");
		sqlite3_finalize(stmt);
		return (-1);
	}
	mode = sqlite3_column_text(stmt, 0);
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		log_warnx("store: %s: journal mode is %s, not wal", store_path,
		    mode != NULL ? (const char *)mode : "unknown");
	}
	sqlite3_finalize(stmt);
	return (0);
}

/* Bring the schema to the newest version, all in one transaction. */
static int
store_migrate(char **cause)
{
	const int	 latest = (int)STORE_NITEMS(store_migrations);
	char		*sql;
	int		 version, i;

	if (store_user_version(&version, cause) != 0)
		return (-1);
	if (version == latest)
		return (0);
	if (version < 0 || version > latest) {
		xasprintf(cause, "%s: schema version %d is not one this wxpushd "
		    "knows (it knows up to %d)", store_path, version, latest);
		return (-1);
	}

	if (store_exec("BEGIN IMMEDIATE", "starting the migration", cause) != 0)
		return (-1);
	/* Read again under the write lock: another process may have migrated. */
	if (store_user_version(&version, cause) != 0)
		goto fail;
	if (version < 0 || version > latest) {
		xasprintf(cause, "%s: schema version %d is not one this wxpushd "
		    "knows (it knows up to %d)", store_path, version, latest);
		goto fail;
	}
	for (i = version; i < latest; i++) {
		if (store_exec(store_migrations[i], "migrating the schema",
		    cause) != 0)
			goto fail;
	}
	xasprintf(&sql, "PRAGMA user_version = %d", latest);
	if (store_exec(sql, "setting the schema version", cause) != 0) {
		free(sql);
		goto fail;
	}
	free(sql);
	if (store_exec("COMMIT", "committing the migration", cause) != 0)
		goto fail;
	if (version != latest) {
		log_info("store: %s: schema migrated from version %d to %d",
		    store_path, version, latest);
	}
	return (0);

fail:
	sqlite3_exec(store_db, "ROLLBACK", NULL, NULL, NULL);
	return (-1);
}

/* Create the state directory (0700) if it is missing; 0 or -1 and a cause. */
static int
store_mkdir(const char *dir, char **cause)
{
	struct stat	 sb;

	if (mkdir(dir, 0700) == 0) {
		/* The umask must not decide who can read the state. */
		if (chmod(dir, 0700) != 0) {
			xasprintf(cause, "%s: chmod: %s", dir, strerror(errno));
			return (-1);
		}
		log_info("store: created %s", dir);
		return (0);
	}
	if (errno != EEXIST) {
		xasprintf(cause, "%s: mkdir: %s", dir, strerror(errno));
		return (-1);
	}
	if (stat(dir, &sb) != 0) {
		xasprintf(cause, "%s: %s", dir, strerror(errno));
		return (-1);
	}
	if (!S_ISDIR(sb.st_mode)) {
		xasprintf(cause, "%s: not a directory", dir);
		return (-1);
	}
	/*
	 * Anyone else who can write here can plant the database files (or
	 * links in their place) and read back the tokens stored in them.
	 */
	if (sb.st_uid != geteuid()) {
		xasprintf(cause, "state_dir %s belongs to uid %u, not to the "
		    "daemon's user (uid %u): run chown %u %s (or give the "
		    "daemon a state_dir of its own)", dir,
		    (unsigned)sb.st_uid, (unsigned)geteuid(),
		    (unsigned)geteuid(), dir);
		return (-1);
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		xasprintf(cause, "state_dir %s is mode %04o, writable by group "
		    "or others, who could plant files in it: run chmod 700 %s",
		    dir, (unsigned)(sb.st_mode & 07777), dir);
		return (-1);
	}
	return (0);
}

/*
 * Check that an existing file is a regular file and take away what group and
 * others may do with it: it holds refresh tokens. A missing file is an error
 * only if it must exist.
 */
static int
store_tighten(const char *path, int must_exist, char **cause)
{
	struct stat	 sb;
	int		 fd;

	/*
	 * O_NONBLOCK: a FIFO in its place must not hang the daemon.
	 * O_NOFOLLOW: a link must not make the daemon use (or chmod) a file
	 * elsewhere.
	 */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if (errno == ENOENT && !must_exist)
			return (0);
		if (errno == ELOOP)
			xasprintf(cause, "%s is a symbolic link: remove it "
			    "(the store's files are never links)", path);
		else
			xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &sb) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return (-1);
	}
	if (!S_ISREG(sb.st_mode)) {
		xasprintf(cause, "%s: not a regular file", path);
		close(fd);
		return (-1);
	}
	/* Someone else's file: they could read back what is stored. */
	if (sb.st_uid != geteuid()) {
		xasprintf(cause, "%s belongs to uid %u, not to the daemon's "
		    "user (uid %u): someone may have planted it; remove it, or "
		    "run chown %u %s if it is the daemon's own", path,
		    (unsigned)sb.st_uid, (unsigned)geteuid(),
		    (unsigned)geteuid(), path);
		close(fd);
		return (-1);
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		if (fchmod(fd, sb.st_mode & 0700) == 0) {
			log_warnx("store: %s was mode %04o, now %04o", path,
			    (unsigned)(sb.st_mode & 07777),
			    (unsigned)(sb.st_mode & 0700));
		} else {
			log_warnx("store: %s is mode %04o, unchangeable: %s",
			    path, (unsigned)(sb.st_mode & 07777),
			    strerror(errno));
		}
	}
	close(fd);
	return (0);
}

/*
 * Create the database file as 0600 before sqlite sees it (sqlite would use
 * 0644 less the umask, and gives its -wal and -shm files the mode of the
 * database), or check an existing one and the -wal and -shm left by a crash.
 */
static int
store_create_file(const char *dir, char **cause)
{
	const char	*suffixes[] = { "-wal", "-shm" };
	char		*path;
	size_t		 i;
	int		 fd, dfd, rc;

	fd = open(store_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd != -1) {
		if (fchmod(fd, 0600) != 0) {
			xasprintf(cause, "%s: fchmod: %s", store_path,
			    strerror(errno));
			close(fd);
			return (-1);
		}
		close(fd);
		/* Make the new name itself durable. */
		if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
			fsync(dfd);
			close(dfd);
		}
		return (0);
	}
	if (errno != EEXIST) {
		xasprintf(cause, "%s: %s", store_path, strerror(errno));
		return (-1);
	}

	if (store_tighten(store_path, 1, cause) != 0)
		return (-1);
	for (i = 0; i < STORE_NITEMS(suffixes); i++) {
		xasprintf(&path, "%s%s", store_path, suffixes[i]);
		rc = store_tighten(path, 0, cause);
		free(path);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

/* Open (creating if needed) state_dir/wxpushd.db; 0, or -1 and a cause. */
int
store_open(const char *state_dir, char **cause)
{
	size_t	i;

	*cause = NULL;
	if (store_db != NULL) {
		xasprintf(cause, "%s: store already open", store_path);
		return (-1);
	}
	if (state_dir == NULL || *state_dir == '\0') {
		*cause = xstrdup("store: no state directory");
		return (-1);
	}
	xasprintf(&store_path, "%s/%s", state_dir, STORE_FILE);

	if (store_mkdir(state_dir, cause) != 0)
		goto fail;
	if (store_create_file(state_dir, cause) != 0)
		goto fail;

	/* The file exists now: never let sqlite create (or replace) one. */
	if (sqlite3_open_v2(store_path, &store_db, SQLITE_OPEN_READWRITE,
	    NULL) != SQLITE_OK) {
		*cause = store_cause("opening");
		goto fail;
	}
	sqlite3_extended_result_codes(store_db, 1);
	sqlite3_busy_timeout(store_db, STORE_BUSY_TIMEOUT);
	sqlite3_db_config(store_db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

	/* The first statement to read the file: a corrupt one fails here. */
	if (store_wal(cause) != 0)
		goto fail;
	/* A commit is on disk when it returns: tokens are saved before use. */
	if (store_exec("PRAGMA synchronous = FULL", "setting synchronous",
	    cause) != 0)
		goto fail;
	if (store_exec("PRAGMA foreign_keys = ON", "enabling foreign keys",
	    cause) != 0)
		goto fail;
	/* Replaced refresh tokens do not linger in free space. */
	if (store_exec("PRAGMA secure_delete = ON", "enabling secure_delete",
	    cause) != 0)
		goto fail;
	if (store_migrate(cause) != 0)
		goto fail;

	for (i = 0; i < STORE_NQUERIES; i++) {
		if (sqlite3_prepare_v3(store_db, store_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &store_stmts[i], NULL) !=
		    SQLITE_OK) {
			*cause = store_cause("preparing a query");
			goto fail;
		}
	}
	log_debug("store: opened %s", store_path);
	return (0);

fail:
	store_close();
	return (-1);
}

/* Finalize every query and close the database; safe to call twice. */
void
store_close(void)
{
	size_t	i;

	for (i = 0; i < STORE_NQUERIES; i++) {
		sqlite3_finalize(store_stmts[i]);
		store_stmts[i] = NULL;
	}
	if (store_db != NULL) {
		if (sqlite3_close(store_db) != SQLITE_OK) {
			log_warnx("store: %s: closing: %s", store_path,
			    sqlite3_errmsg(store_db));
		}
		store_db = NULL;
	}
	free(store_path);
	store_path = NULL;
}

/* Whether the store is open; logs the caller's request if not. */
static int
store_ready(const char *what, const char *appid)
{
	if (store_db != NULL)
		return (1);
	log_warnx("store: %s %s: store is not open", what, appid);
	return (0);
}

/* Whether s is a string of 1 to max bytes. */
static int
store_str_ok(const char *s, size_t max)
{
	size_t	len;

	if (s == NULL)
		return (0);
	len = strnlen(s, max + 1);
	return (len >= 1 && len <= max);
}

/* Whether an appid from a caller is usable as a key. */
static int
store_appid_ok(const char *appid)
{
	return (store_str_ok(appid, WX_APPID_MAX));
}

/* Step a write statement to completion, then reset it; 0 or -1 (logged). */
static int
store_step_done(sqlite3_stmt *stmt, const char *what, const char *appid)
{
	int	rc;

	rc = sqlite3_step(stmt);
	if (rc != SQLITE_DONE) {
		log_warnx("store: saving %s for %s: %s", what, appid,
		    sqlite3_errmsg(store_db));
	}
	sqlite3_reset(stmt);
	/* Drop the pointers to the caller's token buffers. */
	sqlite3_clear_bindings(stmt);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* Finish a read statement. */
static void
store_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

/*
 * Copy a text column into buf (size bytes); -1 if it is not text, is longer
 * than size - 1 (refused, never truncated) or holds a NUL.
 */
static int
store_column_text(sqlite3_stmt *stmt, int col, char *buf, size_t size)
{
	const unsigned char	*s;
	int			 n;

	if (sqlite3_column_type(stmt, col) != SQLITE_TEXT)
		return (-1);
	s = sqlite3_column_text(stmt, col);
	n = sqlite3_column_bytes(stmt, col);
	if (s == NULL || n < 0 || (size_t)n >= size ||
	    memchr(s, '\0', (size_t)n) != NULL)
		return (-1);
	memcpy(buf, s, (size_t)n);
	buf[n] = '\0';
	return (0);
}

/* Read an integer column that must fit an int in [min, max]; 0 or -1. */
static int
store_column_int(sqlite3_stmt *stmt, int col, int min, int max, int *out)
{
	sqlite3_int64	v;

	if (sqlite3_column_type(stmt, col) != SQLITE_INTEGER)
		return (-1);
	v = sqlite3_column_int64(stmt, col);
	if (v < min || v > max)
		return (-1);
	*out = (int)v;
	return (0);
}

/* Read an integer column as a time_t; 0 or -1. */
static int
store_column_time(sqlite3_stmt *stmt, int col, time_t *out)
{
	sqlite3_int64	v;

	if (sqlite3_column_type(stmt, col) != SQLITE_INTEGER)
		return (-1);
	v = sqlite3_column_int64(stmt, col);
	if ((sqlite3_int64)(time_t)v != v)
		return (-1);
	*out = (time_t)v;
	return (0);
}

/* Save (insert or replace) an appid's access token and call counters; 0 or -1. */
int
store_token_save(const struct store_token *st)
{
	sqlite3_stmt	*stmt;
	size_t		 toklen;

	if (!store_appid_ok(st->appid) ||
	    strnlen(st->appid, sizeof st->appid) == sizeof st->appid) {
		log_warnx("store: saving token: bad appid");
		return (-1);
	}
	if (!store_ready("saving token for", st->appid))
		return (-1);
	if ((unsigned)st->kind >= STORE_NITEMS(store_kind_names)) {
		log_warnx("store: saving token for %s: bad kind %d", st->appid,
		    (int)st->kind);
		return (-1);
	}
	toklen = strnlen(st->token, sizeof st->token);
	if (toklen == sizeof st->token) {
		log_warnx("store: saving token for %s: token not terminated",
		    st->appid);
		return (-1);
	}

	stmt = store_stmts[STORE_TOKEN_SAVE];
	if (sqlite3_bind_text(stmt, 1, st->appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, store_kind_names[st->kind], -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, st->token, (int)toklen,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, st->expires_at) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 5, st->refreshed_at) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 6, st->calls_day) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 7, st->calls_today) != SQLITE_OK) {
		log_warnx("store: saving token for %s: %s", st->appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "token", st->appid));
}

/* Load an appid's token into st: 1 found, 0 not found, -1 error (logged). */
int
store_token_load(const char *appid, struct store_token *st)
{
	sqlite3_stmt	*stmt;
	char		 kind[16];
	size_t		 i;
	int		 rc, found = -1;

	if (!store_appid_ok(appid)) {
		log_warnx("store: loading token: bad appid");
		return (-1);
	}
	if (!store_ready("loading token for", appid))
		return (-1);
	memset(st, 0, sizeof *st);

	stmt = store_stmts[STORE_TOKEN_LOAD];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) != SQLITE_OK) {
		log_warnx("store: loading token for %s: %s", appid,
		    sqlite3_errmsg(store_db));
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		found = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_warnx("store: loading token for %s: %s", appid,
		    sqlite3_errmsg(store_db));
		goto out;
	}

	memcpy(st->appid, appid, strlen(appid) + 1);	/* checked: fits */
	if (store_column_text(stmt, 0, kind, sizeof kind) != 0)
		goto corrupt;
	for (i = 0; i < STORE_NITEMS(store_kind_names); i++) {
		if (strcmp(kind, store_kind_names[i]) == 0)
			break;
	}
	if (i == STORE_NITEMS(store_kind_names))
		goto corrupt;
	st->kind = (enum cred_kind)i;
	if (store_column_text(stmt, 1, st->token, sizeof st->token) != 0 ||
	    store_column_time(stmt, 2, &st->expires_at) != 0 ||
	    store_column_time(stmt, 3, &st->refreshed_at) != 0 ||
	    store_column_int(stmt, 4, INT_MIN, INT_MAX, &st->calls_day) != 0 ||
	    store_column_int(stmt, 5, INT_MIN, INT_MAX, &st->calls_today) != 0)
		goto corrupt;
	found = 1;
	goto out;

corrupt:
	log_warnx("store: token row for %s is corrupt; ignored", appid);
	explicit_bzero(st, sizeof *st);
out:
	store_done(stmt);
	return (found);
}

/* Save the latest component_verify_ticket of a component; 0 or -1. */
int
store_ticket_save(const char *component_appid, const char *ticket,
    time_t received_at)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(component_appid)) {
		log_warnx("store: saving ticket: bad component appid");
		return (-1);
	}
	if (!store_ready("saving ticket for", component_appid))
		return (-1);
	if (!store_str_ok(ticket, STORE_TICKET_MAX)) {
		log_warnx("store: saving ticket for %s: empty or longer than %d",
		    component_appid, STORE_TICKET_MAX);
		return (-1);
	}

	stmt = store_stmts[STORE_TICKET_SAVE];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, ticket, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, received_at) != SQLITE_OK) {
		log_warnx("store: saving ticket for %s: %s", component_appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "ticket", component_appid));
}

/*
 * Copy a component's ticket into buf (size bytes, refused if too small) and
 * its time into received_at (if not NULL): 1 found, 0 not found, -1 error.
 */
int
store_ticket_load(const char *component_appid, char *buf, size_t size,
    time_t *received_at)
{
	sqlite3_stmt	*stmt;
	char		 ticket[STORE_TICKET_MAX + 1];
	time_t		 t;
	int		 rc, found = -1;

	if (!store_appid_ok(component_appid)) {
		log_warnx("store: loading ticket: bad component appid");
		return (-1);
	}
	if (!store_ready("loading ticket for", component_appid))
		return (-1);
	if (size > 0)
		buf[0] = '\0';

	stmt = store_stmts[STORE_TICKET_LOAD];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK) {
		log_warnx("store: loading ticket for %s: %s", component_appid,
		    sqlite3_errmsg(store_db));
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		found = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_warnx("store: loading ticket for %s: %s", component_appid,
		    sqlite3_errmsg(store_db));
		goto out;
	}
	if (store_column_text(stmt, 0, ticket, sizeof ticket) != 0 ||
	    ticket[0] == '\0' || store_column_time(stmt, 1, &t) != 0) {
		log_warnx("store: ticket row for %s is corrupt; ignored",
		    component_appid);
		goto out;
	}
	if (strlen(ticket) >= size) {
		log_warnx("store: loading ticket for %s: buffer of %zu bytes "
		    "is too small", component_appid, size);
		goto out;
	}
	memcpy(buf, ticket, strlen(ticket) + 1);
	if (received_at != NULL)
		*received_at = t;
	found = 1;

out:
	explicit_bzero(ticket, sizeof ticket);
	store_done(stmt);
	return (found);
}

/* Save (insert or replace) an authorizer and its refresh token; 0 or -1. */
int
store_authorizer_save(const struct store_authorizer *sa)
{
	sqlite3_stmt	*stmt;
	size_t		 toklen;

	if (!store_appid_ok(sa->appid) ||
	    strnlen(sa->appid, sizeof sa->appid) == sizeof sa->appid) {
		log_warnx("store: saving authorizer: bad appid");
		return (-1);
	}
	if (!store_ready("saving authorizer", sa->appid))
		return (-1);
	if (!store_appid_ok(sa->component_appid) ||
	    strnlen(sa->component_appid, sizeof sa->component_appid) ==
	    sizeof sa->component_appid) {
		log_warnx("store: saving authorizer %s: bad component appid",
		    sa->appid);
		return (-1);
	}
	toklen = strnlen(sa->refresh_token, sizeof sa->refresh_token);
	if (toklen == sizeof sa->refresh_token) {
		log_warnx("store: saving authorizer %s: refresh token not "
		    "terminated", sa->appid);
		return (-1);
	}

	stmt = store_stmts[STORE_AUTH_SAVE];
	if (sqlite3_bind_text(stmt, 1, sa->appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, sa->component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, sa->refresh_token, (int)toklen,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 4, sa->revoked != 0) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 5, sa->updated_at) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 6, sa->last_used) != SQLITE_OK) {
		log_warnx("store: saving authorizer %s: %s", sa->appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "authorizer", sa->appid));
}

/* Decode a row of STORE_AUTH_LOAD or STORE_AUTH_LIST into sa; 0 or -1. */
static int
store_authorizer_row(sqlite3_stmt *stmt, struct store_authorizer *sa)
{
	memset(sa, 0, sizeof *sa);
	if (store_column_text(stmt, 0, sa->component_appid,
	    sizeof sa->component_appid) != 0 || sa->component_appid[0] == '\0' ||
	    store_column_text(stmt, 1, sa->appid, sizeof sa->appid) != 0 ||
	    sa->appid[0] == '\0' ||
	    store_column_text(stmt, 2, sa->refresh_token,
	    sizeof sa->refresh_token) != 0 ||
	    store_column_int(stmt, 3, 0, 1, &sa->revoked) != 0 ||
	    store_column_time(stmt, 4, &sa->updated_at) != 0 ||
	    store_column_time(stmt, 5, &sa->last_used) != 0) {
		explicit_bzero(sa, sizeof *sa);
		return (-1);
	}
	return (0);
}

/* Load one authorizer by its appid: 1 found, 0 not found, -1 error (logged). */
int
store_authorizer_load(const char *appid, struct store_authorizer *sa)
{
	sqlite3_stmt	*stmt;
	int		 rc, found = -1;

	if (!store_appid_ok(appid)) {
		log_warnx("store: loading authorizer: bad appid");
		return (-1);
	}
	if (!store_ready("loading authorizer", appid))
		return (-1);
	memset(sa, 0, sizeof *sa);

	stmt = store_stmts[STORE_AUTH_LOAD];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) != SQLITE_OK) {
		log_warnx("store: loading authorizer %s: %s", appid,
		    sqlite3_errmsg(store_db));
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		found = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_warnx("store: loading authorizer %s: %s", appid,
		    sqlite3_errmsg(store_db));
		goto out;
	}
	if (store_authorizer_row(stmt, sa) != 0) {
		log_warnx("store: authorizer row for %s is corrupt; ignored",
		    appid);
		goto out;
	}
	found = 1;

out:
	store_done(stmt);
	return (found);
}

/*
 * The component of each stored authorizer among appids[0..n-1]: cb(appid,
 * component_appid, arg) for each row there is, in no particular order. Reads
 * only those two columns, STORE_AUTH_BATCH appids a query, by primary key;
 * cb runs inside the query and must not use the store. 0, or -1 if a query
 * failed (cb may have run for some).
 */
int
store_authorizer_components(const char *const *appids, size_t n,
    void (*cb)(const char *, const char *, void *), void *arg)
{
	sqlite3_stmt	*stmt;
	char		 appid[WX_APPID_MAX + 1], comp[WX_APPID_MAX + 1];
	size_t		 i, k;
	int		 rc = SQLITE_DONE, slot;

	if (!store_ready("loading authorizers' components", ""))
		return (-1);
	stmt = store_stmts[STORE_AUTH_COMPONENTS];
	for (i = 0; i < n; i = k) {
		slot = 0;
		for (k = i; k < n && slot < STORE_AUTH_BATCH; k++) {
			if (!store_appid_ok(appids[k]))
				continue;
			if ((rc = sqlite3_bind_text(stmt, ++slot, appids[k],
			    -1, SQLITE_STATIC)) != SQLITE_OK)
				break;
			rc = SQLITE_DONE;
		}
		if (rc != SQLITE_DONE) {
			store_done(stmt);
			break;
		}
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			if (store_column_text(stmt, 0, appid, sizeof appid) ||
			    store_column_text(stmt, 1, comp, sizeof comp)) {
				log_warnx("store: an authorizer row is "
				    "corrupt; ignored");
				continue;
			}
			cb(appid, comp, arg);
		}
		store_done(stmt);
		if (rc != SQLITE_DONE)
			break;
	}
	if (rc != SQLITE_DONE) {
		log_warnx("store: loading authorizers' components: %s",
		    sqlite3_errmsg(store_db));
		return (-1);
	}
	return (0);
}

/*
 * Call cb for every authorizer of a component (active: only those used at or
 * after since, in (last_used, appid) order; else all, in appid order), until
 * it returns non-zero. Rows are read STORE_CHUNK at a time and cb runs with no
 * query open, so it may save (even the row it is given) or nest a foreach.
 * A corrupt row is logged and skipped. Returns 0 when all were visited, cb's
 * non-zero value if it stopped, or -1 on a database error.
 */
static int
store_authorizer_scan(const char *component_appid, int active, time_t since,
    const char *from, size_t max,
    int (*cb)(const struct store_authorizer *, void *), void *arg)
{
	sqlite3_stmt		*stmt;
	sqlite3_value		*after = NULL;
	sqlite3_int64		 after_used = 0;
	struct store_authorizer	*rows;
	char			 appid[WX_APPID_MAX + 1];
	size_t			 n, seen, i, visited = 0, chunk;
	int			 rc, ret = 0, bad;

	if (!store_appid_ok(component_appid)) {
		log_warnx("store: listing authorizers: bad component appid");
		return (-1);
	}
	if (!store_ready("listing authorizers of", component_appid))
		return (-1);

	stmt = store_stmts[active ? STORE_AUTH_ACTIVE : STORE_AUTH_LIST];
	rows = xcalloc(STORE_CHUNK, sizeof *rows);
	for (;;) {
		chunk = max != 0 && max - visited < STORE_CHUNK ?
		    max - visited : STORE_CHUNK;
		bad = sqlite3_bind_text(stmt, 1, component_appid, -1,
		    SQLITE_STATIC) != SQLITE_OK;
		if (active)
			bad = bad ||
			    sqlite3_bind_int64(stmt, 2, since) != SQLITE_OK ||
			    sqlite3_bind_int64(stmt, 3, after_used) != SQLITE_OK ||
			    (after == NULL ?
			    sqlite3_bind_text(stmt, 4, "", 0, SQLITE_STATIC) :
			    sqlite3_bind_value(stmt, 4, after)) != SQLITE_OK ||
			    sqlite3_bind_int(stmt, 5, (int)chunk) != SQLITE_OK;
		else
			bad = bad || (after == NULL ?
			    sqlite3_bind_text(stmt, 2, from, -1,
			    SQLITE_STATIC) :
			    sqlite3_bind_value(stmt, 2, after)) != SQLITE_OK ||
			    sqlite3_bind_int(stmt, 3, (int)chunk) != SQLITE_OK;
		if (bad) {
			log_warnx("store: listing authorizers of %s: %s",
			    component_appid, sqlite3_errmsg(store_db));
			store_done(stmt);
			ret = -1;
			break;
		}

		n = seen = 0;
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			seen++;
			/* Page on the raw value: a corrupt appid moves on too. */
			sqlite3_value_free(after);
			if ((after = sqlite3_value_dup(sqlite3_column_value(stmt,
			    1))) == NULL)
				fatalx("store: out of memory");
			after_used = sqlite3_column_int64(stmt, 5);
			if (store_authorizer_row(stmt, &rows[n]) == 0)
				n++;
			else if (store_column_text(stmt, 1, appid,
			    sizeof appid) == 0) {
				log_warnx("store: authorizer row for %s is "
				    "corrupt; skipped", appid);
			} else {
				log_warnx("store: an authorizer row of %s is "
				    "corrupt; skipped", component_appid);
			}
		}
		if (rc != SQLITE_DONE) {
			log_warnx("store: listing authorizers of %s: %s",
			    component_appid, sqlite3_errmsg(store_db));
			store_done(stmt);
			ret = -1;
			break;
		}
		store_done(stmt);

		for (i = 0; i < n; i++) {
			if ((ret = cb(&rows[i], arg)) != 0)
				goto out;
		}
		visited += seen;
		if (seen < chunk || (max != 0 && visited >= max))
			break;
	}

out:
	sqlite3_value_free(after);
	freezero(rows, STORE_CHUNK * sizeof *rows);
	return (ret);
}

/* Every authorizer of a component, in appid order (see above). */
int
store_authorizer_foreach(const char *component_appid,
    int (*cb)(const struct store_authorizer *, void *), void *arg)
{
	return (store_authorizer_scan(component_appid, 0, 0, "", 0, cb, arg));
}

/*
 * At most max authorizers of a component after appid from ("": the first),
 * in appid order: a page of status (see above).
 */
int
store_authorizer_page(const char *component_appid, const char *from,
    size_t max, int (*cb)(const struct store_authorizer *, void *), void *arg)
{
	return (store_authorizer_scan(component_appid, 0, 0, from, max, cb,
	    arg));
}

/* The authorizers of a component used at or after since (see above). */
int
store_authorizer_foreach_used(const char *component_appid, time_t since,
    int (*cb)(const struct store_authorizer *, void *), void *arg)
{
	return (store_authorizer_scan(component_appid, 1, since, "", 0, cb,
	    arg));
}

/* Record that an authorizer was used at (never moving back); 0 or -1. */
int
store_authorizer_touch(const char *appid, time_t at)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(appid) || !store_ready("touching authorizer", appid))
		return (-1);
	stmt = store_stmts[STORE_AUTH_TOUCH];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 2, at) != SQLITE_OK) {
		log_warnx("store: touching authorizer %s: %s", appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "authorizer", appid));
}

/*
 * An authorizer as api_get_authorizer_list (asked at asked) lists it: a row
 * for a new one, its refresh token for a stored one (see STORE_AUTH_LEARN).
 * 1 if the store changed, 0 if not, -1 on error.
 */
int
store_authorizer_learn(const char *component_appid, const char *appid,
    const char *refresh_token, time_t now, time_t asked)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(appid) || !store_appid_ok(component_appid) ||
	    !store_str_ok(refresh_token, WX_TOKEN_MAX) ||
	    !store_ready("learning authorizer", appid))
		return (-1);
	stmt = store_stmts[STORE_AUTH_LEARN];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, refresh_token, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, now) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 5, asked) != SQLITE_OK) {
		log_warnx("store: learning authorizer %s: %s", appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	if (store_step_done(stmt, "authorizer", appid) != 0)
		return (-1);
	return (sqlite3_changes(store_db) > 0);
}

/*
 * Where a component's api_get_authorizer_list walk stands: the next offset
 * and when the walk started. Saved after every page, deleted at its end.
 */
int
store_walk_save(const char *component_appid, int next_offset,
    time_t started_at)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(component_appid) || next_offset < 0 ||
	    !store_ready("saving the walk of", component_appid))
		return (-1);
	stmt = store_stmts[STORE_WALK_SAVE];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 2, next_offset) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, started_at) != SQLITE_OK) {
		log_warnx("store: saving the walk of %s: %s", component_appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "the walk", component_appid));
}

/* The walk of a component: 1 found (offset, started_at), 0 none, -1 error. */
int
store_walk_load(const char *component_appid, int *next_offset,
    time_t *started_at)
{
	sqlite3_stmt	*stmt;
	int		 rc, found = -1;

	*next_offset = 0;
	*started_at = 0;
	if (!store_appid_ok(component_appid) ||
	    !store_ready("loading the walk of", component_appid))
		return (-1);
	stmt = store_stmts[STORE_WALK_LOAD];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK)
		goto out;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		found = 0;
	else if (rc == SQLITE_ROW) {
		if (store_column_int(stmt, 0, 0, INT_MAX, next_offset) != 0 ||
		    store_column_time(stmt, 1, started_at) != 0) {
			log_warnx("store: the walk of %s is corrupt; ignored",
			    component_appid);
			*next_offset = 0;
			found = 0;
		} else
			found = 1;
	}
out:
	if (found == -1)
		log_warnx("store: loading the walk of %s: %s", component_appid,
		    sqlite3_errmsg(store_db));
	store_done(stmt);
	return (found);
}

/* The walk of a component ended; 0 or -1. */
int
store_walk_delete(const char *component_appid)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(component_appid) ||
	    !store_ready("ending the walk of", component_appid))
		return (-1);
	stmt = store_stmts[STORE_WALK_DELETE];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "the walk", component_appid));
}

/*
 * How many authorizers a component has stored, and how many of them were
 * used at or after since; 0 or -1.
 */
int
store_authorizer_count(const char *component_appid, time_t since,
    uint64_t *total, uint64_t *used)
{
	sqlite3_stmt	*stmt;
	int		 r = -1;

	*total = *used = 0;
	if (!store_appid_ok(component_appid) ||
	    !store_ready("counting authorizers of", component_appid))
		return (-1);
	stmt = store_stmts[STORE_AUTH_COUNT];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_int64(stmt, 2, since) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW) {
		*total = (uint64_t)sqlite3_column_int64(stmt, 0);
		*used = (uint64_t)sqlite3_column_int64(stmt, 1);
		r = 0;
	} else
		log_warnx("store: counting authorizers of %s: %s",
		    component_appid, sqlite3_errmsg(store_db));
	store_done(stmt);
	return (r);
}

/* Run PRAGMA integrity_check: 0 if "ok", else -1 and a cause. */
int
store_integrity_check(char **cause)
{
	sqlite3_stmt		*stmt;
	const unsigned char	*s;
	char			*first = NULL;
	int			 rc, nrows = 0, ok = 0;

	*cause = NULL;
	if (store_db == NULL) {
		*cause = xstrdup("store: integrity check: store is not open");
		return (-1);
	}
	stmt = store_stmts[STORE_INTEGRITY];
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		s = sqlite3_column_text(stmt, 0);
		if (nrows++ == 0) {
			if (s != NULL && strcmp((const char *)s, "ok") == 0)
				ok = 1;
			first = xstrndup(s != NULL ? (const char *)s : "?",
			    STORE_INTEGRITY_MAX);
		}
	}
	if (rc != SQLITE_DONE) {
		*cause = store_cause("integrity check");
		store_done(stmt);
		free(first);
		return (-1);
	}
	store_done(stmt);
	if (ok && nrows == 1) {
		free(first);
		return (0);
	}
	if (nrows > 1) {
		xasprintf(cause, "%s: integrity check: %s (and %d more)",
		    store_path, first != NULL ? first : "?", nrows - 1);
	} else {
		xasprintf(cause, "%s: integrity check: %s", store_path,
		    first != NULL ? first : "no answer");
	}
	free(first);
	return (-1);
}

/*
 * The durability setting in force on the store's connection, as PRAGMA
 * synchronous reads it back: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA; -1 if the store
 * is not open or the pragma fails. What docs/operations.md promises (FULL
 * between batches) is checked with it.
 */
int
store_synchronous(void)
{
	sqlite3_stmt	*stmt;
	int		 v = -1;

	if (store_db == NULL)
		return (-1);
	if (sqlite3_prepare_v2(store_db, "PRAGMA synchronous", -1, &stmt,
	    NULL) != SQLITE_OK)
		return (-1);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return (v);
}

/*
 * Begin a batch of writes in one transaction (idempotency keys written behind
 * the sends, the state saved at a stop). Its commit does not wait for fsync
 * (synchronous NORMAL in WAL mode): a crash of the daemon loses nothing
 * committed, a crash of the machine may lose the last batches. Single saves
 * (a new token) keep synchronous FULL. 0 or -1 (logged).
 */
int
store_batch_begin(void)
{
	char	*errmsg = NULL;

	if (!store_ready("starting", "a batch"))
		return (-1);
	if (sqlite3_exec(store_db, "PRAGMA synchronous = NORMAL; BEGIN", NULL,
	    NULL, &errmsg) != SQLITE_OK) {
		log_warnx("store: starting a batch: %s",
		    errmsg != NULL ? errmsg : sqlite3_errmsg(store_db));
		sqlite3_free(errmsg);
		sqlite3_exec(store_db, "PRAGMA synchronous = FULL", NULL, NULL,
		    NULL);
		return (-1);
	}
	return (0);
}

/* End a batch: commit if ok and the commit works, else roll back; 0 or -1. */
int
store_batch_end(int ok)
{
	int	 rc = -1;

	if (store_db == NULL)
		return (-1);
	if (ok) {
		if (sqlite3_exec(store_db, "COMMIT", NULL, NULL, NULL) ==
		    SQLITE_OK)
			rc = 0;
		else
			log_warnx("store: committing a batch: %s",
			    sqlite3_errmsg(store_db));
	}
	if (rc != 0)
		sqlite3_exec(store_db, "ROLLBACK", NULL, NULL, NULL);
	if (sqlite3_exec(store_db, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		log_warnx("store: restoring synchronous: %s",
		    sqlite3_errmsg(store_db));
	return (rc);
}

/* Save one idempotency key and its outcome, inside a batch; 0 or -1. */
int
store_idem_put(const struct store_idem *si)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(si->appid) ||
	    !store_str_ok(si->key, sizeof si->key - 1) ||
	    !store_str_ok(si->code, sizeof si->code - 1) ||
	    strnlen(si->errmsg, sizeof si->errmsg) == sizeof si->errmsg ||
	    strnlen(si->message, sizeof si->message) == sizeof si->message) {
		log_warnx("store: saving an idempotency key: bad row");
		return (-1);
	}
	if (!store_ready("saving idempotency key for", si->appid))
		return (-1);
	stmt = store_stmts[STORE_IDEM_PUT];
	if (sqlite3_bind_int64(stmt, 1, si->uid) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, si->appid, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, si->key, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 4, si->created) != SQLITE_OK ||
	    sqlite3_bind_blob(stmt, 5, si->digest, sizeof si->digest,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 6, si->code, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int(stmt, 7, si->attempts) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 8, si->errcode) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 9, si->errmsg, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 10, si->message, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int(stmt, 11, si->retryable != 0) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 12, si->retry_after) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 13, si->msgid) != SQLITE_OK) {
		log_warnx("store: saving idempotency key for %s: %s",
		    si->appid, sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "idempotency key", si->appid));
}

/* Forget idempotency keys created at or before before; 0 or -1 (logged). */
int
store_idem_expire(time_t before)
{
	sqlite3_stmt	*stmt;

	if (!store_ready("expiring", "idempotency keys"))
		return (-1);
	stmt = store_stmts[STORE_IDEM_EXPIRE];
	if (sqlite3_bind_int64(stmt, 1, before) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "expired idempotency keys", "all"));
}

/* Decode a row of STORE_IDEM_LOAD into si; 0 or -1. */
static int
store_idem_row(sqlite3_stmt *stmt, struct store_idem *si)
{
	sqlite3_int64	 v;
	const void	*blob;

	memset(si, 0, sizeof *si);
	if (sqlite3_column_type(stmt, 0) != SQLITE_INTEGER)
		return (-1);
	v = sqlite3_column_int64(stmt, 0);
	if (v < 0 || v > UINT32_MAX)
		return (-1);
	si->uid = (uint32_t)v;
	if (store_column_text(stmt, 1, si->appid, sizeof si->appid) != 0 ||
	    si->appid[0] == '\0' ||
	    store_column_text(stmt, 2, si->key, sizeof si->key) != 0 ||
	    si->key[0] == '\0' ||
	    store_column_time(stmt, 3, &si->created) != 0 ||
	    sqlite3_column_type(stmt, 4) != SQLITE_BLOB ||
	    sqlite3_column_bytes(stmt, 4) != (int)sizeof si->digest ||
	    (blob = sqlite3_column_blob(stmt, 4)) == NULL ||
	    store_column_text(stmt, 5, si->code, sizeof si->code) != 0 ||
	    store_column_int(stmt, 6, 0, INT_MAX, &si->attempts) != 0 ||
	    sqlite3_column_type(stmt, 7) != SQLITE_INTEGER ||
	    store_column_text(stmt, 8, si->errmsg, sizeof si->errmsg) != 0 ||
	    store_column_text(stmt, 9, si->message, sizeof si->message) != 0 ||
	    store_column_int(stmt, 10, 0, 1, &si->retryable) != 0 ||
	    store_column_int(stmt, 11, 0, INT_MAX, &si->retry_after) != 0 ||
	    sqlite3_column_type(stmt, 12) != SQLITE_INTEGER)
		return (-1);
	memcpy(si->digest, blob, sizeof si->digest);
	si->msgid = sqlite3_column_int64(stmt, 12);
	v = sqlite3_column_int64(stmt, 7);
	if (v < LONG_MIN || v > LONG_MAX)
		return (-1);
	si->errcode = (long)v;
	return (0);
}

/*
 * Call cb for every idempotency key created after since, oldest first, until
 * it returns non-zero; cb must not use the store. A corrupt row is logged and
 * skipped. 0 when all were visited, cb's value if it stopped, -1 on error.
 */
int
store_idem_foreach(time_t since, int (*cb)(const struct store_idem *, void *),
    void *arg)
{
	sqlite3_stmt		*stmt;
	struct store_idem	*si;
	int			 rc, ret = 0, bad = 0;

	if (!store_ready("loading", "idempotency keys"))
		return (-1);
	stmt = store_stmts[STORE_IDEM_LOAD];
	if (sqlite3_bind_int64(stmt, 1, since) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	si = xmalloc(sizeof *si);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (store_idem_row(stmt, si) != 0) {
			bad++;
			continue;
		}
		if ((ret = cb(si, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		log_warnx("store: loading idempotency keys: %s",
		    sqlite3_errmsg(store_db));
		ret = -1;
	}
	if (bad != 0)
		log_warnx("store: %d corrupt idempotency key row%s skipped", bad,
		    bad == 1 ? "" : "s");
	store_done(stmt);
	free(si);
	return (ret);
}

/*
 * Save the last event applied for a component's subject ("" for its verify
 * ticket, else an authorizer): its CreateTime, InfoType and a digest that
 * tells it from another of the same second; 0 or -1.
 */
int
store_mark_save(const struct store_mark *sm)
{
	sqlite3_stmt	*stmt;
	const char	*component_appid = sm->component_appid;

	if (!store_appid_ok(component_appid) ||
	    strnlen(sm->subject, sizeof sm->subject) == sizeof sm->subject ||
	    !store_str_ok(sm->info_type, sizeof sm->info_type - 1) ||
	    !store_str_ok(sm->digest, sizeof sm->digest - 1)) {
		log_warnx("store: saving an event mark: bad row");
		return (-1);
	}
	if (!store_ready("saving an event mark for", component_appid))
		return (-1);
	stmt = store_stmts[STORE_MARK_SAVE];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, sm->subject, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 3, sm->create_time) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 4, sm->info_type, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 5, sm->digest, -1, SQLITE_STATIC) !=
	    SQLITE_OK) {
		log_warnx("store: saving an event mark for %s: %s",
		    component_appid, sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "event mark", component_appid));
}

/*
 * The last event applied for a component's subject, into sm (keyed by its
 * component_appid and subject): 1 found, 0 not, -1 error (logged).
 */
int
store_mark_load(struct store_mark *sm)
{
	sqlite3_stmt	*stmt;
	const char	*component_appid = sm->component_appid;
	int		 rc, found = -1;

	if (!store_appid_ok(component_appid) ||
	    strnlen(sm->subject, sizeof sm->subject) == sizeof sm->subject) {
		log_warnx("store: loading an event mark: bad key");
		return (-1);
	}
	if (!store_ready("loading an event mark for", component_appid))
		return (-1);
	stmt = store_stmts[STORE_MARK_LOAD];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, sm->subject, -1, SQLITE_STATIC) !=
	    SQLITE_OK) {
		log_warnx("store: loading an event mark for %s: %s",
		    component_appid, sqlite3_errmsg(store_db));
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		found = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		log_warnx("store: loading an event mark for %s: %s",
		    component_appid, sqlite3_errmsg(store_db));
		goto out;
	}
	if (store_column_time(stmt, 0, &sm->create_time) != 0 ||
	    store_column_text(stmt, 1, sm->info_type,
	    sizeof sm->info_type) != 0 ||
	    store_column_text(stmt, 2, sm->digest, sizeof sm->digest) != 0) {
		log_warnx("store: an event mark of %s is corrupt; ignored",
		    component_appid);
		goto out;
	}
	found = 1;
out:
	store_done(stmt);
	return (found);
}

/* Save (insert or replace) a pending authorization exchange; 0 or -1. */
int
store_pending_save(const struct store_pending *sp)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(sp->component_appid) ||
	    !store_appid_ok(sp->authorizer_appid) ||
	    !store_str_ok(sp->info_type, sizeof sp->info_type - 1) ||
	    !store_str_ok(sp->code, sizeof sp->code - 1)) {
		log_warnx("store: saving a pending authorization: bad row");
		return (-1);
	}
	if (!store_ready("saving a pending authorization of",
	    sp->authorizer_appid))
		return (-1);
	stmt = store_stmts[STORE_PENDING_SAVE];
	if (sqlite3_bind_text(stmt, 1, sp->component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, sp->authorizer_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, sp->info_type, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 4, sp->code, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 5, sp->create_time) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 6, sp->attempts) != SQLITE_OK) {
		log_warnx("store: saving a pending authorization of %s: %s",
		    sp->authorizer_appid, sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "pending authorization",
	    sp->authorizer_appid));
}

/* Forget a pending authorization exchange (done, or over); 0 or -1. */
int
store_pending_delete(const char *component_appid, const char *authorizer_appid)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(component_appid) ||
	    !store_appid_ok(authorizer_appid)) {
		log_warnx("store: deleting a pending authorization: bad key");
		return (-1);
	}
	if (!store_ready("deleting a pending authorization of",
	    authorizer_appid))
		return (-1);
	stmt = store_stmts[STORE_PENDING_DELETE];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, authorizer_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "deleted pending authorization",
	    authorizer_appid));
}

/*
 * Call cb for each of a component's pending authorization exchanges (at most
 * max, oldest first), read all before the first call so that cb may save or
 * delete. A corrupt row is skipped. 0, cb's non-zero value, or -1.
 */
int
store_pending_foreach(const char *component_appid, int max,
    int (*cb)(const struct store_pending *, void *), void *arg)
{
	sqlite3_stmt		*stmt;
	struct store_pending	*rows;
	int			 rc, n = 0, i, ret = 0;

	if (!store_appid_ok(component_appid) || max < 1) {
		log_warnx("store: listing pending authorizations: bad key");
		return (-1);
	}
	if (!store_ready("listing pending authorizations of",
	    component_appid))
		return (-1);
	rows = xcalloc((size_t)max, sizeof *rows);
	stmt = store_stmts[STORE_PENDING_LIST];
	if (sqlite3_bind_text(stmt, 1, component_appid, -1,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(stmt, 2, max) != SQLITE_OK) {
		store_done(stmt);
		ret = -1;
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && n < max) {
		struct store_pending *sp = &rows[n];

		memcpy(sp->component_appid, component_appid,
		    strlen(component_appid) + 1);
		if (store_column_text(stmt, 0, sp->authorizer_appid,
		    sizeof sp->authorizer_appid) != 0 ||
		    store_column_text(stmt, 1, sp->info_type,
		    sizeof sp->info_type) != 0 ||
		    store_column_text(stmt, 2, sp->code, sizeof sp->code) != 0 ||
		    sp->code[0] == '\0' ||
		    store_column_time(stmt, 3, &sp->create_time) != 0 ||
		    store_column_int(stmt, 4, 0, INT_MAX, &sp->attempts) != 0) {
			log_warnx("store: a pending authorization of %s is "
			    "corrupt; skipped", component_appid);
			explicit_bzero(sp, sizeof *sp);
			continue;
		}
		n++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_warnx("store: listing pending authorizations of %s: %s",
		    component_appid, sqlite3_errmsg(store_db));
		ret = -1;
	}
	store_done(stmt);
	for (i = 0; i < n && ret == 0; i++)
		ret = cb(&rows[i], arg);
out:
	freezero(rows, (size_t)max * sizeof *rows);
	return (ret);
}

/* Save the permission set ids ("1,2,15") an authorizer granted; 0 or -1. */
int
store_permissions_save(const char *appid, const char *ids)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(appid) || ids == NULL ||
	    strlen(ids) > STORE_PERMS_MAX) {
		log_warnx("store: saving permissions: bad row");
		return (-1);
	}
	if (!store_ready("saving permissions of", appid))
		return (-1);
	stmt = store_stmts[STORE_PERMS_SAVE];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, ids, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "permissions", appid));
}

/* The permission set ids an authorizer granted: 1 found, 0 not, -1 error. */
int
store_permissions_load(const char *appid, char *ids, size_t size)
{
	sqlite3_stmt	*stmt;
	int		 rc, found = -1;

	if (!store_appid_ok(appid))
		return (-1);
	if (!store_ready("loading permissions of", appid))
		return (-1);
	stmt = store_stmts[STORE_PERMS_LOAD];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) !=
	    SQLITE_OK)
		goto out;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE)
		found = 0;
	else if (rc != SQLITE_ROW)
		log_warnx("store: loading permissions of %s: %s", appid,
		    sqlite3_errmsg(store_db));
	else if (store_column_text(stmt, 0, ids, size) != 0)
		log_warnx("store: the permissions of %s are corrupt; ignored",
		    appid);
	else
		found = 1;
out:
	store_done(stmt);
	return (found);
}

/* Save one consent (inside a batch, or alone); 0 or -1. */
int
store_consent_put(const struct store_consent *sc)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(sc->appid) ||
	    !store_str_ok(sc->openid, sizeof sc->openid - 1) ||
	    !store_str_ok(sc->tag, sizeof sc->tag - 1) ||
	    !store_str_ok(sc->template_id, sizeof sc->template_id - 1) ||
	    !store_str_ok(sc->state, sizeof sc->state - 1) ||
	    strnlen(sc->reference, sizeof sc->reference) ==
	    sizeof sc->reference) {
		log_warnx("store: saving a consent: bad row");
		return (-1);
	}
	if (!store_ready("saving a consent for", sc->appid))
		return (-1);
	stmt = store_stmts[STORE_CONSENT_PUT];
	if (sqlite3_bind_text(stmt, 1, sc->appid, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, sc->openid, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 3, sc->tag, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 4, sc->template_id, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int(stmt, 5, sc->scene) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 6, sc->reference, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 7, sc->state, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 8, sc->recorded_at) != SQLITE_OK ||
	    sqlite3_bind_int64(stmt, 9, sc->spent_at) != SQLITE_OK) {
		log_warnx("store: saving a consent for %s: %s", sc->appid,
		    sqlite3_errmsg(store_db));
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "consent", sc->appid));
}

/* Delete consents recorded at or before before; 0 or -1. */
int
store_consent_expire(time_t before)
{
	sqlite3_stmt	*stmt;

	if (!store_ready("expiring", "consents"))
		return (-1);
	stmt = store_stmts[STORE_CONSENT_EXPIRE];
	if (sqlite3_bind_int64(stmt, 1, before) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "expired consents", "all"));
}

/* Delete every consent of one user of appid; 0 or -1. */
int
store_consent_forget(const char *appid, const char *openid)
{
	sqlite3_stmt	*stmt;

	if (!store_appid_ok(appid) || !store_str_ok(openid, 128))
		return (-1);
	if (!store_ready("forgetting a user of", appid))
		return (-1);
	stmt = store_stmts[STORE_CONSENT_FORGET];
	if (sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, openid, -1, SQLITE_STATIC) !=
	    SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	return (store_step_done(stmt, "forgotten consents", appid));
}

/* Decode a row of STORE_CONSENT_LOAD into sc; 0 or -1. */
static int
store_consent_row(sqlite3_stmt *stmt, struct store_consent *sc)
{
	memset(sc, 0, sizeof *sc);
	if (store_column_text(stmt, 0, sc->appid, sizeof sc->appid) != 0 ||
	    sc->appid[0] == '\0' ||
	    store_column_text(stmt, 1, sc->openid, sizeof sc->openid) != 0 ||
	    sc->openid[0] == '\0' ||
	    store_column_text(stmt, 2, sc->tag, sizeof sc->tag) != 0 ||
	    store_column_text(stmt, 3, sc->template_id,
	    sizeof sc->template_id) != 0 ||
	    store_column_int(stmt, 4, 0, 10000, &sc->scene) != 0 ||
	    store_column_text(stmt, 5, sc->reference,
	    sizeof sc->reference) != 0 ||
	    store_column_text(stmt, 6, sc->state, sizeof sc->state) != 0 ||
	    store_column_time(stmt, 7, &sc->recorded_at) != 0 ||
	    store_column_time(stmt, 8, &sc->spent_at) != 0)
		return (-1);
	return (0);
}

/* Visit consents recorded after since, oldest first; 0, cb's value or -1. */
int
store_consent_foreach(time_t since,
    int (*cb)(const struct store_consent *, void *), void *arg)
{
	sqlite3_stmt		*stmt;
	struct store_consent	*sc;
	int			 rc, ret = 0, bad = 0;

	if (!store_ready("loading", "consents"))
		return (-1);
	stmt = store_stmts[STORE_CONSENT_LOAD];
	if (sqlite3_bind_int64(stmt, 1, since) != SQLITE_OK) {
		store_done(stmt);
		return (-1);
	}
	sc = xmalloc(sizeof *sc);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (store_consent_row(stmt, sc) != 0) {
			bad++;
			continue;
		}
		if ((ret = cb(sc, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		log_warnx("store: loading consents: %s",
		    sqlite3_errmsg(store_db));
		ret = -1;
	}
	if (bad != 0)
		log_warnx("store: %d corrupt consent row%s skipped", bad,
		    bad == 1 ? "" : "s");
	store_done(stmt);
	free(sc);
	return (ret);
}
