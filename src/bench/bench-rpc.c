/*
 * The daemon side of wxpush-bench: C MessagePack-RPC connections to wxpushd's
 * socket, each keeping D requests in flight. A request is packed once; each
 * send patches its msgid (a fixed 0xce uint32) and writes the same bytes, so
 * the client costs little next to the daemon it measures.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <msgpack.h>

#include "log.h"
#include "xmalloc.h"
#include "rpc-scan.h"
#include "bench.h"

#define BENCH_RPC_SLOT_BITS	12	/* msgid: sequence << 12 | slot */
#define BENCH_RPC_SLOT_MASK	((1u << BENCH_RPC_SLOT_BITS) - 1)
#define BENCH_RPC_MAX_FRAME	(1024 * 1024)	/* bytes in one answer */

struct bench_conn {
	int			 id;
	struct bufferevent	*bev;
	uint32_t		 seq;
	uint32_t		*msgid;		/* per slot: the msgid awaited */
	uint64_t		*start;		/* per slot: when it was sent, 0 free */
	int			 inflight;
};

static struct bench_conn	*bench_rpc_conns;
static size_t			 bench_rpc_nconns;
static size_t			 bench_rpc_alive;
static int			*bench_rpc_idle_fds;
static size_t			 bench_rpc_nidle;
static unsigned char		*bench_rpc_req;
static size_t			 bench_rpc_reqlen;
static size_t			 bench_rpc_msgid_off;	/* of the 0xce byte */
static msgpack_zone		*bench_rpc_zone;

static void	bench_rpc_fail(struct bench_conn *, const char *);

/* A packed string. */
static void
bench_rpc_str(msgpack_packer *pk, const char *s)
{
	size_t	n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Pack the one request every send repeats, with room for a 32-bit msgid. */
static void
bench_rpc_template(void)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;
	static const unsigned char msgid[5] = { 0xce, 0, 0, 0, 0 };
	/* enqueue takes send's params: a message each. */
	int		send = strcmp(bench_opts.method, "ping") != 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	bench_rpc_msgid_off = sb.size;
	msgpack_sbuffer_write(&sb, (const char *)msgid, sizeof msgid);
	bench_rpc_str(&pk, bench_opts.method);
	if (!send)
		msgpack_pack_array(&pk, 0);
	else {
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 6);
		bench_rpc_str(&pk, "appid");
		bench_rpc_str(&pk, bench_opts.appid);
		bench_rpc_str(&pk, "touser");
		bench_rpc_str(&pk, BENCH_TOUSER);
		bench_rpc_str(&pk, "template_id");
		bench_rpc_str(&pk, BENCH_TEMPLATE_ID);
		bench_rpc_str(&pk, "scene");
		msgpack_pack_int(&pk, BENCH_SCENE);
		bench_rpc_str(&pk, "title");
		bench_rpc_str(&pk, BENCH_TITLE);
		bench_rpc_str(&pk, "data");
		msgpack_pack_map(&pk, 1);
		bench_rpc_str(&pk, "content");
		msgpack_pack_map(&pk, 2);
		bench_rpc_str(&pk, "value");
		bench_rpc_str(&pk, BENCH_CONTENT);
		bench_rpc_str(&pk, "color");
		bench_rpc_str(&pk, BENCH_COLOR);
	}
	bench_rpc_req = xmemdup(sb.data, sb.size);
	bench_rpc_reqlen = sb.size;
	msgpack_sbuffer_destroy(&sb);
}

/* Write one request on slot of c. */
static void
bench_rpc_issue(struct bench_conn *c, int slot)
{
	uint32_t	 id;
	unsigned char	*p = bench_rpc_req + bench_rpc_msgid_off + 1;

	id = (c->seq++ << BENCH_RPC_SLOT_BITS) | (uint32_t)slot;
	p[0] = id >> 24;
	p[1] = id >> 16;
	p[2] = id >> 8;
	p[3] = id;
	c->msgid[slot] = id;
	c->start[slot] = bench_now_ns();
	c->inflight++;
	bench.issued++;
	if (bufferevent_write(c->bev, bench_rpc_req, bench_rpc_reqlen) != 0)
		bench_rpc_fail(c, "write failed");
}

/* The value of key in map m, or NULL. */
static const msgpack_object *
bench_rpc_get(const msgpack_object *m, const char *key)
{
	const msgpack_object_kv	*kv;
	size_t			 n = strlen(key);
	uint32_t		 i;

	for (i = 0; i < m->via.map.size; i++) {
		kv = &m->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == n &&
		    memcmp(kv->key.via.str.ptr, key, n) == 0)
			return (&kv->val);
	}
	return (NULL);
}

/*
 * The error code of an error map, made printable, or "error"; WeChat's
 * refusals carry their errcode too ("wechat_40001").
 */
static void
bench_rpc_code(const msgpack_object *e, char *buf, size_t len)
{
	const msgpack_object	*v, *ec;
	uint32_t		 i, n;

	snprintf(buf, len, "error");
	if (e->type != MSGPACK_OBJECT_MAP)
		return;
	v = bench_rpc_get(e, "code");
	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return;
	n = v->via.str.size < len - 1 ? v->via.str.size : (uint32_t)len - 1;
	for (i = 0; i < n; i++) {
		buf[i] = v->via.str.ptr[i];
		if (buf[i] < 0x21 || buf[i] > 0x7e)
			buf[i] = '?';
	}
	buf[n] = '\0';
	ec = bench_rpc_get(e, "errcode");
	if (ec != NULL && (ec->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    ec->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) && n < len - 16)
		snprintf(buf + n, len - n, "_%lld", (long long)ec->via.i64);
}

/* One answer: match it by msgid, count it, and send again on its slot. */
static int
bench_rpc_answer(struct bench_conn *c, const unsigned char *p, size_t len)
{
	msgpack_object		 o, *a;
	size_t			 off = 0;
	uint32_t		 id, slot;
	uint64_t		 start;
	char			 code[BENCH_ERR_LEN];

	if (msgpack_unpack((const char *)p, len, &off, bench_rpc_zone, &o) !=
	    MSGPACK_UNPACK_SUCCESS || off != len)
		goto bad;
	if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4)
		goto bad;
	a = o.via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1 ||
	    a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[1].via.u64 > UINT32_MAX)
		goto bad;
	id = (uint32_t)a[1].via.u64;
	slot = id & BENCH_RPC_SLOT_MASK;
	if (slot >= (uint32_t)bench_opts.depth || c->start[slot] == 0 ||
	    c->msgid[slot] != id)
		goto bad;
	start = c->start[slot];
	c->start[slot] = 0;
	c->inflight--;
	if (a[2].type == MSGPACK_OBJECT_NIL)
		bench_record(start, NULL);
	else {
		bench_rpc_code(&a[2], code, sizeof code);
		bench_record(start, code);
	}
	msgpack_zone_clear(bench_rpc_zone);
	if (bench.phase != BENCH_DONE)
		bench_rpc_issue(c, (int)slot);
	/* A failed write frees the connection and its input buffer. */
	return (c->bev != NULL ? 0 : -1);
bad:
	msgpack_zone_clear(bench_rpc_zone);
	bench_rpc_fail(c, "not a valid answer");
	return (-1);
}

/* Answers arrived: handle every complete one. */
static void
bench_rpc_read_cb(struct bufferevent *bev, void *arg)
{
	struct bench_conn	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	const unsigned char	*p;
	size_t			 len, off = 0, objlen;
	enum rpc_scan		 rc;

	if ((len = evbuffer_get_length(in)) == 0)
		return;
	if ((p = evbuffer_pullup(in, -1)) == NULL) {
		bench_rpc_fail(c, "out of memory");
		return;
	}
	while (off < len) {
		rc = rpc_scan(p + off, len - off, BENCH_RPC_MAX_FRAME, &objlen);
		if (rc == RPC_SCAN_MORE)
			break;
		if (rc == RPC_SCAN_BAD) {
			bench_rpc_fail(c, "not MessagePack or too large");
			return;
		}
		if (bench_rpc_answer(c, p + off, objlen) == -1)
			return;
		off += objlen;
	}
	evbuffer_drain(in, off);
}

/* The daemon closed the connection, or it failed. */
static void
bench_rpc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & BEV_EVENT_EOF)
		bench_rpc_fail(arg, "closed by the daemon");
	else if (what & BEV_EVENT_ERROR)
		bench_rpc_fail(arg, "connection error");
}

/* Give up on c; stop the run once no connection is left. */
static void
bench_rpc_fail(struct bench_conn *c, const char *why)
{
	if (c->bev == NULL)
		return;
	if (bench.phase != BENCH_DONE)
		log_warnx("connection %d: %s", c->id, why);
	bufferevent_free(c->bev);
	c->bev = NULL;
	bench.lost++;
	bench_rpc_alive--;
	if (bench_rpc_alive == 0 && bench.phase != BENCH_DONE)
		bench_stop("every connection to the daemon was lost");
}

/* A connected, blocking-connected Unix socket; -1 with errno on failure. */
static int
bench_rpc_connect(void)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(bench_opts.socket) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", bench_opts.socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	/* Blocking: a full backlog waits for the daemon to accept. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* Open n connections that never send anything. */
int
bench_rpc_idle(int n)
{
	int	fd;

	bench_rpc_idle_fds = xcalloc((size_t)n, sizeof *bench_rpc_idle_fds);
	for (bench_rpc_nidle = 0; bench_rpc_nidle < (size_t)n;
	    bench_rpc_nidle++) {
		if ((fd = bench_rpc_connect()) == -1) {
			log_warn("idle connection %zu to %s", bench_rpc_nidle,
			    bench_opts.socket);
			return (-1);
		}
		bench_rpc_idle_fds[bench_rpc_nidle] = fd;
	}
	return (0);
}

/* Connect the measuring clients and fill their pipelines. */
int
bench_rpc_start(void)
{
	struct bench_conn	*c;
	int			 fd, i, j;

	bench_rpc_template();
	bench_rpc_zone = msgpack_zone_new(4096);
	if (bench_rpc_zone == NULL)
		fatalx("msgpack_zone_new failed");
	bench_rpc_conns = xcalloc((size_t)bench_opts.conns, sizeof *c);
	for (i = 0; i < bench_opts.conns; i++) {
		c = &bench_rpc_conns[i];
		c->id = i;
		if ((fd = bench_rpc_connect()) == -1) {
			log_warn("connect %s", bench_opts.socket);
			return (-1);
		}
		evutil_make_socket_nonblocking(fd);
		c->bev = bufferevent_socket_new(bench.base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL)
			fatalx("bufferevent_socket_new failed");
		c->msgid = xcalloc((size_t)bench_opts.depth, sizeof *c->msgid);
		c->start = xcalloc((size_t)bench_opts.depth, sizeof *c->start);
		bufferevent_setcb(c->bev, bench_rpc_read_cb, NULL,
		    bench_rpc_event_cb, c);
		bufferevent_enable(c->bev, EV_READ);
		bench_rpc_nconns++;
		bench_rpc_alive++;
	}
	for (i = 0; i < bench_opts.conns; i++) {
		c = &bench_rpc_conns[i];
		for (j = 0; j < bench_opts.depth && c->bev != NULL; j++)
			bench_rpc_issue(c, j);
	}
	return (0);
}

/* Connections still measuring. */
size_t
bench_rpc_active(void)
{
	return (bench_rpc_alive);
}

/* Close everything. */
void
bench_rpc_close(void)
{
	size_t	i;

	for (i = 0; i < bench_rpc_nconns; i++) {
		if (bench_rpc_conns[i].bev != NULL)
			bufferevent_free(bench_rpc_conns[i].bev);
		free(bench_rpc_conns[i].msgid);
		free(bench_rpc_conns[i].start);
	}
	free(bench_rpc_conns);
	bench_rpc_conns = NULL;
	bench_rpc_nconns = bench_rpc_alive = 0;
	for (i = 0; i < bench_rpc_nidle; i++)
		close(bench_rpc_idle_fds[i]);
	free(bench_rpc_idle_fds);
	bench_rpc_idle_fds = NULL;
	bench_rpc_nidle = 0;
	if (bench_rpc_zone != NULL)
		msgpack_zone_free(bench_rpc_zone);
	bench_rpc_zone = NULL;
	free(bench_rpc_req);
	bench_rpc_req = NULL;
}
