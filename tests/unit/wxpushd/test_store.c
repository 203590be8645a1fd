/* Unit tests for store.c: the SQLite state under a temporary state_dir. */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "wxpushd.h"
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
		printf("# raw: %s\n", sqlite3_errmsg(h));
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
	printf("# store_open: %s\n", cause);
	free(cause);
	return (-1);
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
	printf("# %d saves (one transaction each) in %.3f s; foreach in %.3f s\n",
	    TEST_MANY, t1 - t0, t2 - t1);
}

/* Collect the msgid of idempotency key "k-msgid" (and count rows). */
static int
test_idem_cb(const struct store_idem *si, void *arg)
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
	is_int(store_idem_foreach(0, test_idem_cb, &msgid), 0,
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
	ok(1, "store_close twice is safe");
	is_int(store_token_load("wx0000000000000001", &st), -1,
	    "a load on a closed store is an error");
	chmod(db, 0644);
	ok(test_open(dir) == 0, "reopen");
	is_int(test_mode(db), 0600, "reopen took group and others' access away");
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
	printf("# crash test seed %u\n", seed);
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

/* nftw callback removing everything. */
static int
test_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return (remove(path));
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
	test_tokens();
	test_tickets();
	test_authorizers();
	test_many();
	test_idem_msgid();
	test_reopen(dir, db);
	test_corrupt_rows(dir, db);
	test_corrupt_file(dir, db);
	test_crash(test_base);

	nftw(test_base, test_rm, 16, FTW_DEPTH | FTW_PHYS);
	free(db);
	free(dir);
	return (tap_done());
}
