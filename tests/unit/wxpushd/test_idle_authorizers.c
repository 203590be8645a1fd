/*
 * A million authorizers: with authorizer_idle, a start loads only the
 * authorizers used within the window; an idle one stays in the store until a
 * send (cred_lookup) or an event names it, then costs one indexed read and,
 * at its use, one api_authorizer_token call. When it was used is written to
 * the store at refresh time, never on the send path.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define COMP		"wxcomponent0001"
#define B1		"wxactive0001"		/* used an hour ago */
#define B2		"wxidle0002"		/* used three days ago */
#define B3		"wxidle0003"		/* idle and revoked */
#define B4		"wxidle0004"		/* idle, then unauthorized */
#define B5		"wxidle0005"		/* idle, with a consent */
#define EP_COMPONENT	"/cgi-bin/component/api_component_token"
#define EP_AUTHORIZER	"/cgi-bin/component/api_authorizer_token"

static struct config		conf;
static struct component_conf	cc;
static time_t			t0 = 1700000000;
static char			dir[64];
static struct client		client;

static time_t
stored_used(const char *appid, int *revoked)
{
	struct store_authorizer sa;

	if (store_authorizer_load(appid, &sa) != 1)
		return (-1);
	if (revoked != NULL)
		*revoked = sa.revoked;
	return (sa.last_used);
}

/* The stats a peer of uid gets, as text. */
static const char *
stats_as(uid_t uid)
{
	static char buf[16384];
	msgpack_sbuffer sb;
	msgpack_packer pk;

	client.peer.uid = uid;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 0);
	harness_request(&client, method_find("stats", 5)->fn, &sb);
	harness_reply(&client, buf, sizeof buf);
	return (buf);
}

static void
event_done(void *arg, const struct rpc_error *e, const char *info_type,
    const char *appid)
{
	(void)info_type;
	(void)appid;
	*(int *)arg = e == NULL ? 1 : -1;
}

int
main(void)
{
	struct ingress_event ev;
	struct cred *c;
	uint64_t total, used;
	const char *why;
	int revoked = 0, n, done = 0, yes = 1;

	log_init("test_idle_authorizers", 1, LOG_LEVEL_ERR);
	fake_daemon(&conf, t0, dir, sizeof dir);
	conf.authorizer_idle = 86400;
	harness_component(&conf, &cc, COMP, t0 - 60);
	harness_authorizer(COMP, B1, "RTB1", 0, t0 - 3600, t0 - 3600);
	harness_authorizer(COMP, B2, "RTB2", 0, t0 - 3 * 86400, t0 - 3 * 86400);
	harness_authorizer(COMP, B3, "RTB3", 1, t0 - 3 * 86400, t0 - 3 * 86400);
	harness_authorizer(COMP, B4, "RTB4", 0, t0 - 3 * 86400, t0 - 3 * 86400);
	send_init();
	component_init();
	component_reconcile(&conf);

	/* The start. */
	ok(cred_find(B1) != NULL, "an authorizer used within authorizer_idle "
	    "is loaded at start");
	ok(cred_find(B2) == NULL && cred_find(B3) == NULL &&
	    cred_find(B4) == NULL, "idle ones stay in the store");
	is_int(store_authorizer_count(COMP, t0 - 86400, &total, &used), 0,
	    "the store counts them");
	ok(total == 4 && used == 1, "4 stored, 1 used within the window");

	event_base_loop(wx_base, EVLOOP_ONCE);
	fake_answer_first(EP_COMPONENT, "{\"component_access_token\":\"CT1\","
	    "\"expires_in\":7200}");
	for (n = 0; n < 20 && fake_pending(EP_AUTHORIZER) == 0; n++)
		event_base_loop(wx_base, EVLOOP_ONCE);	/* the spread start */
	is_int(fake_pending(EP_AUTHORIZER), 1, "only the active one "
	    "refreshes once the component has its token");
	is_str(fake_body_str(EP_AUTHORIZER, "authorizer_appid"), B1,
	    "and it is " B1);
	fake_answer_first(EP_AUTHORIZER,
	    "{\"authorizer_access_token\":\"ATB1\","
	    "\"expires_in\":7200,\"authorizer_refresh_token\":\"RTB1\"}");

	/* A send for an idle one: loaded on demand, one token call at use. */
	c = cred_lookup(B2);
	ok(c != NULL && cred_kind(c) == CRED_AUTHORIZER &&
	    strcmp(authorizer_component_appid(c), COMP) == 0,
	    "a send naming an idle authorizer loads it from the store");
	if (c == NULL)
		return (tap_done());
	ok(cred_find(B2) == c, "it is in memory from then on");
	is_int(fake_pending(EP_AUTHORIZER), 0, "loading costs no token call");
	is_str(cred_state_name(c), "idle", "its state is idle until used");
	cred_use(c);	/* send_submit */
	cred_use(c);	/* a second send at once */
	cred_wanted(c);
	is_int(fake_pending(EP_AUTHORIZER), 1, "its first send fetches a "
	    "token: one api_authorizer_token call for both sends");
	is_str(fake_body_str(EP_AUTHORIZER, "authorizer_refresh_token"),
	    "RTB2", "with its stored refresh token");
	fake_answer_first(EP_AUTHORIZER,
	    "{\"authorizer_access_token\":\"ATB2\","
	    "\"expires_in\":7200,\"authorizer_refresh_token\":\"RTB2\"}");
	ok(cred_usable(c), "it has its token");
	ok(stored_used(B2, NULL) < t0, "its use is not written between the "
	    "token and the send (no commit of its own there)");
	/* The flush, in 5 s (the unload sweep's turns wake the loop too). */
	for (n = 0; n < 20 && stored_used(B2, NULL) < t0; n++)
		event_base_loop(wx_base, EVLOOP_ONCE);
	is_int((int)(stored_used(B2, NULL) - t0), 0, "its use is written "
	    "behind, in the next flush's batch");
	is_int(store_authorizer_count(COMP, t0 - 86400, &total, &used), 0,
	    "counted again");
	ok(total == 4 && used == 2, "2 of 4 used within the window now");

	/* Revoked and idle: loaded as revoked; unknown: nothing. */
	c = cred_lookup(B3);
	ok(c != NULL && cred_revoked(c), "an idle revoked authorizer loads "
	    "as revoked (a send gets revoked, not unknown_appid)");
	ok(cred_lookup("wxnotstored") == NULL, "an appid stored nowhere is "
	    "unknown");
	ok(cred_find("wxnotstored") == NULL, "and nothing is made for it");

	/* An unauthorized event for an idle authorizer is kept durably. */
	memset(&ev, 0, sizeof ev);
	snprintf(ev.info_type, sizeof ev.info_type, "unauthorized");
	snprintf(ev.authorizer_appid, sizeof ev.authorizer_appid, "%s", B4);
	ev.create_time = t0;
	component_event_handle(&cc, &ev, event_done, &done);
	is_int(done, 1, "an unauthorized event for an idle authorizer is "
	    "applied");
	ok(stored_used(B4, &revoked) >= 0 && revoked == 1, "an unauthorized "
	    "event for an idle authorizer commits the revocation");

	/*
	 * stats counts an idle authorizer's consents by its component's
	 * allow list, through the store, without loading it.
	 */
	harness_authorizer(COMP, B5, "RTB5", 0, t0 - 3 * 86400,
	    t0 - 3 * 86400);
	cc.allow.set = 1;
	cc.allow.n = 1;
	cc.allow.rules = xcalloc(1, sizeof *cc.allow.rules);
	cc.allow.rules[0].kind = ACL_UID;
	cc.allow.rules[0].id = 1234;
	conf.consent_ttl = 30 * 86400;
	conf.consent_max = 100;
	if (consent_init() != 0)
		fatalx("consent_init");
	if (consent_record(B5, "oUSER_openid_0001", "TPL_idle", 1000,
	    "0123456789abcdef0123456789abcdef", "", &yes, &why) != 1)
		fatalx("consent_record: %s", why);
	harness_client(&client, wx_base);
	ok(strstr(stats_as(1234), "\"appid\"=>\"" B5 "\", \"template_id\"=>"
	    "\"TPL_idle\", \"state\"=>\"granted\", \"count\"=>1") != NULL,
	    "stats counts the consent of an idle authorizer for a peer its "
	    "component allows");
	ok(cred_find(B5) == NULL, "without loading it");
	ok(strstr(stats_as(4321), B5) == NULL, "a peer the component does "
	    "not allow does not see it");
	c = cred_lookup(B5);
	if (c != NULL)
		cred_unload(c);
	ok(c != NULL && cred_find(B5) == c && cred_removed(c) &&
	    strstr(stats_as(1234), "\"appid\"=>\"" B5 "\"") != NULL,
	    "unloaded, and not yet freed, it is counted through the store "
	    "again");
	return (tap_done());
}
