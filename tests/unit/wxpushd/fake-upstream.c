/*
 * A fake of upstream.c for unit tests: requests are recorded, not sent, and
 * the test answers each one when it chooses (fake_answer) or fails it
 * (fake_fail). Linked before the daemon's library, it replaces upstream.c
 * whole, so nothing reaches the network. fake_daemon() sets up what the
 * daemon's core needs around it: a store, an event loop, a configuration.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wxpushd.h"
#include "fake-upstream.h"

struct upstream_call {
	struct fake_call	 fc;
	upstream_cb		 cb;
	void			*arg;
	TAILQ_ENTRY(upstream_call) entry;
};
static TAILQ_HEAD(, upstream_call) fake_calls =
    TAILQ_HEAD_INITIALIZER(fake_calls);
static size_t	fake_n;
static int	fake_json_changed;	/* by the last answer's callback */

int
upstream_init(struct event_base *base)
{
	(void)base;
	return (0);
}

void
upstream_configure(const struct config *conf)
{
	(void)conf;
}

void
upstream_shutdown(void)
{
	struct upstream_call *call;

	while ((call = TAILQ_FIRST(&fake_calls)) != NULL)
		upstream_cancel(call);
}

size_t
upstream_inflight(void)
{
	return (fake_n);
}

struct upstream_call *
upstream_request(const char *method, const char *path, const char *query,
    const char *body, size_t len, upstream_cb cb, void *arg)
{
	struct upstream_call *call;

	call = xcalloc(1, sizeof *call);
	call->fc.method = xstrdup(method);
	call->fc.path = xstrdup(path);
	call->fc.query = query != NULL ? xstrdup(query) : NULL;
	call->fc.body = body != NULL ? xstrndup(body, len) : NULL;
	call->cb = cb;
	call->arg = arg;
	TAILQ_INSERT_TAIL(&fake_calls, call, entry);
	fake_n++;
	return (call);
}

static void
fake_free(struct upstream_call *call)
{
	TAILQ_REMOVE(&fake_calls, call, entry);
	fake_n--;
	free(call->fc.method);
	free(call->fc.path);
	free(call->fc.query);
	free(call->fc.body);
	free(call);
}

void
upstream_cancel(struct upstream_call *call)
{
	fake_free(call);
}

/* How many calls wait for an answer; to path only, unless path is NULL. */
size_t
fake_pending(const char *path)
{
	struct upstream_call *call;
	size_t n = 0;

	TAILQ_FOREACH(call, &fake_calls, entry) {
		if (path == NULL || strcmp(call->fc.path, path) == 0)
			n++;
	}
	return (n);
}

/* The oldest call waiting on path, or NULL. */
struct upstream_call *
fake_first(const char *path)
{
	struct upstream_call *call;

	TAILQ_FOREACH(call, &fake_calls, entry) {
		if (strcmp(call->fc.path, path) == 0)
			return (call);
	}
	return (NULL);
}

/* What was asked. */
const struct fake_call *
fake_call(const struct upstream_call *call)
{
	return (&call->fc);
}

/*
 * Answer call with HTTP 200 and the JSON object json; the call is gone after.
 * The object is read-only for the callback, as upstream.c's may be shared:
 * fake_changed() says whether it was changed all the same.
 */
void
fake_answer(struct upstream_call *call, const char *json)
{
	struct upstream_reply r;
	json_error_t je;
	upstream_cb cb = call->cb;
	void *arg = call->arg;
	char *before, *after;
	size_t refs;

	memset(&r, 0, sizeof r);
	r.ok = 1;
	r.http_status = 200;
	if ((r.json = json_loads(json, 0, &je)) == NULL)
		fatalx("fake_answer: bad JSON: %s", je.text);
	before = json_dumps(r.json, JSON_SORT_KEYS | JSON_COMPACT);
	refs = r.json->refcount;
	fake_free(call);
	cb(&r, arg);
	after = json_dumps(r.json, JSON_SORT_KEYS | JSON_COMPACT);
	fake_json_changed = before == NULL || after == NULL ||
	    strcmp(before, after) != 0 || r.json->refcount != refs;
	free(before);
	free(after);
	json_decref(r.json);
}

/* Whether the last fake_answer's callback changed the JSON object it got. */
int
fake_changed(void)
{
	return (fake_json_changed);
}

/* Answer the oldest call to path with json; -1 if there is none. */
int
fake_answer_first(const char *path, const char *json)
{
	struct upstream_call *call = fake_first(path);

	if (call == NULL)
		return (-1);
	fake_answer(call, json);
	return (0);
}

/* Answer the oldest stable_token call with token (for 7200 s); -1: none. */
int
fake_token(const char *token)
{
	char json[256];

	snprintf(json, sizeof json, "{\"access_token\":\"%s\","
	    "\"expires_in\":7200}", token);
	return (fake_answer_first("/cgi-bin/stable_token", json));
}

/* The JSON body of the oldest call to path, or NULL (the caller decrefs). */
static json_t *
fake_body(const char *path)
{
	struct upstream_call *call = fake_first(path);

	if (call == NULL || call->fc.body == NULL)
		return (NULL);
	return (json_loads(call->fc.body, 0, NULL));
}

/* The string field name of the oldest call to path's body, or "". */
const char *
fake_body_str(const char *path, const char *name)
{
	static char buf[256];
	json_t *j;

	buf[0] = '\0';
	if ((j = fake_body(path)) == NULL)
		return (buf);
	snprintf(buf, sizeof buf, "%s",
	    json_string_value(json_object_get(j, name)) != NULL ?
	    json_string_value(json_object_get(j, name)) : "");
	json_decref(j);
	return (buf);
}

/* The integer field name of the oldest call to path's body, or -1. */
long
fake_body_int(const char *path, const char *name)
{
	json_t *j;
	long v = -1;

	if ((j = fake_body(path)) == NULL)
		return (-1);
	if (json_is_integer(json_object_get(j, name)))
		v = (long)json_integer_value(json_object_get(j, name));
	json_decref(j);
	return (v);
}

/* Whether field name of the oldest call to path's body is true; -1: no body. */
int
fake_body_true(const char *path, const char *name)
{
	json_t *j;
	int v;

	if ((j = fake_body(path)) == NULL)
		return (-1);
	v = json_is_true(json_object_get(j, name));
	json_decref(j);
	return (v);
}

/* Whether the oldest call to path has exactly the query q. */
int
fake_query_is(const char *path, const char *q)
{
	struct upstream_call *call = fake_first(path);

	return (call != NULL && call->fc.query != NULL &&
	    strcmp(call->fc.query, q) == 0);
}

/* Fail call as upstream.c would: status 0 for a transport error. */
void
fake_fail(struct upstream_call *call, long status, const char *error)
{
	struct upstream_reply r;
	upstream_cb cb = call->cb;
	void *arg = call->arg;

	memset(&r, 0, sizeof r);
	r.http_status = status;
	r.error = error;
	fake_free(call);
	cb(&r, arg);
}

/*
 * The core's surroundings for a test: a store in a new temporary directory
 * (its path in dir), then as fake_daemon_open.
 */
void
fake_daemon(struct config *conf, time_t now, char *dir, size_t dirlen)
{
	snprintf(dir, dirlen, "/tmp/wxpushd-unit.XXXXXX");
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	fake_daemon_open(conf, now, dir);
}

/*
 * The core's surroundings on the state directory dir (a restart opens the
 * same one again): its store, wx_base, wx_conf = conf with the defaults the
 * tests use, and the clock fixed at now.
 */
void
fake_daemon_open(struct config *conf, time_t now, const char *dir)
{
	char *cause = NULL;

	if (store_open(dir, &cause) != 0)
		fatalx("store_open: %s", cause);
	wx_base = event_base_new();
	conf->refresh_margin = 300;
	conf->upstream_timeout = 10;
	conf->send_timeout = 5;
	conf->max_inflight = 4;
	conf->queue_limit = 100;
	TAILQ_INIT(&conf->accounts);
	TAILQ_INIT(&conf->components);
	wx_conf = conf;
	clock_set(now);
}
