/*
 * What component events do, with a fixed clock and a fake upstream, events
 * handed to component_event_handle as ingress.c opens them: tickets and
 * authorization changes applied in CreateTime order (and not twice), a
 * ticket aged from its CreateTime, an authorization recorded and answered at
 * once, its code exchanged from the loop, 61010 and no tokens ending it for
 * good (status detail), func_info kept for status.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "tap.h"

#define COMP		"wxcomponenttest001"
#define AUTH1		"wxauthorizertest01"
#define AUTH2		"wxauthorizertest02"
#define AUTH3		"wxauthorizertest03"
#define TOKEN_EP	"/cgi-bin/component/api_component_token"
#define QUERY_EP	"/cgi-bin/component/api_query_auth"
#define PUSH_EP		"/cgi-bin/component/api_start_push_ticket"

static struct config		conf;
static struct component_conf	cc;
static time_t			t0 = 1700000000;

/* What the last done callback said. */
static struct {
	int	calls;
	char	code[32];
	char	info_type[64];
	char	authorizer[WX_APPID_MAX + 1];
} last;

static void
done_cb(void *arg, const struct rpc_error *e, const char *info_type,
    const char *authorizer_appid)
{
	(void)arg;
	last.calls++;
	snprintf(last.code, sizeof last.code, "%s", e != NULL ? e->code : "");
	snprintf(last.info_type, sizeof last.info_type, "%s",
	    info_type != NULL ? info_type : "");
	snprintf(last.authorizer, sizeof last.authorizer, "%s",
	    authorizer_appid != NULL ? authorizer_appid : "");
}

/* Hand an event to component.c: 0 if it answered success. */
static int
event(const char *type, const char *aid, const char *secret, time_t ct)
{
	struct ingress_event ev;

	memset(&ev, 0, sizeof ev);
	snprintf(ev.info_type, sizeof ev.info_type, "%s", type);
	snprintf(ev.authorizer_appid, sizeof ev.authorizer_appid, "%s",
	    aid != NULL ? aid : "");
	if (secret != NULL) {
		ev.secret = xstrdup(secret);
		ev.secretlen = strlen(secret);
	}
	ev.create_time = ct;
	memset(&last, 0, sizeof last);
	component_event_handle(&cc, &ev, done_cb, NULL);
	ingress_event_clear(&ev);
	return (last.calls == 1 && last.code[0] == '\0' ? 0 : -1);
}

/* The ticket the store holds and its time. */
static int
stored_ticket(char *buf, size_t len, time_t *at)
{
	return (store_ticket_load(COMP, buf, len, at));
}

/* Run what is due on the loop now (event_active callbacks). */
static void
loop(void)
{
	event_base_loop(wx_base, EVLOOP_NONBLOCK);
}

/* The body of the pending call to path, or "". */
static const char *
pending_body(const char *path)
{
	struct upstream_call *call = fake_first(path);

	return (call != NULL && fake_call(call)->body != NULL ?
	    fake_call(call)->body : "");
}

static void
setup(void)
{
	char dir[] = "/tmp/wxpushd-test-events.XXXXXX", *cause = NULL;

	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	if (store_open(dir, &cause) != 0)
		fatalx("store_open: %s", cause);
	wx_base = event_base_new();
	conf.refresh_margin = 300;
	conf.upstream_timeout = 10;
	conf.send_timeout = 5;
	conf.max_inflight = 4;
	conf.queue_limit = 100;
	TAILQ_INIT(&conf.accounts);
	TAILQ_INIT(&conf.components);
	cc.appid = xstrdup(COMP);
	cc.secret = xstrdup("SECRET");
	cc.token = xstrdup("TOKEN");
	TAILQ_INSERT_TAIL(&conf.components, &cc, entry);
	wx_conf = &conf;
	clock_set(t0);
	send_init();
	component_init();
	component_reconcile(&conf);
}

/* Tickets: CreateTime order, not twice, aged from CreateTime. */
static void
test_tickets(void)
{
	struct cred *c = cred_find(COMP);
	char buf[64];
	time_t at = 0;

	cred_refresh(c, 0);	/* the first refresh: no ticket yet */
	ok(fake_first(PUSH_EP) != NULL, "no ticket: a push is asked for");
	fake_answer(fake_first(PUSH_EP), "{\"errcode\":0}");
	ok(event("component_verify_ticket", NULL, "ticket@@@one", t0 - 600) ==
	    0, "a ticket created 10 min ago");
	ok(stored_ticket(buf, sizeof buf, &at) == 1 && strcmp(buf,
	    "ticket@@@one") == 0 && at == t0 - 600, "stored with its CreateTime");
	ok(strncmp(component_detail(c), "verify ticket 10 min old", 24) == 0,
	    "aged from its CreateTime (%s)", component_detail(c));
	is_int(component_ticket_age(c), 600, "ticket age 600 s");
	ok(strstr(pending_body(TOKEN_EP), "ticket@@@one") != NULL,
	    "the component token is asked for with it");
	fake_answer(fake_first(TOKEN_EP), "{\"component_access_token\":"
	    "\"COMPTOKEN\",\"expires_in\":7200}");
	ok(cred_usable(c), "the component has a token");

	ok(event("component_verify_ticket", NULL, "ticket@@@older", t0 - 700) ==
	    0, "an older ticket is answered success");
	ok(stored_ticket(buf, sizeof buf, &at) == 1 && strcmp(buf,
	    "ticket@@@one") == 0, "and not kept");
	ok(event("component_verify_ticket", NULL, "ticket@@@one", t0 - 600) ==
	    0, "the same ticket again: success");
	ok(event("component_verify_ticket", NULL, "ticket@@@two", t0 - 600) ==
	    0, "another ticket of the same second");
	ok(stored_ticket(buf, sizeof buf, &at) == 1 && strcmp(buf,
	    "ticket@@@two") == 0, "is kept (another event, not a repeat)");
	ok(event("component_verify_ticket", NULL, "ticket@@@two", t0 - 600) ==
	    0, "that one repeated: success");
	ok(event("component_verify_ticket", NULL, "ticket@@@three", t0 - 650) ==
	    0, "one created between the first and now: success");
	ok(stored_ticket(buf, sizeof buf, &at) == 1 && strcmp(buf,
	    "ticket@@@two") == 0, "neither replaces the newest");
	is_int(fake_pending(NULL), 0, "no call for any of that");
}

/* Authorizations: recorded, answered, exchanged from the loop, in order. */
static void
test_authorizations(void)
{
	struct cred *a;

	ok(event("authorized", AUTH1, "code@@@1", t0) == 0 &&
	    strcmp(last.info_type, "authorized") == 0 &&
	    strcmp(last.authorizer, AUTH1) == 0,
	    "authorized is answered success at once");
	is_int(fake_pending(QUERY_EP), 0, "before any call");
	ok(strstr(component_detail(cred_find(COMP)), "1 authorization being "
	    "exchanged") != NULL, "status: one being exchanged (%s)",
	    component_detail(cred_find(COMP)));
	loop();
	ok(strstr(pending_body(QUERY_EP), "code@@@1") != NULL,
	    "the loop exchanges the code");
	fake_answer(fake_first(QUERY_EP), "{\"authorization_info\":{"
	    "\"authorizer_appid\":\"" AUTH1 "\",\"authorizer_access_token\":"
	    "\"AUTHTOKEN1\",\"expires_in\":7200,\"authorizer_refresh_token\":"
	    "\"refresh@@@1\",\"func_info\":[{\"funcscope_category\":{\"id\":"
	    "15}},{\"funcscope_category\":{\"id\":1}},{\"funcscope_category\":"
	    "{\"id\":15}},{\"x\":1}]}}");
	a = cred_find(AUTH1);
	ok(a != NULL && cred_usable(a), "the authorizer has its token");
	ok(a != NULL && authorizer_permissions(a) != NULL &&
	    strcmp(authorizer_permissions(a), "1,15") == 0,
	    "its permission sets, sorted, without repeats");
	ok(strstr(component_detail(cred_find(COMP)), "being exchanged") ==
	    NULL, "nothing pending any more");

	ok(event("authorized", AUTH1, "code@@@1", t0) == 0,
	    "the same push again: success");
	loop();
	is_int(fake_pending(QUERY_EP), 0, "and nothing exchanged");

	clock_set(t0 + 10);
	ok(event("unauthorized", AUTH1, NULL, t0 + 5) == 0 && cred_revoked(a),
	    "unauthorized revokes");
	ok(event("authorized", AUTH1, "code@@@1", t0) == 0,
	    "the older authorized event replayed: success");
	loop();
	ok(cred_revoked(a) && fake_pending(QUERY_EP) == 0,
	    "but nothing exchanged: still revoked");
	ok(event("authorized", AUTH1, "code@@@2", t0 + 8) == 0,
	    "a newer authorization");
	loop();
	fake_answer(fake_first(QUERY_EP), "{\"authorization_info\":{"
	    "\"authorizer_appid\":\"" AUTH1 "\",\"authorizer_access_token\":"
	    "\"AUTHTOKEN2\",\"expires_in\":7200,\"authorizer_refresh_token\":"
	    "\"refresh@@@2\",\"func_info\":[]}}");
	ok(!cred_revoked(a) && cred_usable(a), "valid again");
	ok(event("unauthorized", AUTH1, NULL, t0 + 5) == 0,
	    "the captured unauthorized event replayed: success");
	ok(!cred_revoked(a), "but not applied");
	ok(strcmp(authorizer_permissions(a), "") == 0, "no permission set now");

	ok(event("authorized", AUTH2, "code@@@dead", t0 + 9) == 0,
	    "an authorization with a dead code: success");
	loop();
	fake_answer(fake_first(QUERY_EP), "{\"errcode\":61010,\"errmsg\":"
	    "\"invalid authorization code\"}");
	ok(strstr(component_detail(cred_find(COMP)), "authorization of "
	    AUTH2 " failed: wechat 61010") != NULL,
	    "61010 ends it, shown in status (%s)",
	    component_detail(cred_find(COMP)));
	ok(cred_find(AUTH2) == NULL, "no authorizer");
	loop();
	is_int(fake_pending(QUERY_EP), 0, "and no retry");

	ok(event("authorized", AUTH3, "code@@@noperm", t0 + 9) == 0,
	    "an authorization without API permissions: success");
	loop();
	fake_answer(fake_first(QUERY_EP), "{\"authorization_info\":{"
	    "\"authorizer_appid\":\"" AUTH3 "\",\"func_info\":[]}}");
	ok(strstr(component_detail(cred_find(COMP)), "authorization of "
	    AUTH3 " failed: no_permission") != NULL,
	    "no tokens: no_permission, final (%s)",
	    component_detail(cred_find(COMP)));
	loop();
	is_int(fake_pending(NULL), 0, "nothing left in flight");
}

int
main(void)
{
	log_init("test_events", 1, LOG_LEVEL_WARN);
	setup();
	test_tickets();
	test_authorizations();
	return (tap_done());
}
