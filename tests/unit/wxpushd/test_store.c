/* Unit tests for store.c: the SQLite state under a temporary state_dir. */
#include "config.h"

#include <sys/types.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "wxpushd.h"
#include "harness.h"
#include "tap.h"

#define TEST_MANY		10000
#define TEST_CRASH_APPIDS	50
#define TEST_CRASH_ROUNDS	5
#define TEST_TOKEN_FORM_LEN	400

static char	test_base[] = "/tmp/test_store.XXXXXX";

/* Seconds since an arbitrary start, for timing. */
static double
test_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* The permission bits of path, or -1 if it does not exist. */
static int
test_mode(const char *path)
{
	struct stat	sb;

	if (stat(path, &sb) != 0)
		return (-1);
	return ((int)(sb.st_mode & 07777));
}

/* Fill an authorizer. */
static void
test_authorizer(struct store_authorizer *sa, const char *component,
    const char *appid, const char *refresh_token, int revoked, time_t when)
{
	memset(sa, 0, sizeof *sa);
	snprintf(sa->component_appid, sizeof sa->component_appid, "%s", component);
	snprintf(sa->appid, sizeof sa->appid, "%s", appid);
	snprintf(sa->refresh_token, sizeof sa->refresh_token, "%s", refresh_token);
	sa->revoked = revoked;
	sa->updated_at = when;
}

struct test_list {
	size_t	n;
	size_t	stop_after;	/* 0: never stop */
	int	ordered;	/* appids came in strictly increasing order */
	int	wrong_component;
	int	revoked;
	char	last[WX_APPID_MAX + 1];
	char	component[WX_APPID_MAX + 1];
};

/* foreach callback: count, check order and component, stop if asked. */
static int
test_list_cb(const struct store_authorizer *sa, void *arg)
{
	struct test_list	*tl = arg;

	if (tl->n > 0 && strcmp(tl->last, sa->appid) >= 0)
		tl->ordered = 0;
	if (strcmp(sa->component_appid, tl->component) != 0)
		tl->wrong_component++;
	if (sa->revoked)
		tl->revoked++;
	snprintf(tl->last, sizeof tl->last, "%s", sa->appid);
	tl->n++;
	if (tl->stop_after != 0 && tl->n == tl->stop_after)
		return (7);
	return (0);
}

/* List a component's authorizers into tl; returns foreach's value. */
static int
test_list(const char *component, struct test_list *tl, size_t stop_after)
{
	memset(tl, 0, sizeof *tl);
	tl->ordered = 1;
	tl->stop_after = stop_after;
	snprintf(tl->component, sizeof tl->component, "%s", component);
	return (store_authorizer_foreach(component, test_list_cb, tl));
}

/* foreach callback that rewrites every row it is given. */
static int
test_resave_cb(const struct store_authorizer *sa, void *arg)
{
	struct store_authorizer	 copy = *sa;
	int			*failures = arg;

	snprintf(copy.refresh_token, sizeof copy.refresh_token, "resaved-%s",
	    sa->appid);
	if (store_authorizer_save(&copy) != 0)
		(*failures)++;
	return (0);
}

/* Run one SQL statement on the database with a separate connection, binding text to ?1. */
static int
test_raw(const char *db, const char *sql, const char *text)
{
	sqlite3		*h;
	sqlite3_stmt	*stmt;
	int		 rc;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(h);
		return (-1);
	}
	sqlite3_exec(h, "PRAGMA ignore_check_constraints = ON", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(h, sql, -1, &stmt, NULL) != SQLITE_OK) {
		diag("raw: %s", sqlite3_errmsg(h));
		sqlite3_close(h);
		return (-1);
	}
	if (text != NULL)
		sqlite3_bind_text(stmt, 1, text, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	sqlite3_finalize(stmt);
	sqlite3_close(h);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* Open the store in dir, reporting the cause if it fails. */
static int
test_open(const char *dir)
{
	char	*cause;

	if (store_open(dir, &cause) == 0)
		return (0);
	diag("store_open: %s", cause);
	free(cause);
	return (-1);
}

/* A pending exchange's row, collected by test_pending_cb. */
struct test_pendings {
	int			 n;
	struct store_pending	 p[4];
};

static int
test_pending_cb(const struct store_pending *sp, void *arg)
{
	struct test_pendings *tp = arg;

	if (tp->n < 4)
		tp->p[tp->n] = *sp;
	tp->n++;
	return (0);
}

/* A mark keyed by component and subject, with the rest filled in. */
static void
test_mark(struct store_mark *sm, const char *component, const char *subject,
    time_t ct, const char *type, const char *digest)
{
	memset(sm, 0, sizeof *sm);
	snprintf(sm->component_appid, sizeof sm->component_appid, "%s",
	    component);
	snprintf(sm->subject, sizeof sm->subject, "%s", subject);
	sm->create_time = ct;
	snprintf(sm->info_type, sizeof sm->info_type, "%s", type);
	snprintf(sm->digest, sizeof sm->digest, "%s", digest);
}

/* Event marks, pending authorization exchanges, permissions (schema 3). */
static void
test_events(void)
{
	struct store_mark	sm, got;
	struct store_pending	sp;
	struct test_pendings	tp;
	char			ids[64];

	test_mark(&sm, "wxcompE", "", 1700000000, "component_verify_ticket",
	    "aa");
	is_int(store_mark_save(&sm), 0, "a ticket mark saves");
	test_mark(&sm, "wxcompE", "wxauthE1", 1700000100, "unauthorized", "bb");
	is_int(store_mark_save(&sm), 0, "an authorizer's mark saves");
	test_mark(&got, "wxcompE", "", 0, "", "");
	is_int(store_mark_load(&got), 1, "the ticket mark loads");
	ok(got.create_time == 1700000000 && strcmp(got.info_type,
	    "component_verify_ticket") == 0 && strcmp(got.digest, "aa") == 0,
	    "with its CreateTime, InfoType and digest");
	test_mark(&got, "wxcompE", "wxauthE1", 0, "", "");
	is_int(store_mark_load(&got), 1, "the authorizer's mark loads");
	ok(got.create_time == 1700000100 && strcmp(got.digest, "bb") == 0,
	    "its own, not the ticket's");
	test_mark(&sm, "wxcompE", "wxauthE1", 1700000200, "authorized", "cc");
	is_int(store_mark_save(&sm), 0, "a newer mark replaces it");
	test_mark(&got, "wxcompE", "wxauthE1", 0, "", "");
	ok(store_mark_load(&got) == 1 && got.create_time == 1700000200 &&
	    strcmp(got.info_type, "authorized") == 0, "replaced");
	test_mark(&got, "wxcompE", "wxauthE2", 0, "", "");
	is_int(store_mark_load(&got), 0, "no mark for another authorizer");
	test_mark(&sm, "wxcompE", "wxauthE1", 1, "", "cc");
	is_int(store_mark_save(&sm), -1, "a mark without InfoType is refused");

	memset(&sp, 0, sizeof sp);
	snprintf(sp.component_appid, sizeof sp.component_appid, "%s", "wxcompE");
	snprintf(sp.authorizer_appid, sizeof sp.authorizer_appid, "%s", "wxauthE1");
	snprintf(sp.info_type, sizeof sp.info_type, "%s", "authorized");
	snprintf(sp.code, sizeof sp.code, "%s", "queryauthcode@@@1");
	sp.create_time = 1700000200;
	is_int(store_pending_save(&sp), 0, "a pending exchange saves");
	snprintf(sp.authorizer_appid, sizeof sp.authorizer_appid, "%s", "wxauthE2");
	sp.create_time = 1700000100;
	sp.attempts = 3;
	is_int(store_pending_save(&sp), 0, "another");
	memset(&tp, 0, sizeof tp);
	is_int(store_pending_foreach("wxcompE", 16, test_pending_cb, &tp), 0,
	    "foreach pending");
	is_int(tp.n, 2, "both");
	ok(strcmp(tp.p[0].authorizer_appid, "wxauthE2") == 0 &&
	    tp.p[0].attempts == 3 && strcmp(tp.p[0].code,
	    "queryauthcode@@@1") == 0 && tp.p[1].create_time == 1700000200,
	    "oldest first, every field kept");
	memset(&tp, 0, sizeof tp);
	store_pending_foreach("wxcompE", 1, test_pending_cb, &tp);
	is_int(tp.n, 1, "at most max");
	is_int(store_pending_delete("wxcompE", "wxauthE2"), 0, "delete one");
	memset(&tp, 0, sizeof tp);
	store_pending_foreach("wxcompE", 16, test_pending_cb, &tp);
	ok(tp.n == 1 && strcmp(tp.p[0].authorizer_appid, "wxauthE1") == 0,
	    "the other is left");
	memset(&tp, 0, sizeof tp);
	store_pending_foreach("wxcompOther", 16, test_pending_cb, &tp);
	is_int(tp.n, 0, "none for another component");
	sp.code[0] = '\0';
	is_int(store_pending_save(&sp), -1, "a pending exchange without a code "
	    "is refused");

	is_int(store_permissions_save("wxauthE1", "1,2,15"), 0,
	    "permissions save");
	ok(store_permissions_load("wxauthE1", ids, sizeof ids) == 1 &&
	    strcmp(ids, "1,2,15") == 0, "and load");
	is_int(store_permissions_save("wxauthE1", ""), 0, "none granted saves");
	ok(store_permissions_load("wxauthE1", ids, sizeof ids) == 1 &&
	    ids[0] == '\0', "and loads as none, not unknown");
	is_int(store_permissions_load("wxauthE9", ids, sizeof ids), 0,
	    "unknown for another");
}

/* A state_dir of the previous release (schema 2) loads and gains schema 3. */
static void
test_from_v2(const char *dir, const char *db)
{
	struct store_mark	got;
	char			ids[64];

	store_close();
	ok(test_raw(db, "DROP TABLE event_marks", NULL) == 0 &&
	    test_raw(db, "DROP TABLE pending_authorizations", NULL) == 0 &&
	    test_raw(db, "DROP TABLE authorizer_permissions", NULL) == 0 &&
	    test_raw(db, "PRAGMA user_version = 2", NULL) == 0,
	    "a schema 2 database");
	ok(test_open(dir) == 0, "opens");
	is_int(store_permissions_save("wxauthE1", "1"), 0, "and gains the "
	    "permissions table");
	ok(store_permissions_load("wxauthE1", ids, sizeof ids) == 1,
	    "which works");
	test_mark(&got, "wxcompE", "", 0, "", "");
	is_int(store_mark_load(&got), 0, "and the event marks (empty)");
}

/* Open: the directory and the files get their modes whatever the umask. */
static void
test_open_modes(const char *dir, const char *db)
{
	char	*cause, *wal;
	mode_t	 old;
	int	 rc;

	old = umask(0);
	ok(test_open(dir) == 0, "store_open creates a missing state_dir");
	umask(old);
	is_int(test_mode(dir), 0700, "state_dir is 0700");
	is_int(test_mode(db), 0600, "wxpushd.db is 0600");
	xasprintf(&wal, "%s-wal", db);
	is_int(test_mode(wal), 0600, "wxpushd.db-wal is 0600 (WAL mode)");
	free(wal);

	cause = NULL;
	rc = store_open(dir, &cause);
	ok(rc == -1 && cause != NULL, "a second store_open is refused: %s",
	    cause != NULL ? cause : "");
	free(cause);
}

/*
 * What docs/operations.md promises: a single save (a token, a refresh token)
 * is on disk when it returns (synchronous FULL); only a batch of idempotency
 * keys commits without waiting (NORMAL), and FULL is back after it. Read back
 * from the store's own connection: the setting is per connection.
 */
static void
test_durability(void)
{
	is_int(store_synchronous(), 2, "synchronous is FULL after store_open");
	is_int(store_batch_begin(), 0, "a batch begins");
	is_int(store_synchronous(), 1, "synchronous is NORMAL inside a batch");
	is_int(store_batch_end(1), 0, "the batch commits");
	is_int(store_synchronous(), 2, "synchronous is FULL after a committed batch");
	is_int(store_batch_begin(), 0, "another batch begins");
	is_int(store_batch_end(0), -1, "and is rolled back when asked");
	is_int(store_synchronous(), 2,
	    "synchronous is FULL after a rolled-back batch");
}

/* Tokens: round trip, upsert, 512 characters, not found, bad input. */
static void
test_tokens(void)
{
	struct store_token	st, got;

	memset(&st, 0, sizeof st);
	snprintf(st.appid, sizeof st.appid, "wx0000000000000001");
	st.kind = CRED_OFFICIAL;
	snprintf(st.token, sizeof st.token, "ACCESS_TOKEN_1");
	st.expires_at = 1700007200;
	st.refreshed_at = 1700000000;
	st.calls_day = 19700;
	st.calls_today = 3;
	ok(store_token_save(&st) == 0, "token save");
	is_int(store_token_load(st.appid, &got), 1, "token load finds it");
	is_str(got.appid, st.appid, "appid round trip");
	is_int(got.kind, CRED_OFFICIAL, "kind round trip");
	is_str(got.token, "ACCESS_TOKEN_1", "token round trip");
	is_int(got.expires_at, 1700007200, "expires_at round trip");
	is_int(got.refreshed_at, 1700000000, "refreshed_at round trip");
	is_int(got.calls_day, 19700, "calls_day round trip");
	is_int(got.calls_today, 3, "calls_today round trip");

	st.kind = CRED_COMPONENT;
	snprintf(st.token, sizeof st.token, "ACCESS_TOKEN_2");
	st.expires_at += 7200;
	st.calls_today = 4;
	ok(store_token_save(&st) == 0, "token save again (upsert)");
	is_int(store_token_load(st.appid, &got), 1, "token load after upsert");
	is_str(got.token, "ACCESS_TOKEN_2", "upsert replaced the token");
	is_int(got.kind, CRED_COMPONENT, "upsert replaced the kind");
	is_int(got.expires_at, 1700014400, "upsert replaced expires_at");
	is_int(got.calls_today, 4, "upsert replaced calls_today");

	snprintf(st.appid, sizeof st.appid, "wx0000000000000512");
	st.kind = CRED_AUTHORIZER;
	memset(st.token, 'T', WX_TOKEN_MAX);
	st.token[WX_TOKEN_MAX] = '\0';
	ok(store_token_save(&st) == 0, "a %d-character token saves", WX_TOKEN_MAX);
	is_int(store_token_load(st.appid, &got), 1, "and loads");
	is_int(strlen(got.token), WX_TOKEN_MAX, "all %d characters", WX_TOKEN_MAX);
	ok(memcmp(got.token, st.token, WX_TOKEN_MAX + 1) == 0, "unchanged");

	st.token[WX_TOKEN_MAX] = 'T';	/* no terminator in the buffer */
	ok(store_token_save(&st) == -1, "an unterminated token is refused");
	st.token[0] = '\0';
	ok(store_token_save(&st) == 0, "an empty token saves");
	is_int(store_token_load(st.appid, &got), 1, "and loads");
	is_str(got.token, "", "as empty");

	is_int(store_token_load("wx000000000000none", &got), 0,
	    "an unknown appid is not found");
	is_int(store_token_load("", &got), -1, "an empty appid is an error");
	is_int(store_token_load(
	    "wx012345678901234567890123456789012345678901234567890123456789012",
	    &got), -1, "a 65-character appid is an error");
	st.kind = (enum cred_kind)9;
	ok(store_token_save(&st) == -1, "a bad kind is refused");
}

/* Tickets: round trip, upsert, small buffers, not found. */
static void
test_tickets(void)
{
	char	buf[WX_TOKEN_MAX + 1], small[8];
	time_t	when = 0;

	ok(store_ticket_save("wxcomponent000001", "ticket@@@one", 1700000000) == 0,
	    "ticket save");
	is_int(store_ticket_load("wxcomponent000001", buf, sizeof buf, &when), 1,
	    "ticket load");
	is_str(buf, "ticket@@@one", "ticket round trip");
	is_int(when, 1700000000, "received_at round trip");
	ok(store_ticket_save("wxcomponent000001", "ticket@@@two", 1700000600) == 0,
	    "ticket save again (upsert)");
	is_int(store_ticket_load("wxcomponent000001", buf, sizeof buf, NULL), 1,
	    "ticket load without a time");
	is_str(buf, "ticket@@@two", "upsert replaced the ticket");
	is_int(store_ticket_load("wxcomponent000001", small, sizeof small, &when),
	    -1, "a buffer too small is refused");
	is_str(small, "", "and left empty");
	is_int(store_ticket_load("wxcomponent000001", buf, strlen("ticket@@@two"),
	    NULL), -1, "a buffer without room for the NUL is refused");
	is_int(store_ticket_load("wxcomponentnone", buf, sizeof buf, NULL), 0,
	    "an unknown component is not found");
	ok(store_ticket_save("wxcomponent000001", "", 1) == -1,
	    "an empty ticket is refused");
}

/* Authorizers: save, update, revoke, foreach by component, stopping early. */
static void
test_authorizers(void)
{
	struct store_authorizer	sa, got;
	struct test_list	tl;
	char			appid[WX_APPID_MAX + 1];
	int			i, failures;

	test_authorizer(&sa, "wxcompA", "wxauth0001", "refresh@@@1", 0, 100);
	ok(store_authorizer_save(&sa) == 0, "authorizer save");
	is_int(store_authorizer_load("wxauth0001", &got), 1, "authorizer load");
	is_str(got.component_appid, "wxcompA", "component_appid round trip");
	is_str(got.appid, "wxauth0001", "appid round trip");
	is_str(got.refresh_token, "refresh@@@1", "refresh_token round trip");
	is_int(got.revoked, 0, "revoked round trip");
	is_int(got.updated_at, 100, "updated_at round trip");

	test_authorizer(&sa, "wxcompA", "wxauth0001", "refresh@@@2", 0, 200);
	ok(store_authorizer_save(&sa) == 0, "authorizer update");
	is_int(store_authorizer_load("wxauth0001", &got), 1, "load after update");
	is_str(got.refresh_token, "refresh@@@2", "the new refresh token replaced "
	    "the old");
	is_int(got.updated_at, 200, "updated_at replaced");

	test_authorizer(&sa, "wxcompA", "wxauth0001", "refresh@@@2", 1, 300);
	ok(store_authorizer_save(&sa) == 0, "authorizer revoke");
	is_int(store_authorizer_load("wxauth0001", &got), 1, "load after revoke");
	is_int(got.revoked, 1, "revoked is set");
	is_int(store_authorizer_load("wxauthnone", &got), 0,
	    "an unknown authorizer is not found");

	for (i = 2; i <= 5; i++) {
		snprintf(appid, sizeof appid, "wxauth%04d", i);
		test_authorizer(&sa, "wxcompA", appid, "refresh@@@x", 0, 1);
		store_authorizer_save(&sa);
	}
	for (i = 1; i <= 3; i++) {
		snprintf(appid, sizeof appid, "wxbuth%04d", i);
		test_authorizer(&sa, "wxcompB", appid, "refresh@@@y", 0, 1);
		store_authorizer_save(&sa);
	}
	test_authorizer(&sa, "wxcompA", "wxauth0000", "x", 0, 1);
	sa.refresh_token[0] = '\0';
	memset(sa.component_appid, 'c', sizeof sa.component_appid);
	ok(store_authorizer_save(&sa) == -1, "an unterminated component appid "
	    "is refused");

	is_int(test_list("wxcompA", &tl, 0), 0, "foreach wxcompA returns 0");
	is_int(tl.n, 5, "foreach wxcompA visits 5");
	ok(tl.ordered, "in appid order");
	is_int(tl.wrong_component, 0, "all of wxcompA");
	is_int(tl.revoked, 1, "one of them revoked");
	is_int(test_list("wxcompB", &tl, 0), 0, "foreach wxcompB returns 0");
	is_int(tl.n, 3, "foreach wxcompB visits 3");
	is_int(test_list("wxcompNone", &tl, 0), 0, "foreach of no authorizers");
	is_int(tl.n, 0, "visits none");
	is_int(test_list("wxcompA", &tl, 2), 7, "foreach returns the value that "
	    "stopped it");
	is_int(tl.n, 2, "and stopped after 2");

	failures = 0;
	is_int(store_authorizer_foreach("wxcompB", test_resave_cb, &failures), 0,
	    "foreach whose callback saves");
	is_int(failures, 0, "every save inside foreach worked");
	is_int(store_authorizer_load("wxbuth0002", &got), 1, "load a resaved row");
	is_str(got.refresh_token, "resaved-wxbuth0002", "the save inside foreach "
	    "is there");
}

/* 10,000 authorizers of one component: insert, then load them all. */
/* What store_authorizer_components found: rows, and how many were right. */
struct test_comps {
	int	n, right;
};

static void
test_components_cb(const char *appid, const char *component, void *arg)
{
	struct test_comps	*tc = arg;

	tc->n++;
	if (strcmp(component, "wxcompMany") == 0 &&
	    strncmp(appid, "wxmany", 6) == 0)
		tc->right++;
}

/*
 * The components of 71 appids, past two batches of 32: 65 of wxcompMany's
 * (the first and last among them), 5 not stored, and a bad one skipped.
 */
static void
test_components(void)
{
	char			 buf[70][WX_APPID_MAX + 1];
	const char		*appids[71];
	struct test_comps	 tc = { 0, 0 };
	int			 i;

	for (i = 0; i < 65; i++) {
		snprintf(buf[i], sizeof buf[i], "wxmany%08d",
		    i == 64 ? TEST_MANY - 1 : i * 7);
		appids[i] = buf[i];
	}
	for (; i < 69; i++) {
		snprintf(buf[i], sizeof buf[i], "wxnone%08d", i);
		appids[i] = buf[i];
	}
	appids[69] = "";
	snprintf(buf[69], sizeof buf[69], "wxnone%08d", 69);
	appids[70] = buf[69];
	is_int(store_authorizer_components(appids, 71, test_components_cb,
	    &tc), 0, "components of 71 appids, in batches");
	is_int(tc.n, 65, "a row for each stored one, none for the others");
	is_int(tc.right, 65, "each with its component");
}

static void
test_many(void)
{
	struct store_authorizer	sa;
	struct test_list	tl;
	char			appid[WX_APPID_MAX + 1], token[128];
	double			t0, t1, t2;
	int			i, failures = 0;

	t0 = test_now();
	for (i = 0; i < TEST_MANY; i++) {
		snprintf(appid, sizeof appid, "wxmany%08d", i);
		snprintf(token, sizeof token, "refresh@@@%08d", i);
		test_authorizer(&sa, "wxcompMany", appid, token, 0, i);
		if (store_authorizer_save(&sa) != 0)
			failures++;
	}
	t1 = test_now();
	is_int(failures, 0, "%d authorizers saved", TEST_MANY);
	is_int(test_list("wxcompMany", &tl, 0), 0, "foreach of %d", TEST_MANY);
	t2 = test_now();
	is_int(tl.n, TEST_MANY, "all %d loaded", TEST_MANY);
	ok(tl.ordered, "in appid order");
	diag("%d saves (one transaction each) in %.3f s; foreach in %.3f s",
	    TEST_MANY, t1 - t0, t2 - t1);
	test_components();
}

/* Collect the msgid of idempotency key "k-msgid" (and count rows). */
static int
test_idem_msgid_cb(const struct store_idem *si, void *arg)
{
	int64_t	*msgid = arg;

	if (strcmp(si->key, "k-msgid") == 0)
		*msgid = si->msgid;
	return (0);
}

/* An idempotency outcome keeps WeChat's msgid (a template send's). */
static void
test_idem_msgid(void)
{
	struct store_idem	si;
	int64_t			msgid = -1;

	memset(&si, 0, sizeof si);
	si.uid = 1000;
	snprintf(si.appid, sizeof si.appid, "wx0000000000000001");
	snprintf(si.key, sizeof si.key, "k-msgid");
	si.created = time(NULL);
	snprintf(si.code, sizeof si.code, "ok");
	si.attempts = 1;
	si.msgid = 200228332123456789LL;
	ok(store_batch_begin() == 0 && store_idem_put(&si) == 0 &&
	    store_batch_end(1) == 0, "an idempotency key with a msgid saved");
	is_int(store_idem_foreach(0, test_idem_msgid_cb, &msgid), 0,
	    "idempotency keys loaded");
	ok(msgid == 200228332123456789LL, "its msgid kept (%lld)",
	    (long long)msgid);
}

/* After close and reopen, everything is still there. */
static void
test_reopen(const char *dir, const char *db)
{
	struct store_token	st;
	struct store_authorizer	sa;
	struct test_list	tl;
	char			buf[64];

	store_close();
	store_close();
	is_int(store_synchronous(), -1, "store_close twice is safe: the store "
	    "is closed");
	is_int(store_token_load("wx0000000000000001", &st), -1,
	    "a load on a closed store is an error");
	chmod(db, 0640);
	ok(test_open(dir) == 0, "reopen");
	is_int(test_mode(db), 0600, "reopen took the group's access away");
	is_int(store_synchronous(), 2, "synchronous is FULL after a reopen");
	is_int(store_token_load("wx0000000000000001", &st), 1, "token kept");
	is_str(st.token, "ACCESS_TOKEN_2", "its value kept");
	is_int(store_ticket_load("wxcomponent000001", buf, sizeof buf, NULL), 1,
	    "ticket kept");
	is_str(buf, "ticket@@@two", "its value kept");
	is_int(store_authorizer_load("wxauth0001", &sa), 1, "authorizer kept");
	is_str(sa.refresh_token, "refresh@@@2", "its refresh token kept");
	is_int(sa.revoked, 1, "its revoked flag kept");
	test_list("wxcompMany", &tl, 0);
	is_int(tl.n, TEST_MANY, "all %d kept", TEST_MANY);
}

/* Integrity, and rows that the database holds but must be refused. */
static void
test_corrupt_rows(const char *dir, const char *db)
{
	struct store_token	st;
	struct store_authorizer	sa;
	struct test_list	tl;
	char			*cause = NULL, long_token[WX_TOKEN_MAX + 2];
	int			 rc;

	ok(store_integrity_check(&cause) == 0, "integrity check ok");
	free(cause);

	store_close();
	memset(long_token, 'L', sizeof long_token - 1);
	long_token[sizeof long_token - 1] = '\0';
	ok(test_raw(db, "UPDATE tokens SET token = ?1 "
	    "WHERE appid = 'wx0000000000000001'", long_token) == 0,
	    "write a %d-character token behind the store", WX_TOKEN_MAX + 1);
	ok(test_raw(db, "UPDATE authorizers SET refresh_token = ?1 "
	    "WHERE appid = 'wxauth0003'", long_token) == 0,
	    "and a %d-character refresh token", WX_TOKEN_MAX + 1);
	ok(test_raw(db, "UPDATE authorizers SET revoked = 'yes' "
	    "WHERE appid = 'wxauth0004'", NULL) == 0, "and a bad revoked flag");
	ok(test_open(dir) == 0, "reopen");
	is_int(store_token_load("wx0000000000000001", &st), -1,
	    "a token over %d characters is refused as corrupt", WX_TOKEN_MAX);
	is_str(st.token, "", "not truncated into the caller's struct");
	is_int(store_authorizer_load("wxauth0003", &sa), -1,
	    "a refresh token over %d characters is refused", WX_TOKEN_MAX);
	is_int(test_list("wxcompA", &tl, 0), 0, "foreach goes on past bad rows");
	is_int(tl.n, 3, "and skips the 2 bad ones");
	ok(strcmp(tl.last, "wxauth0005") == 0, "up to the last one");

	/* A schema from the future is refused, not migrated down. */
	store_close();
	test_raw(db, "PRAGMA user_version = 99", NULL);
	cause = NULL;
	rc = store_open(dir, &cause);
	ok(rc == -1 && cause != NULL && strstr(cause, "99") != NULL,
	    "a newer schema version is refused: %s", cause != NULL ? cause : "");
	free(cause);
	test_raw(db, "PRAGMA user_version = 1", NULL);
	ok(test_open(dir) == 0, "reopen at version 1");
	store_close();
}

/* A database file full of garbage: store_open fails and leaves it alone. */
static void
test_corrupt_file(const char *dir, const char *db)
{
	unsigned char	 garbage[8192], back[sizeof garbage + 1];
	char		*cause = NULL;
	size_t		 i;
	ssize_t		 n;
	int		 fd, rc;

	for (i = 0; i < sizeof garbage; i++)
		garbage[i] = (unsigned char)(i * 7 + 13);
	fd = open(db, O_WRONLY | O_TRUNC);
	ok(fd != -1 && write(fd, garbage, sizeof garbage) ==
	    (ssize_t)sizeof garbage, "garbage written into wxpushd.db");
	if (fd != -1)
		close(fd);

	rc = store_open(dir, &cause);
	ok(rc == -1, "store_open fails on a corrupt file");
	ok(cause != NULL && strstr(cause, db) != NULL,
	    "the cause names the file: %s", cause != NULL ? cause : "");
	ok(cause != NULL && strstr(cause, "not a database") != NULL,
	    "and says what is wrong");
	free(cause);
	store_close();

	fd = open(db, O_RDONLY);
	n = fd != -1 ? read(fd, back, sizeof back) : -1;
	if (fd != -1)
		close(fd);
	ok(n == (ssize_t)sizeof garbage && memcmp(back, garbage, sizeof garbage) == 0,
	    "the file is left in place, unchanged");
}

/* The refresh token the crash child writes for generation gen. */
static void
test_crash_token(char *buf, size_t size, const char *appid, unsigned gen)
{
	size_t	len;

	snprintf(buf, size, "RT:%s:%u:", appid, gen);
	len = strlen(buf);
	for (; len < TEST_TOKEN_FORM_LEN - 4 && len < size - 5; len++)
		buf[len] = (char)('a' + (gen + len) % 26);
	memcpy(buf + len, ":END", 5);
}

/* The crash child: save authorizers in a loop, reporting each commit. */
static void __attribute__((noreturn))
test_crash_child(const char *dir, int fd)
{
	struct store_authorizer	sa;
	char			appid[WX_APPID_MAX + 1];
	char			token[WX_TOKEN_MAX + 1];
	unsigned		gen;

	if (test_open(dir) != 0)
		_exit(1);
	for (gen = 1;; gen++) {
		snprintf(appid, sizeof appid, "wxcrash%04u",
		    gen % TEST_CRASH_APPIDS);
		test_crash_token(token, sizeof token, appid, gen);
		test_authorizer(&sa, "wxcompCrash", appid, token, gen % 2, gen);
		if (store_authorizer_save(&sa) != 0)
			_exit(2);
		/* Saved and committed: tell the parent. */
		if (write(fd, &gen, sizeof gen) != (ssize_t)sizeof gen)
			_exit(3);
	}
}

struct test_crash {
	unsigned	last;		/* the last generation the child reported */
	size_t		n;
	int		bad_form;
	int		lost;		/* older than a reported commit */
	int		future;		/* newer than could have committed */
};

/* foreach callback: every row must be complete and at least as new as reported. */
static int
test_crash_cb(const struct store_authorizer *sa, void *arg)
{
	struct test_crash	*tc = arg;
	char			 want[WX_TOKEN_MAX + 1];
	unsigned		 gen, k, expect;

	tc->n++;
	if (sscanf(sa->refresh_token, "RT:wxcrash%*4u:%u:", &gen) != 1 ||
	    sscanf(sa->appid, "wxcrash%4u", &k) != 1) {
		tc->bad_form++;
		return (0);
	}
	test_crash_token(want, sizeof want, sa->appid, gen);
	if (strcmp(want, sa->refresh_token) != 0 ||
	    sa->updated_at != (time_t)gen || sa->revoked != (int)(gen % 2) ||
	    gen % TEST_CRASH_APPIDS != k)
		tc->bad_form++;
	/* The newest reported generation of this appid must be there. */
	if (tc->last >= k) {
		expect = tc->last - (tc->last - k) % TEST_CRASH_APPIDS;
		if (expect != 0 && gen < expect)
			tc->lost++;
	}
	if (gen > tc->last + 1)
		tc->future++;
	return (0);
}

/* Kill a child that is saving at a random moment; the database must recover whole. */
static void
test_crash(const char *base)
{
	struct test_crash	tc;
	char			*dir, *cause;
	unsigned		gen, seed;
	pid_t			pid;
	int			p[2], round, status, delay, i;
	ssize_t			n;

	seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	srand(seed);
	diag("crash test seed %u", seed);
	for (round = 0; round < TEST_CRASH_ROUNDS; round++) {
		/* Each round on a new database, so generations start at 1. */
		xasprintf(&dir, "%s/crash%d", base, round);
		if (pipe(p) != 0) {
			ok(0, "pipe: %s", strerror(errno));
			free(dir);
			return;
		}
		fflush(stdout);
		if ((pid = fork()) == -1) {
			ok(0, "fork: %s", strerror(errno));
			free(dir);
			return;
		}
		if (pid == 0) {
			close(p[0]);
			test_crash_child(dir, p[1]);
		}
		close(p[1]);

		/* Let it commit a few, then kill it a random moment later. */
		memset(&tc, 0, sizeof tc);
		for (i = 0; i < 20; i++) {
			if (read(p[0], &gen, sizeof gen) != (ssize_t)sizeof gen)
				break;
			tc.last = gen;
		}
		delay = rand() % 100000;
		usleep((useconds_t)delay);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		while ((n = read(p[0], &gen, sizeof gen)) == (ssize_t)sizeof gen)
			tc.last = gen;
		close(p[0]);
		ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "round %d: child killed after %u commits (%d us)", round,
		    tc.last, delay);

		if (test_open(dir) != 0) {
			ok(0, "round %d: reopen after the kill", round);
			free(dir);
			continue;
		}
		cause = NULL;
		ok(store_integrity_check(&cause) == 0, "round %d: integrity ok%s%s",
		    round, cause != NULL ? ": " : "", cause != NULL ? cause : "");
		free(cause);
		is_int(store_authorizer_foreach("wxcompCrash", test_crash_cb, &tc),
		    0, "round %d: foreach", round);
		/* One row per appid; one commit may have gone unreported. */
		ok(tc.n == (tc.last < TEST_CRASH_APPIDS ? tc.last :
		    TEST_CRASH_APPIDS) || tc.n == (tc.last + 1 < TEST_CRASH_APPIDS ?
		    tc.last + 1 : TEST_CRASH_APPIDS),
		    "round %d: one row per appid (%zu)", round, tc.n);
		is_int(tc.bad_form, 0, "round %d: every row complete", round);
		is_int(tc.lost, 0, "round %d: no reported commit lost", round);
		is_int(tc.future, 0, "round %d: nothing newer than possible", round);
		store_close();
		free(dir);
	}
}

/* Fill an idempotency row. */
static void
test_idem_row(struct store_idem *si, const char *key, time_t created)
{
	memset(si, 0, sizeof *si);
	si->uid = 1001;
	snprintf(si->appid, sizeof si->appid, "wx0000000000000001");
	snprintf(si->key, sizeof si->key, "%s", key);
	si->created = created;
	memset(si->digest, (int)created & 0xff, sizeof si->digest);
	snprintf(si->code, sizeof si->code, "wechat");
	si->attempts = 2;
	si->errcode = 43101;
	snprintf(si->errmsg, sizeof si->errmsg, "user refuse to accept the msg");
	snprintf(si->message, sizeof si->message, "refused by WeChat");
	si->retryable = 0;
	si->retry_after = 7;
}

struct test_idem_seen {
	char			keys[256];
	struct store_idem	last;
};

/* idem foreach callback: the keys in the order given, and the last row. */
static int
test_idem_cb(const struct store_idem *si, void *arg)
{
	struct test_idem_seen	*seen = arg;
	size_t			 n = strlen(seen->keys);

	snprintf(seen->keys + n, sizeof seen->keys - n, "%s%s", n ? "," : "",
	    si->key);
	seen->last = *si;
	return (0);
}

/* Idempotency keys: a batch, the cut-off of loading and of expiry. */
static void
test_idem(void)
{
	struct store_idem	si, want;
	struct test_idem_seen	seen;
	int			good = 1;
	time_t			t;

	is_int(store_batch_begin(), 0, "idempotency batch begins");
	for (t = 100; t <= 300; t += 100) {
		char key[16];

		snprintf(key, sizeof key, "k%lld", (long long)t);
		test_idem_row(&si, key, t);
		good &= store_idem_put(&si) == 0;
	}
	ok(good, "three keys put");
	is_int(store_batch_end(1), 0, "and committed");

	memset(&seen, 0, sizeof seen);
	is_int(store_idem_foreach(200, test_idem_cb, &seen), 0, "foreach since 200");
	is_str(seen.keys, "k300", "loads only the keys created after 200");
	test_idem_row(&want, "k300", 300);
	ok(seen.last.uid == want.uid && strcmp(seen.last.appid, want.appid) == 0 &&
	    memcmp(seen.last.digest, want.digest, sizeof want.digest) == 0 &&
	    strcmp(seen.last.code, "wechat") == 0 && seen.last.attempts == 2 &&
	    seen.last.errcode == 43101 &&
	    strcmp(seen.last.errmsg, want.errmsg) == 0 &&
	    strcmp(seen.last.message, want.message) == 0 &&
	    seen.last.retryable == 0 && seen.last.retry_after == 7,
	    "an idempotency row round trip");
	memset(&seen, 0, sizeof seen);
	store_idem_foreach(0, test_idem_cb, &seen);
	is_str(seen.keys, "k100,k200,k300", "all three, oldest first");

	is_int(store_batch_begin(), 0, "expiry batch begins");
	is_int(store_idem_expire(200), 0, "expire up to 200");
	is_int(store_batch_end(1), 0, "and commit");
	memset(&seen, 0, sizeof seen);
	store_idem_foreach(0, test_idem_cb, &seen);
	is_str(seen.keys, "k300", "keys created at or before 200 are gone");
}

/*
 * A check made in a child process, sent to the parent as "1 desc" or "0 desc"
 * ("s reason": skipped).
 */
static void
child_ok(int fd, int cond, const char *desc)
{
	dprintf(fd, "%d %s\n", cond ? 1 : 0, desc);
}

/* Run fn(dir, fd) in a child; its checks become this test's results. */
static void
test_in_child(const char *what, void (*fn)(const char *, int), const char *dir)
{
	char	 line[512];
	FILE	*f;
	pid_t	 pid;
	int	 p[2], n = 0, status;

	if (pipe(p) != 0) {
		ok(0, "%s: pipe: %s", what, strerror(errno));
		return;
	}
	fflush(stdout);
	if ((pid = fork()) == -1) {
		ok(0, "%s: fork: %s", what, strerror(errno));
		return;
	}
	if (pid == 0) {
		close(p[0]);
		fn(dir, p[1]);
		_exit(0);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == 's')
			ok(1, "# SKIP %s: %s", what, line + 2);
		else
			ok(line[0] == '1', "%s: %s", what, line + 2);
		n++;
	}
	if (f != NULL)
		fclose(f);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && n > 0,
	    "%s: the child finished after %d checks", what, n);
}

/*
 * With the store open, writing becomes impossible (fail() makes it so); every
 * kind of write must then report failure and leave the old data, and writing
 * works again once recover() has run. The lead's credential core relies on
 * this for refresh tokens: a token whose save failed must not be used.
 */
static void
test_fail_writes(const char *dir, int fd, int (*fail)(const char *),
    int (*recover)(const char *))
{
	struct store_authorizer	sa, got;
	struct store_token	st;
	struct store_idem	si;
	struct test_idem_seen	seen;
	char			big[WX_TOKEN_MAX + 1];

	if (test_open(dir) != 0) {
		child_ok(fd, 0, "the store opens");
		return;
	}
	test_authorizer(&sa, "wxcompFail", "wxfail0001", "refresh@@@old", 0, 1);
	child_ok(fd, store_authorizer_save(&sa) == 0, "a save works before");
	if (fail(dir) != 0) {
		child_ok(fd, 0, "writing made impossible");
		return;
	}
	/* A refresh token of the largest size: more than any slack left. */
	memset(big, 'N', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	test_authorizer(&sa, "wxcompFail", "wxfail0001", big, 0, 2);
	child_ok(fd, store_authorizer_save(&sa) == -1,
	    "saving a refresh token that cannot be written returns -1");
	child_ok(fd, store_authorizer_load("wxfail0001", &got) == 1 &&
	    strcmp(got.refresh_token, "refresh@@@old") == 0,
	    "and the stored refresh token is still the old one");
	memset(&st, 0, sizeof st);
	snprintf(st.appid, sizeof st.appid, "wxfail0002");
	st.kind = CRED_OFFICIAL;
	memcpy(st.token, big, sizeof big);
	child_ok(fd, store_token_save(&st) == -1,
	    "saving an access token that cannot be written returns -1");
	child_ok(fd, store_token_load("wxfail0002", &st) == 0,
	    "and no token is stored");
	child_ok(fd, store_batch_begin() == 0, "a batch begins");
	test_idem_row(&si, "kfail", 1000);
	memcpy(si.errmsg, big, sizeof si.errmsg - 1);
	si.errmsg[sizeof si.errmsg - 1] = '\0';
	child_ok(fd, store_idem_put(&si) == 0, "a key is put into the batch");
	child_ok(fd, store_batch_end(1) == -1,
	    "a batch whose commit cannot be written returns -1");
	memset(&seen, 0, sizeof seen);
	store_idem_foreach(0, test_idem_cb, &seen);
	child_ok(fd, strstr(seen.keys, "kfail") == NULL, "and its key is not stored");
	child_ok(fd, store_synchronous() == 2, "synchronous is FULL after it");

	if (recover(dir) != 0) {
		child_ok(fd, 0, "writing possible again");
		return;
	}
	child_ok(fd, store_authorizer_save(&sa) == 0,
	    "once the disk has room again, the save works");
	child_ok(fd, store_authorizer_load("wxfail0001", &got) == 1 &&
	    strcmp(got.refresh_token, big) == 0, "and the new token is stored");
	store_close();
}

/* No file may grow or be written (RLIMIT_FSIZE 0: EFBIG, as an I/O error). */
static int
test_fsize_fail(const char *dir)
{
	struct rlimit	rl = { 0, RLIM_INFINITY };

	(void)dir;
	signal(SIGXFSZ, SIG_IGN);
	return (setrlimit(RLIMIT_FSIZE, &rl));
}

static int
test_fsize_recover(const char *dir)
{
	struct rlimit	rl = { RLIM_INFINITY, RLIM_INFINITY };

	(void)dir;
	return (setrlimit(RLIMIT_FSIZE, &rl));
}

static void
test_fsize_child(const char *dir, int fd)
{
	test_fail_writes(dir, fd, test_fsize_fail, test_fsize_recover);
}

/* The directory that holds dir (which need not exist yet), allocated. */
static char *
test_parent(const char *dir)
{
	char	*top = xstrdup(dir);

	*strrchr(top, '/') = '\0';
	return (top);
}

/* Fill the file system of dir's parent with a filler file until ENOSPC. */
static int
test_full_fail(const char *dir)
{
	char	 buf[4096], *path, *top;
	int	 fd;

	memset(buf, 'F', sizeof buf);
	top = test_parent(dir);
	xasprintf(&path, "%s/filler", top);
	free(top);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	free(path);
	if (fd == -1)
		return (-1);
	while (write(fd, buf, sizeof buf) > 0)
		;
	/* Then the last bytes of a partly used page. */
	while (write(fd, buf, 1) > 0)
		;
	close(fd);
	return (errno == ENOSPC ? 0 : -1);
}

static int
test_full_recover(const char *dir)
{
	char	*path, *top;
	int	 rc;

	top = test_parent(dir);
	xasprintf(&path, "%s/filler", top);
	free(top);
	rc = unlink(path);
	free(path);
	return (rc);
}

/*
 * Mount a private 1 MiB tmpfs on top, in a mount namespace of this (child)
 * process; 0, or -1 after reporting: a skip where mount namespaces are not
 * allowed (a container without CAP_SYS_ADMIN) or "/" is not a mount point (a
 * chroot, such as .ci/fresh's), else a failure.
 */
static int
test_private_tmpfs(int fd, const char *top)
{
	if (unshare(CLONE_NEWNS) != 0) {
		dprintf(fd, "%c mount namespace: %s\n",
		    errno == EPERM || errno == EINVAL ? 's' : '0',
		    strerror(errno));
		return (-1);
	}
	/* In a chroot "/" is no mount point (EINVAL): nothing to make private. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		dprintf(fd, "%c make the mounts private: %s%s\n",
		    errno == EPERM || errno == EINVAL ? 's' : '0',
		    strerror(errno), errno == EINVAL ? " (a chroot?)" : "");
		return (-1);
	}
	if (mount("tmpfs", top, "tmpfs", 0, "size=1m,mode=0700") != 0) {
		dprintf(fd, "%c mount a 1 MiB tmpfs on %s: %s\n",
		    errno == EPERM ? 's' : '0', top, strerror(errno));
		return (-1);
	}
	return (0);
}

/* As root: dir's parent is a private 1 MiB tmpfs, then filled up. */
static void
test_full_child(const char *dir, int fd)
{
	char	*top;

	top = test_parent(dir);
	if (test_private_tmpfs(fd, top) != 0) {
		free(top);
		return;
	}
	free(top);
	test_fail_writes(dir, fd, test_full_fail, test_full_recover);
}

/* As root: a state_dir on a read-only file system is refused at store_open. */
static void
test_readonly_child(const char *dir, int fd)
{
	char	*top, *cause = NULL;
	int	 rc;

	top = test_parent(dir);
	if (test_private_tmpfs(fd, top) != 0) {
		free(top);
		return;
	}
	/* A store made while it was writable, then the file system read-only. */
	if (test_open(dir) != 0) {
		child_ok(fd, 0, "the store opens on the tmpfs");
		free(top);
		return;
	}
	store_close();
	if (mount(NULL, top, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
		child_ok(fd, 0, "remount read-only");
		free(top);
		return;
	}
	rc = store_open(dir, &cause);
	child_ok(fd, rc == -1 && cause != NULL && strstr(cause, dir) != NULL,
	    "store_open on a read-only file system fails, naming the path");
	free(cause);
	store_close();
	free(top);
}

/* The store failing under it: an I/O error, a full disk, a read-only one. */
static void
test_fail(const char *base)
{
	static const struct {
		const char	*name;
		const char	*what;
		void		(*fn)(const char *, int);
		int		 root;
	} cases[] = {
		{ "fsize", "I/O error (RLIMIT_FSIZE)", test_fsize_child, 0 },
		{ "full", "full disk (1 MiB tmpfs)", test_full_child, 1 },
		{ "ro", "read-only file system", test_readonly_child, 1 },
	};
	char	*top, *dir;
	size_t	 i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (cases[i].root && geteuid() != 0) {
			ok(1, "# SKIP %s: not root", cases[i].what);
			continue;
		}
		/* The store's parent: a plain directory, or a mount point. */
		xasprintf(&top, "%s/%s", base, cases[i].name);
		xasprintf(&dir, "%s/state", top);
		mkdir(top, 0700);
		test_in_child(cases[i].what, cases[i].fn, dir);
		free(dir);
		free(top);
	}
}

/* Expect store_open(dir) to fail with a cause holding what; closes the store. */
static void
test_refused(const char *dir, const char *what, const char *name)
{
	char	*cause = NULL;
	int	 rc;

	rc = store_open(dir, &cause);
	ok(rc == -1 && cause != NULL && strstr(cause, what) != NULL,
	    "%s is refused", name);
	if (rc != -1 || cause == NULL || strstr(cause, what) == NULL)
		printf("#   cause: %s\n", cause != NULL ? cause : "(none)");
	store_close();
	free(cause);
}

/*
 * A state_dir others can write, or that is not ours, is refused; so are
 * database files that are links or belong to someone else (issue 13 item 5).
 */
static void
test_trust(const char *base)
{
	char	*dir, *db, *wal, *elsewhere;
	int	 fd;

	xasprintf(&dir, "%s/trust", base);
	xasprintf(&db, "%s/wxpushd.db", dir);
	xasprintf(&wal, "%s/wxpushd.db-wal", dir);
	xasprintf(&elsewhere, "%s/elsewhere", base);
	mkdir(dir, 0700);
	chmod(dir, 01777);
	test_refused(dir, "chmod 700", "a 1777 state_dir");
	chmod(dir, 0770);
	test_refused(dir, "writable by group", "a 0770 state_dir");
	chmod(dir, 0700);
	if (geteuid() == 0) {
		if (chown(dir, 65534, 65534) != 0)
			perror("chown");
		test_refused(dir, "belongs to uid 65534", "another user's state_dir");
		if (chown(dir, 0, 0) != 0)
			perror("chown");
	} else
		ok(1, "# SKIP another user's state_dir needs root");
	if ((fd = open(elsewhere, O_CREAT | O_WRONLY, 0644)) != -1)
		close(fd);
	if (symlink(elsewhere, db) != 0)
		perror("symlink");
	test_refused(dir, "symbolic link", "a database that is a link");
	is_int(test_mode(elsewhere), 0644, "the link's target was not chmod'ed");
	unlink(db);
	ok(test_open(dir) == 0, "a private state_dir opens");
	store_close();
	if (symlink(elsewhere, wal) != 0)
		perror("symlink");
	test_refused(dir, "symbolic link", "a -wal that is a link");
	unlink(wal);
	if (geteuid() == 0) {
		if (chown(db, 65534, 65534) != 0)
			perror("chown");
		test_refused(dir, "belongs to uid 65534", "a planted database");
	} else
		ok(1, "# SKIP a planted database needs root");
	free(elsewhere);
	free(wal);
	free(db);
	free(dir);
}

int
main(void)
{
	char	*dir, *db;

	log_init("test_store", 0, LOG_LEVEL_WARN);
	if (mkdtemp(test_base) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	xasprintf(&dir, "%s/state", test_base);
	xasprintf(&db, "%s/wxpushd.db", dir);

	test_open_modes(dir, db);
	test_durability();
	test_idem();
	test_tokens();
	test_tickets();
	test_authorizers();
	test_many();
	test_events();
	test_idem_msgid();
	test_reopen(dir, db);
	test_from_v2(dir, db);
	test_corrupt_rows(dir, db);
	test_corrupt_file(dir, db);
	test_crash(test_base);
	test_trust(test_base);
	test_fail(test_base);

	harness_rmtree(test_base);
	free(db);
	free(dir);
	return (tap_done());
}
