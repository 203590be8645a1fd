/*
 * What the daemon's unit tests do the same way: a root client whose replies
 * stay in its output buffer, a request run through a method as server.c
 * would, the subscribe message most sends use, the loop run until a
 * condition, accounts, components and authorizer rows set up as a
 * configuration and a previous run would, and a state directory removed.
 * Nothing here replaces a module of the daemon (fake-upstream.c does).
 */
#include "config.h"

#include <sys/wait.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "harness.h"

/* nftw callback removing everything. */
static int
harness_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return (remove(path));
}

/* Open the store in dir or stop the test. */
void
harness_store_open(const char *dir)
{
	char *cause = NULL;

	if (store_open(dir, &cause) != 0)
		fatalx("store_open: %s", cause);
}

/* Remove dir and everything under it. */
void
harness_rmtree(const char *dir)
{
	nftw(dir, harness_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A root client with no socket; with base, its replies are kept in an
 * output buffer for harness_reply, without it they go nowhere.
 */
void
harness_client(struct client *c, struct event_base *base)
{
	TAILQ_INIT(&c->requests);
	c->peer.uid = 0;
	if (base != NULL)
		c->bev = bufferevent_socket_new(base, -1, 0);
}

/* Run method with the params packed into sb (then freed) as c's request 1. */
void
harness_request(struct client *c, harness_method method, msgpack_sbuffer *sb)
{
	msgpack_unpacked up;
	struct request *req;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, sb->data, sb->size, NULL) !=
	    MSGPACK_UNPACK_SUCCESS)
		fatalx("harness_request: unpack");
	req = xcalloc(1, sizeof *req);
	req->client = c;
	req->msgid = 1;
	TAILQ_INSERT_TAIL(&c->requests, req, entry);
	c->nrequests++;
	method(req, &up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(sb);
}

/* A subscribe message's six fields, its data one "content" of "hello". */
void
harness_pack_subscribe(msgpack_packer *pk, const char *appid,
    const char *touser, const char *template_id, int scene, const char *title)
{
	msgpack_pack_map(pk, 6);
	rpc_pack_kv_str(pk, "appid", appid);
	rpc_pack_kv_str(pk, "touser", touser);
	rpc_pack_kv_str(pk, "template_id", template_id);
	rpc_pack_kv_int(pk, "scene", scene);
	rpc_pack_kv_str(pk, "title", title);
	rpc_pack_str(pk, "data");
	msgpack_pack_map(pk, 1);
	rpc_pack_str(pk, "content");
	msgpack_pack_map(pk, 1);
	rpc_pack_kv_str(pk, "value", "hello");
}

/* Run method with one subscribe message (title "title") as c's request. */
void
harness_subscribe(struct client *c, harness_method method, const char *appid,
    const char *touser, const char *template_id, int scene)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	harness_pack_subscribe(&pk, appid, touser, template_id, scene, "title");
	harness_request(c, method, &sb);
}

/*
 * The last reply written to c, as text of its error or else its result
 * (into buf, "" if none); earlier replies are dropped. 0, or -1 if there
 * was none.
 */
int
harness_reply(struct client *c, char *buf, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	msgpack_unpacked up;
	size_t n = evbuffer_get_length(out), off = 0;
	const char *data;
	int found = 0;

	buf[0] = '\0';
	if (n == 0)
		return (-1);
	data = (const char *)evbuffer_pullup(out, -1);
	msgpack_unpacked_init(&up);
	while (msgpack_unpack_next(&up, data, n, &off) ==
	    MSGPACK_UNPACK_SUCCESS) {
		if (up.data.type == MSGPACK_OBJECT_ARRAY &&
		    up.data.via.array.size == 4) {
			msgpack_object_print_buffer(buf, len,
			    up.data.via.array.ptr[2].type ==
			    MSGPACK_OBJECT_NIL ? up.data.via.array.ptr[3] :
			    up.data.via.array.ptr[2]);
			found = 1;
		}
	}
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(out, n);
	return (found ? 0 : -1);
}

/* Run the loop (and any thread it waits on) until pred() or about ms. */
int
harness_run_until(int (*pred)(void), int ms)
{
	int i;

	for (i = 0; i < ms / 10; i++) {
		if (pred())
			return (1);
		event_base_loop(wx_base, EVLOOP_NONBLOCK);
		usleep(10 * 1000);
	}
	return (pred());
}

/* One turn of the loop, waiting at most 20 ms: a far timer does not block. */
void
harness_tick(void)
{
	struct timeval tick = { 0, 20000 };

	event_base_loopexit(wx_base, &tick);
	event_base_loop(wx_base, EVLOOP_ONCE);
}

/* Run the loop for ms milliseconds, whatever happens. */
void
harness_run_for(int ms)
{
	int i;

	for (i = 0; i < ms / 10; i++) {
		event_base_loop(wx_base, EVLOOP_NONBLOCK);
		usleep(10 * 1000);
	}
}

/* An official account appid (secret "SECRET", the stable API) in conf. */
void
harness_account(struct config *conf, struct account_conf *ac,
    const char *appid)
{
	ac->appid = xstrdup(appid);
	ac->secret = xstrdup("SECRET");
	ac->token_api = TOKEN_API_STABLE;
	TAILQ_INSERT_TAIL(&conf->accounts, ac, entry);
}

/*
 * The core a consent test runs on, once conf has its store and loop: the
 * official account appid, which needs consent (ledger limits 30 days, 100
 * per user), the root client c with its replies kept, the send path and the
 * ledger started, the account's credential made.
 */
void
harness_consent_core(struct config *conf, struct account_conf *ac,
    struct client *c, const char *appid)
{
	conf->consent_ttl = 30 * 86400;
	conf->consent_max = 100;
	harness_account(conf, ac, appid);
	ac->consent_required = 1;
	harness_client(c, wx_base);
	send_init();
	if (consent_init() != 0)
		fatalx("consent_init");
	official_reconcile(conf);
}

/* A component appid in conf; WeChat pushed its ticket at ticket_at (0: not). */
void
harness_component(struct config *conf, struct component_conf *cc,
    const char *appid, time_t ticket_at)
{
	cc->appid = xstrdup(appid);
	cc->secret = xstrdup("COMPONENTSECRET");
	cc->token = xstrdup("TOKEN");
	TAILQ_INSERT_TAIL(&conf->components, cc, entry);
	if (ticket_at != 0 &&
	    store_ticket_save(appid, "TICKET", ticket_at) != 0)
		fatalx("store_ticket_save");
}

/* Store component's authorizer appid as a previous run would have. */
void
harness_authorizer(const char *component, const char *appid, const char *rt,
    int revoked, time_t updated, time_t used)
{
	struct store_authorizer sa;

	memset(&sa, 0, sizeof sa);
	snprintf(sa.component_appid, sizeof sa.component_appid, "%s",
	    component);
	snprintf(sa.appid, sizeof sa.appid, "%s", appid);
	snprintf(sa.refresh_token, sizeof sa.refresh_token, "%s", rt);
	sa.revoked = revoked;
	sa.updated_at = updated;
	sa.last_used = used;
	if (store_authorizer_save(&sa) != 0)
		fatalx("store_authorizer_save");
}

/* The refresh token stored for appid ("" if none, "?" if no row). */
const char *
harness_stored_rt(const char *appid, int *revoked)
{
	static struct store_authorizer sa;

	if (store_authorizer_load(appid, &sa) != 1)
		return ("?");
	if (revoked != NULL)
		*revoked = sa.revoked;
	return (sa.refresh_token);
}

static void
harness_consent_cb(const struct store_consent *row, void *arg)
{
	snprintf(arg, 16, "%s", row->state);
}

/* The state of the consent in memory into buf[16] ("" if none). */
void
harness_consent_state(const char *appid, const char *openid,
    const char *template_id, char *buf)
{
	buf[0] = '\0';
	consent_foreach(appid, openid, template_id, harness_consent_cb, buf);
}

/*
 * Run fn(arg, fd) in a child that writes len bytes to fd (and exits or dies
 * on its own); into out. Its wait status, or -1 if it wrote less.
 */
int
harness_child(void (*fn)(void *, int), void *arg, void *out, size_t len)
{
	pid_t	pid;
	int	p[2], status;
	ssize_t	n;

	if (pipe(p) == -1)
		fatal("pipe");
	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(p[0]);
		fn(arg, p[1]);
		_exit(1);
	}
	close(p[1]);
	n = read(p[0], out, len);
	close(p[0]);
	if (waitpid(pid, &status, 0) == -1)
		fatal("waitpid");
	return (n == (ssize_t)len ? status : -1);
}
