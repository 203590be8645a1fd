/*
 * Unit tests for idem.c: repeats answered from memory, repeats waiting for the
 * first send, a key reused for another message, per-caller keys, which
 * outcomes are remembered, and the write-behind to the store and back.
 * Requests come from fake clients whose replies are read back from their
 * output buffers (MessagePack, as a client would see them). Keys shared
 * between hosts go through a fake share (Redis's claims), whose answers the
 * test gives: claimed, held by another host (settled or in flight), a
 * different message, or Redis unreachable.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wxpushd.h"
#include "harness.h"
#include "tap.h"

#define T_APPID	"wx1234567890abcdef"

static char	test_base[] = "/tmp/test_idem.XXXXXX";

/* The fake share: the last claim asked, and what was settled or dropped. */
static struct {
	int		 down;		/* claim() fails at once */
	int		 nclaims, nsettled, nunclaimed;
	char		 key[128];
	char		 claim[512];
	redis_claim_cb	 cb;
	void		*arg;
	char		 settled[4096];	/* the last final value */
	char		 skey[128];
	char		 uclaim[512];	/* the last claim dropped */
} fake;

/* The resume callback: how the parked first send ended. */
static struct {
	int		 n;
	enum idem_begin	 how;
} resumed;

static int
fake_claim(const char *key, const char *val, long ttl_ms, redis_claim_cb cb,
    void *arg)
{
	(void)ttl_ms;
	if (fake.down)
		return (-1);
	fake.nclaims++;
	snprintf(fake.key, sizeof fake.key, "%s", key);
	snprintf(fake.claim, sizeof fake.claim, "%s", val);
	fake.cb = cb;
	fake.arg = arg;
	return (0);
}

static void
fake_settle(const char *key, const char *claim, const char *val, time_t at)
{
	(void)at;
	if (strcmp(claim, fake.claim) != 0)
		return;		/* not the claim that was asked */
	fake.nsettled++;
	snprintf(fake.skey, sizeof fake.skey, "%s", key);
	snprintf(fake.settled, sizeof fake.settled, "%s", val);
}

static void
fake_unclaim(const char *key, const char *claim)
{
	(void)key;
	fake.nunclaimed++;
	snprintf(fake.uclaim, sizeof fake.uclaim, "%s", claim);
}

static const struct idem_share fake_share = {
	.claim = fake_claim,
	.settle = fake_settle,
	.unclaim = fake_unclaim,
};

/* Redis answers the last claim (once). */
static void
fake_answer(enum redis_claim got, const char *v)
{
	redis_claim_cb	 cb = fake.cb;

	fake.cb = NULL;
	if (cb == NULL) {
		printf("Bail out! no claim to answer\n");
		exit(1);
	}
	cb(fake.arg, got, v, v != NULL ? strlen(v) : 0);
}

/* Run the loop's due events after ms. */
static void
test_loop(int ms)
{
	if (ms > 0)
		usleep((useconds_t)ms * 1000);
	event_base_loop(wx_base, EVLOOP_NONBLOCK);
}

static void
test_resume(void *arg, enum idem_begin how)
{
	(void)arg;
	resumed.n++;
	resumed.how = how;
}
static uint32_t	test_msgid;

/* A connected client of uid, its replies kept in its output buffer. */
static struct client *
test_client(uid_t uid)
{
	struct client	*c;
	int		 sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		printf("Bail out! socketpair\n");
		exit(1);
	}
	close(sv[1]);
	c = xcalloc(1, sizeof *c);
	c->fd = sv[0];
	c->peer.uid = uid;
	TAILQ_INIT(&c->requests);
	/*
	 * Never enabled for writing: what is packed stays in the buffer, which
	 * the test drains itself (a bufferevent keeps it frozen for its own use).
	 */
	c->bev = bufferevent_socket_new(wx_base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	evbuffer_unfreeze(bufferevent_get_output(c->bev), 1);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);	/* test_loop runs */
	c->more = event_new(wx_base, -1, 0, NULL, NULL);
	return (c);
}

static void
test_client_free(struct client *c)
{
	bufferevent_free(c->bev);
	event_free(c->more);
	free(c);
}

/* A request of c in flight, as rpc_input makes it. */
static struct request *
test_request(struct client *c)
{
	struct request	*req = xcalloc(1, sizeof *req);

	req->client = c;
	req->msgid = ++test_msgid;
	TAILQ_INSERT_TAIL(&c->requests, req, entry);
	c->nrequests++;
	return (req);
}

/* The entry of a send that must have been new: the test cannot go on without. */
static struct idem *
test_need(struct idem *i, int line)
{
	if (i == NULL) {
		printf("Bail out! line %d: no entry for a send that must be new\n",
		    line);
		exit(1);
	}
	return (i);
}
#define NEED(i)	test_need((i), __LINE__)

/* A send's message: its body (what the digest covers) and its key. */
static void
test_message(struct message *msg, const char *body, const char *key)
{
	memset(msg, 0, sizeof *msg);
	snprintf(msg->appid, sizeof msg->appid, "%s", T_APPID);
	msg->json = (char *)body;
	msg->len = strlen(body);
	msg->idempotency_key = (char *)key;
}

/* What c has been answered since the last call: the error and result maps. */
struct test_reply {
	int		 n;		/* replies read */
	uint32_t	 msgid;		/* of the last one */
	int		 ok;		/* the last one was a result */
	char		 code[32];	/* its error code, if not */
	char		 field[32];
	long		 errcode;
	long		 attempts;
	int		 retryable;
};

/* Read c's replies; fills r from the last one. */
static void
test_replies(struct client *c, struct test_reply *r)
{
	struct evbuffer		*out = bufferevent_get_output(c->bev);
	msgpack_unpacker	 u;
	msgpack_unpacked	 m;
	const msgpack_object	*a, *map, *v;
	size_t			 len = evbuffer_get_length(out);
	uint32_t		 i;

	memset(r, 0, sizeof *r);
	if (len == 0)
		return;
	if (!msgpack_unpacker_init(&u, len) ||
	    !msgpack_unpacker_reserve_buffer(&u, len)) {
		printf("Bail out! msgpack_unpacker\n");
		exit(1);
	}
	if (evbuffer_remove(out, msgpack_unpacker_buffer(&u), len) != (int)len) {
		printf("Bail out! evbuffer_remove\n");
		exit(1);
	}
	msgpack_unpacker_buffer_consumed(&u, len);
	msgpack_unpacked_init(&m);
	while (msgpack_unpacker_next(&u, &m) == MSGPACK_UNPACK_SUCCESS) {
		r->n++;
		if (m.data.type != MSGPACK_OBJECT_ARRAY ||
		    m.data.via.array.size != 4)
			continue;
		a = m.data.via.array.ptr;
		r->msgid = (uint32_t)a[1].via.u64;
		r->ok = a[2].type == MSGPACK_OBJECT_NIL;
		map = r->ok ? &a[3] : &a[2];
		r->code[0] = r->field[0] = '\0';
		r->errcode = r->attempts = 0;
		r->retryable = 0;
		if (map->type != MSGPACK_OBJECT_MAP)
			continue;
		for (i = 0; i < map->via.map.size; i++) {
			const msgpack_object *k = &map->via.map.ptr[i].key;

			v = &map->via.map.ptr[i].val;
			if (rpc_str_eq(k, "code") && v->type == MSGPACK_OBJECT_STR)
				snprintf(r->code, sizeof r->code, "%.*s",
				    (int)v->via.str.size, v->via.str.ptr);
			else if (rpc_str_eq(k, "field") &&
			    v->type == MSGPACK_OBJECT_STR)
				snprintf(r->field, sizeof r->field, "%.*s",
				    (int)v->via.str.size, v->via.str.ptr);
			else if (rpc_str_eq(k, "errcode"))
				r->errcode = (long)v->via.i64;
			else if (rpc_str_eq(k, "attempts"))
				r->attempts = (long)v->via.i64;
			else if (rpc_str_eq(k, "retryable"))
				r->retryable = v->type == MSGPACK_OBJECT_BOOLEAN &&
				    v->via.boolean;
		}
	}
	msgpack_unpacked_destroy(&m);
	msgpack_unpacker_destroy(&u);
}

/*
 * Answer the first send's own request (send.c would), so it is freed, and
 * drop that answer and any other unread one: the test looks at repeats only.
 */
static void
test_answer(struct request *req)
{
	struct client	*c = req->client;
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	rpc_reply_begin(req, 0);
	rpc_reply_end(req);
	evbuffer_drain(out, evbuffer_get_length(out));
}

/* A WeChat error for idem_finish_error. */
static struct rpc_error *
test_error(const char *code, long errcode, int retryable)
{
	static struct rpc_error	e;

	memset(&e, 0, sizeof e);
	e.code = code;
	e.message = "refused";
	e.errcode = errcode;
	e.errmsg = "errmsg";
	e.retryable = retryable;
	return (&e);
}

struct test_keys {
	int	n;
	char	keys[512];
};

/* store foreach callback: " uid:key=code" for every stored key. */
static int
test_keys_cb(const struct store_idem *si, void *arg)
{
	struct test_keys	*tk = arg;
	size_t			 n = strlen(tk->keys);

	snprintf(tk->keys + n, sizeof tk->keys - n, " %u:%s=%s",
	    (unsigned)si->uid, si->key, si->code);
	tk->n++;
	return (0);
}

int
main(void)
{
	struct client		*alice, *bob, *carol;
	char			 held[4096], *p;
	int			 nclaims;
	struct rpc_error	*e;
	struct request		*first, *req;
	struct message		 a, b;
	struct test_reply	 r;
	struct test_keys	 tk;
	struct idem		*i, *i2;
	char			*dir, *cause;
	uint32_t		 msgid;

	log_init("test_idem", 0, LOG_LEVEL_WARN);
	if (mkdtemp(test_base) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	xasprintf(&dir, "%s/state", test_base);
	wx_base = event_base_new();
	if (store_open(dir, &cause) != 0) {
		printf("Bail out! store_open: %s\n", cause);
		return (1);
	}
	is_int(idem_init(), 0, "idem_init");
	alice = test_client(1001);
	bob = test_client(1002);
	carol = test_client(1003);
	test_message(&a, "{\"touser\":\"o1\",\"title\":\"A\"}", "order-1");
	test_message(&b, "{\"touser\":\"o1\",\"title\":\"B\"}", "order-1");

	/* No key: nothing to remember. */
	test_message(&b, b.json, NULL);
	req = test_request(alice);
	is_int(idem_begin(req, &b, &i), IDEM_NEW, "no key: a new send");
	ok(i == NULL && idem_count() == 0, "no key: nothing held");
	test_answer(req);
	test_message(&b, "{\"touser\":\"o1\",\"title\":\"B\"}", "order-1");

	/* The first send, and a repeat while it is in flight. */
	first = test_request(alice);
	is_int(idem_begin(first, &a, &i), IDEM_NEW, "a new key: a new send");
	ok(i != NULL && idem_count() == 1, "the key is held");
	req = test_request(alice);
	msgid = req->msgid;	/* req is freed when it is answered */
	is_int(idem_begin(req, &a, &i2), IDEM_WAITING,
	    "a repeat while the first is in flight waits");
	test_replies(alice, &r);
	is_int(r.n, 0, "and is not answered yet");
	idem_finish_ok(NEED(i), 2, 0);
	test_replies(alice, &r);
	ok(r.n == 1 && r.ok && r.msgid == msgid && r.attempts == 2,
	    "the waiting repeat gets the first send's answer (attempts %ld)",
	    r.attempts);
	test_answer(first);
	test_replies(alice, &r);

	/* Repeats after it: answered from memory; another message is refused. */
	req = test_request(alice);
	is_int(idem_begin(req, &a, &i2), IDEM_ANSWERED, "a later repeat");
	test_replies(alice, &r);
	ok(r.n == 1 && r.ok && r.attempts == 2, "is answered ok from memory");
	req = test_request(alice);
	is_int(idem_begin(req, &b, &i2), IDEM_ANSWERED,
	    "the key with another message");
	test_replies(alice, &r);
	ok(r.n == 1 && !r.ok && strcmp(r.code, "invalid_request") == 0 &&
	    strcmp(r.field, "idempotency_key") == 0,
	    "is refused as invalid_request on idempotency_key (%s)", r.code);

	/* Keys are per caller: bob's order-1 is his own. */
	first = test_request(bob);
	is_int(idem_begin(first, &b, &i), IDEM_NEW,
	    "another uid's same key is a new send");
	idem_finish_ok(NEED(i), 1, 0);
	test_answer(first);
	test_replies(bob, &r);
	is_int(idem_count(), 2, "two keys held");

	/* A retryable refusal is forgotten: the repeat is sent again. */
	test_message(&a, a.json, "order-2");
	first = test_request(alice);
	is_int(idem_begin(first, &a, &i), IDEM_NEW, "order-2: a new send");
	req = test_request(alice);
	idem_begin(req, &a, &i2);
	idem_finish_error(NEED(i), test_error("wechat", -1, 1));
	test_replies(alice, &r);
	ok(r.n == 1 && !r.ok && strcmp(r.code, "wechat") == 0 &&
	    r.errcode == -1 && r.retryable,
	    "its waiting repeat gets the same retryable error");
	test_answer(first);
	req = test_request(alice);
	is_int(idem_begin(req, &a, &i), IDEM_NEW,
	    "a retryable refusal is not remembered: the next repeat is sent");
	/* A final refusal is remembered. */
	idem_finish_error(NEED(i), test_error("wechat", 43101, 0));
	test_answer(req);
	req = test_request(alice);
	is_int(idem_begin(req, &a, &i2), IDEM_ANSWERED,
	    "a final refusal is remembered");
	test_replies(alice, &r);
	ok(r.n == 1 && !r.ok && strcmp(r.code, "wechat") == 0 &&
	    r.errcode == 43101 && !r.retryable, "and answered again (%ld)",
	    r.errcode);
	/* A timeout is remembered: it may have been delivered. */
	test_message(&a, a.json, "order-3");
	first = test_request(alice);
	idem_begin(first, &a, &i);
	idem_finish_error(NEED(i), test_error("timeout", 0, 1));
	test_answer(first);
	req = test_request(alice);
	is_int(idem_begin(req, &a, &i2), IDEM_ANSWERED,
	    "a timeout is remembered, though retryable");
	test_replies(alice, &r);
	ok(r.n == 1 && strcmp(r.code, "timeout") == 0, "and answered timeout");

	/* Written behind to the store, and loaded at the next start. */
	idem_flush();
	memset(&tk, 0, sizeof tk);
	store_idem_foreach(0, test_keys_cb, &tk);
	ok(tk.n == 4 && strstr(tk.keys, " 1001:order-1=ok") != NULL &&
	    strstr(tk.keys, " 1002:order-1=ok") != NULL &&
	    strstr(tk.keys, " 1001:order-2=wechat") != NULL &&
	    strstr(tk.keys, " 1001:order-3=timeout") != NULL,
	    "the remembered outcomes are stored, per uid, the forgotten one "
	    "not:%s", tk.keys);
	idem_shutdown();
	is_int(idem_count(), 0, "idem_shutdown forgets everything in memory");
	is_int(idem_init(), 0, "idem_init again");
	is_int(idem_count(), 4, "the stored keys are loaded");
	test_message(&a, a.json, "order-2");
	req = test_request(alice);
	is_int(idem_begin(req, &a, &i2), IDEM_ANSWERED,
	    "a repeat after a restart is answered from the store");
	test_replies(alice, &r);
	ok(r.n == 1 && r.errcode == 43101, "with the stored refusal");
	req = test_request(bob);
	is_int(idem_begin(req, &a, &i), IDEM_NEW,
	    "bob's order-2, which only alice used, is a new send for him");
	idem_finish_ok(NEED(i), 1, 0);
	test_answer(req);
	test_replies(bob, &r);

	/*
	 * Shared through Redis. A new key is claimed before its send goes; a
	 * repeat on this host waits on the one entry; the final answer replaces
	 * the claim, under a hash of the key.
	 */
	idem_set_share(&fake_share);
	test_message(&a, "{\"touser\":\"o2\",\"title\":\"S\"}", "shared-1");
	first = test_request(carol);
	memset(&resumed, 0, sizeof resumed);
	is_int(idem_begin_shared(first, &a, &i, test_resume, NULL),
	    IDEM_CLAIMING, "shared: a new key is claimed in Redis first");
	ok(fake.nclaims == 1 && strncmp(fake.key, "wxpushd:idem:", 13) == 0 &&
	    strlen(fake.key) == 13 + 64 && strstr(fake.key, "shared") == NULL &&
	    strstr(fake.claim, "\"pending\"") != NULL,
	    "under a hash of the key, as pending (%s)", fake.key);
	req = test_request(carol);
	msgid = req->msgid;
	is_int(idem_begin_shared(req, &a, &i2, test_resume, NULL), IDEM_WAITING,
	    "a repeat on this host while the claim is asked waits");
	test_loop(0);
	is_int(resumed.n, 0, "the first send is parked until Redis answers");
	fake_answer(REDIS_CLAIM_OURS, NULL);
	is_int(resumed.n, 0, "and resumed from the loop, not inside redis.c");
	test_loop(1);
	ok(resumed.n == 1 && resumed.how == IDEM_NEW,
	    "claimed: the first send goes (%d)", resumed.n);
	idem_finish_ok(NEED(i), 3, 77);
	test_replies(carol, &r);
	ok(r.n == 1 && r.ok && r.msgid == msgid && r.attempts == 3,
	    "the waiting repeat gets the answer");
	test_answer(first);
	ok(fake.nsettled == 1 && strcmp(fake.skey, fake.key) == 0 &&
	    strstr(fake.settled, "\"final\"") != NULL &&
	    strstr(fake.settled, "\"attempts\":3") != NULL,
	    "the final answer settles our claim: %s", fake.settled);
	snprintf(held, sizeof held, "%s", fake.settled);

	/* Another host (bob here: another key) holds the answer: no send. */
	first = test_request(bob);
	msgid = first->msgid;
	memset(&resumed, 0, sizeof resumed);
	is_int(idem_begin_shared(first, &a, &i, test_resume, NULL),
	    IDEM_CLAIMING, "another host's key: claimed first");
	ok(strcmp(fake.key, fake.skey) != 0, "per uid: another Redis key");
	fake_answer(REDIS_CLAIM_HELD, held);
	test_loop(1);
	test_replies(bob, &r);
	ok(resumed.n == 1 && resumed.how == IDEM_ANSWERED && r.n == 1 &&
	    r.ok && r.msgid == msgid && r.attempts == 3,
	    "settled elsewhere: answered with that answer, not sent");
	req = test_request(bob);
	is_int(idem_begin_shared(req, &a, &i2, test_resume, NULL),
	    IDEM_ANSWERED, "and remembered here: the next repeat costs no "
	    "round trip");
	test_replies(bob, &r);

	/* In flight on another host: asked again until it is settled. */
	test_message(&a, a.json, "shared-2");
	first = test_request(carol);
	msgid = first->msgid;
	memset(&resumed, 0, sizeof resumed);
	idem_begin_shared(first, &a, &i, test_resume, NULL);
	nclaims = fake.nclaims;
	snprintf(held, sizeof held, "%s", fake.claim);	/* "another's" claim */
	fake_answer(REDIS_CLAIM_HELD, held);
	test_loop(1);
	is_int(resumed.n, 0, "in flight elsewhere: parked");
	is_int(fake.nclaims, nclaims, "not asked again at once");
	test_loop(300);
	is_int(fake.nclaims, nclaims + 1, "asked again after the poll interval");
	/* The other host settles it: its final value, this message's digest. */
	p = strstr(held, "\"pending\"");
	memcpy(p, "\"final\"  ", 9);
	snprintf(held + strlen(held) - 1, sizeof held - strlen(held) + 1,
	    ",\"code\":\"wechat\",\"attempts\":1,\"msgid\":0,\"errcode\":43101,"
	    "\"errmsg\":\"no consent\",\"message\":\"refused\","
	    "\"retryable\":false,\"retry_after\":0}");
	fake_answer(REDIS_CLAIM_HELD, held);
	test_loop(1);
	test_replies(carol, &r);
	ok(resumed.n == 1 && resumed.how == IDEM_ANSWERED && r.n == 1 &&
	    !r.ok && r.msgid == msgid && strcmp(r.code, "wechat") == 0 &&
	    r.errcode == 43101, "then answered with its final answer "
	    "(%s %ld)", r.code, r.errcode);

	/* The key used for another message elsewhere: refused, not sent. */
	test_message(&b, "{\"touser\":\"o2\",\"title\":\"other\"}", "shared-3");
	first = test_request(carol);
	memset(&resumed, 0, sizeof resumed);
	idem_begin_shared(first, &b, &i, test_resume, NULL);
	fake_answer(REDIS_CLAIM_HELD, held);	/* a's digest */
	test_loop(1);
	test_replies(carol, &r);
	ok(resumed.n == 1 && resumed.how == IDEM_ANSWERED && r.n == 1 &&
	    strcmp(r.code, "invalid_request") == 0 &&
	    strcmp(r.field, "idempotency_key") == 0,
	    "another message under the key elsewhere: invalid_request");

	/* Redis lost while another host's send is in flight: retry later. */
	test_message(&a, a.json, "shared-4");
	first = test_request(carol);
	memset(&resumed, 0, sizeof resumed);
	idem_begin_shared(first, &a, &i, test_resume, NULL);
	snprintf(held, sizeof held, "%s", fake.claim);
	fake_answer(REDIS_CLAIM_HELD, held);
	test_loop(1);
	fake.down = 1;
	test_loop(300);
	test_replies(carol, &r);
	ok(resumed.n == 1 && resumed.how == IDEM_ANSWERED && r.n == 1 &&
	    strcmp(r.code, "unavailable") == 0 && r.retryable,
	    "Redis lost while waiting: unavailable, retryable (%s)", r.code);
	/* Redis unreachable: this host's table only, at once. */
	test_message(&a, a.json, "shared-5");
	req = test_request(carol);
	is_int(idem_begin_shared(req, &a, &i, test_resume, NULL), IDEM_NEW,
	    "Redis unreachable: a new key goes at once (local)");
	fake.down = 0;
	idem_finish_ok(NEED(i), 1, 0);
	test_answer(req);
	test_replies(carol, &r);
	/* Redis failing the claim: local as well. */
	test_message(&a, a.json, "shared-6");
	first = test_request(carol);
	memset(&resumed, 0, sizeof resumed);
	idem_begin_shared(first, &a, &i, test_resume, NULL);
	fake_answer(REDIS_CLAIM_FAILED, NULL);
	test_loop(1);
	ok(resumed.n == 1 && resumed.how == IDEM_NEW,
	    "a failed claim: the send goes, local only");
	/* A retryable answer drops our claim. */
	idem_finish_error(NEED(i), test_error("wechat", -1, 1));
	test_answer(first);
	is_int(fake.nunclaimed, 0, "a claim Redis never took is not dropped");
	test_message(&a, a.json, "shared-7");
	first = test_request(carol);
	idem_begin_shared(first, &a, &i, test_resume, NULL);
	fake_answer(REDIS_CLAIM_OURS, NULL);
	test_loop(1);
	idem_finish_error(NEED(i), test_error("busy", 0, 1));
	test_answer(first);
	ok(fake.nunclaimed == 1 && strcmp(fake.uclaim, fake.claim) == 0,
	    "a retryable answer drops our claim");
	/* Answered while parked (a stop): the claim, got later, is dropped. */
	test_message(&a, a.json, "shared-8");
	first = test_request(carol);
	memset(&resumed, 0, sizeof resumed);
	idem_begin_shared(first, &a, &i, test_resume, NULL);
	idem_finish_error(NEED(i), test_error("unavailable", 0, 1));
	test_answer(first);
	fake_answer(REDIS_CLAIM_OURS, NULL);
	test_loop(1);
	ok(resumed.n == 0 && fake.nunclaimed == 2,
	    "a send answered while parked is not resumed; its claim is dropped");
	req = test_request(carol);
	is_int(idem_begin(req, &a, &i), IDEM_NEW,
	    "and nothing of it is remembered");
	idem_finish_ok(NEED(i), 1, 0);
	test_answer(req);
	test_replies(carol, &r);
	/* A long errmsg cut inside a UTF-8 character is still settled. */
	test_message(&a, a.json, "shared-9");
	first = test_request(carol);
	idem_begin_shared(first, &a, &i, test_resume, NULL);
	fake_answer(REDIS_CLAIM_OURS, NULL);
	test_loop(1);
	memset(held, 'x', 254);
	memcpy(held + 254, "\xe4\xb8\xad", 4);	/* U+4E2D, NUL */
	e = test_error("wechat", 40003, 0);
	e->errmsg = held;
	nclaims = fake.nsettled;
	idem_finish_error(NEED(i), e);
	test_answer(first);
	p = strstr(fake.settled, "\"errmsg\":\"");
	ok(fake.nsettled == nclaims + 1 && p != NULL &&
	    strspn(p + 10, "x") == 254 && p[10 + 254] == '"',
	    "an errmsg cut at 255 bytes inside a character is settled, cut "
	    "before it");
	idem_set_share(NULL);

	idem_shutdown();
	store_close();
	test_client_free(alice);
	test_client_free(bob);
	test_client_free(carol);
	event_base_free(wx_base);
	harness_rmtree(test_base);
	free(dir);
	return (tap_done());
}
