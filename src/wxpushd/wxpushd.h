/*
 * wxpushd: the daemon's shared types and prototypes, grouped by the file that
 * defines them (tmux.h style). Nothing here is public: the public contract is
 * docs/protocol.md and docs/configuration.md.
 */
#ifndef WXPUSHD_H
#define WXPUSHD_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <msgpack.h>
#include <openssl/crypto.h>

#include "log.h"
#include "rpc-scan.h"
#include "xmalloc.h"

#define WXPUSHD_PROTOCOL	1	/* bump when docs/protocol.md changes incompatibly */

#define WX_APPID_MAX		64	/* appids are 18 characters; leave room */
#define WX_TOKEN_MAX		512	/* WeChat: tokens are up to 512 characters */

enum cred_kind { CRED_OFFICIAL, CRED_COMPONENT, CRED_AUTHORIZER };

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

struct event_base;
struct client;
struct request;
struct cred;
struct upstream_reply;
struct config;

extern struct event_base	*wx_base;	/* the one event loop */
extern struct config		*wx_conf;	/* the configuration in force */
extern time_t			 wx_start_time;
extern int			 wx_stopping;	/* SIGTERM seen: start nothing new */

/* acl.c: who may use an appid, from the peer's kernel credentials. */
enum acl_kind { ACL_UID, ACL_GID };
struct acl_rule {
	enum acl_kind	 kind;
	uint32_t	 id;
};
struct acl {
	int		 set;		/* 0: no allow list, root and our own uid only */
	size_t		 n;
	struct acl_rule	*rules;
};
struct peer {
	uid_t		 uid;
	gid_t		 gid;
	pid_t		 pid;
	size_t		 ngroups;
	gid_t		*groups;	/* supplementary, sorted; read at accept */
};
int	 acl_rule_parse(const char *, struct acl_rule *, char **);
int	 acl_allows(const struct acl *, const struct peer *);
int	 acl_cred_allows(const struct cred *, const struct peer *);
void	 acl_free(struct acl *);
int	 peer_load(int, struct peer *);
void	 peer_free(struct peer *);

/* config.c: the configuration file (libconfuse). */
enum token_api { TOKEN_API_STABLE, TOKEN_API_CLASSIC };

struct account_conf {
	char			*appid;
	char			*secret;	/* wiped on free */
	char			*secret_file;	/* absolute */
	enum token_api		 token_api;
	struct acl		 allow;
	TAILQ_ENTRY(account_conf) entry;
};
TAILQ_HEAD(account_list, account_conf);

struct component_conf {
	char			*appid;
	char			*secret;	/* wiped on free */
	char			*secret_file;
	char			*token;		/* message-check token; wiped on free */
	unsigned char		 aes_key[32];
	int			 has_previous_key;
	unsigned char		 previous_aes_key[32];
	struct acl		 allow;
	TAILQ_ENTRY(component_conf) entry;
};
TAILQ_HEAD(component_list, component_conf);

struct config {
	char		*path;			/* absolute path of the file */
	char		*socket;
	mode_t		 socket_mode;
	char		*state_dir;
	char		*api_base;		/* no trailing slash */
	char		*ca_file;		/* NULL: system CAs */
	int		 refresh_margin;
	int		 upstream_timeout;
	int		 send_timeout;
	int		 max_inflight;
	int		 queue_limit;
	int		 max_clients;
	int		 max_clients_per_uid;
	int		 idle_timeout;		/* seconds; 0 disables */
	int		 drain_timeout;
	size_t		 max_request;
	int		 log_level;
	char		*callback_listen;
	char		*metrics_listen;
	char		*redis;
	char		*redis_password;	/* from redis_password_file; wiped on free */
	char		*user;
	char		*group;
	struct account_list	accounts;
	struct component_list	components;
};
struct config	*config_load(const char *, int *);
void		 config_free(struct config *);
struct account_conf	*config_find_account(struct config *, const char *);
struct component_conf	*config_find_component(struct config *, const char *);

/* server.c: the listening socket and client connections. */
struct client {
	int			 fd;
	uint64_t		 id;
	struct peer		 peer;
	struct bufferevent	*bev;
	struct event		*more;		/* resumes parsing after the per-event quota */
	struct event		*idle;
	TAILQ_HEAD(, request)	 requests;	/* in flight */
	size_t			 nrequests;
	int			 closing;	/* flush the output, then free */
	int			 paused;	/* reading stopped for backpressure */
	TAILQ_ENTRY(client)	 entry;
};
int	 server_listen(void);
void	 server_close(void);
void	 server_stop_accepting(void);
void	 server_client_request_done(struct client *);
size_t	 server_nclients(void);
const char	*server_socket_path(void);
void	 server_drain(void (*)(void));

/* rpc.c: MessagePack-RPC framing, decoding and replies. */

struct rpc_error {
	const char	*code;
	const char	*message;
	int		 retryable;
	const char	*field;		/* NULL if none */
	long		 errcode;	/* WeChat's; 0 if none */
	const char	*errmsg;
	int		 retry_after;	/* seconds; 0 if none */
};

struct request {
	struct client		*client;	/* NULL once the client has gone */
	uint32_t		 msgid;
	int			 notify;	/* a notification: no reply */
	const struct method	*method;
	TAILQ_ENTRY(request)	 entry;
	void			*data;		/* the method's state */
};
/* One request frame as rpc_decode finds it; pointers into its zone. */
struct rpc_decoded {
	int			 notify;	/* a notification: no reply */
	uint32_t		 msgid;		/* 0 for a notification */
	const char		*method;	/* not NUL-terminated */
	size_t			 methodlen;
	const msgpack_object	*params;	/* a map, or NULL if none */
	const char		*bad_field;	/* invalid_request: "method", "params" */
	const char		*bad_message;	/* or both NULL */
};
int	 rpc_decode(msgpack_zone *, const unsigned char *, size_t,
	    struct rpc_decoded *);
int	 rpc_input(struct client *, const unsigned char *, size_t);
msgpack_packer	*rpc_reply_begin(struct request *, size_t);
void	 rpc_reply_end(struct request *);
void	 rpc_reply_error(struct request *, const struct rpc_error *);
void	 rpc_reply_errorx(struct request *, const char *, int, const char *,
	    const char *, ...) __attribute__((format(printf, 5, 6)));
void	 rpc_pack_str(msgpack_packer *, const char *);
void	 rpc_pack_kv_str(msgpack_packer *, const char *, const char *);
void	 rpc_pack_kv_int(msgpack_packer *, const char *, int64_t);
void	 rpc_pack_kv_bool(msgpack_packer *, const char *, int);
const msgpack_object	*rpc_map_get(const msgpack_object *, const char *);
int	 rpc_str_eq(const msgpack_object *, const char *);
int	 rpc_printable(const char *, size_t, size_t);
void	 rpc_shutdown(void);
extern uint64_t	rpc_requests;

/* message.c: validating a send request and building the exact WeChat body. */
struct message {
	char		 appid[WX_APPID_MAX + 1];
	char		*json;		/* the WeChat request body, NUL-terminated */
	size_t		 len;
	char		*idempotency_key;	/* NULL if none */
};
/* 0: msg filled; -1: err filled (static strings, until the next call), msg zeroed. */
int	 message_parse(const msgpack_object *, struct message *, struct rpc_error *);
void	 message_free(struct message *);

/* send.c's outcomes of a send (the error codes, and ok), counted per credential. */
enum send_outcome { SEND_OK, SEND_INVALID, SEND_UNKNOWN_APPID, SEND_FORBIDDEN,
	SEND_BUSY, SEND_UNAVAILABLE, SEND_TIMEOUT, SEND_REVOKED, SEND_WECHAT,
	SEND_INTERNAL, SEND_NOUTCOMES };
#define METRICS_NERRCODES	21	/* metrics.c's known send errcodes, and other */
#define METRICS_NBUCKETS	13	/* send latency histogram buckets, +Inf apart */

/* cred.c: one credential per appid, with its token, refresh timer and send queue. */
enum cred_state { CRED_VALID, CRED_REFRESHING, CRED_EXPIRED, CRED_FAILED,
	CRED_REVOKED };
struct send;
TAILQ_HEAD(send_queue, send);

struct cred {
	char			 appid[WX_APPID_MAX + 1];
	enum cred_kind		 kind;
	struct account_conf	*account;	/* CRED_OFFICIAL */
	struct component_conf	*component;	/* CRED_COMPONENT, CRED_AUTHORIZER */
	struct cred		*parent;	/* CRED_AUTHORIZER: its component */
	char			*refresh_token;	/* CRED_AUTHORIZER; wiped on free */

	char			*token;		/* NULL if none; wiped on free */
	uint64_t		 gen;		/* bumped with every new token */
	time_t			 expires_at;
	time_t			 refreshed_at;
	time_t			 token_issued;	/* when we got this token */
	int			 invalid;	/* the current token was refused */
	int			 after_refusal;	/* a refusal asked for this token */
	int			 refusal_refresh; /* the refresh in flight is for one */
	int			 revoked;
	int			 removed;	/* gone from the configuration */

	struct upstream_call	*call;		/* refresh in flight */
	struct event		*timer;		/* next refresh or retry */
	int			 backoff;	/* seconds, doubled on failure */
	int			 failures;	/* consecutive failed refreshes */
	int			 permanent;	/* last failure needs an operator */
	long			 last_errcode;
	char			 last_error[96];
	time_t			 breaker_until;	/* no token-failure refreshes before */
	int			 breaker_backoff;
	int			 force_day, force_count;	/* stable force_refresh */
	time_t			 force_last;
	int			 calls_day, calls_today;
	uint64_t		 refreshes;
	uint64_t		 sends_ok, sends_failed;
	uint64_t		 sends[SEND_NOUTCOMES];	/* answered, by outcome */
	uint64_t		 sends_errcode[METRICS_NERRCODES];	/* wechat ones */

	struct send_queue	 queue;		/* sends waiting for a token or a slot */
	int			 nqueue;
	int			 inflight;	/* sends upstream now */
	int			 cflags;	/* component.c: an authorizer's state */
	uint64_t		 parent_gen;	/* the component token its refresh used */
	uint64_t		 redis_gen;	/* redis.c: shared generation of token */
	uint64_t		 redis_lease;	/* redis.c: generation leased to us, 0 none */
	int			 redis_busy;	/* redis.c: 1 asking, 2 waiting, 3 go alone */
	struct cred		*hnext;		/* hash chain */
	TAILQ_ENTRY(cred)	 entry;
};
TAILQ_HEAD(cred_list, cred);
extern struct cred_list	cred_all;

int	 cred_init(void);
void	 cred_start(struct cred *);
void	 cred_reconcile(struct config *);
void	 cred_shutdown(void);
struct cred	*cred_find(const char *);
struct cred	*cred_add(const char *, enum cred_kind);
void	 cred_remove(struct cred *);
int	 cred_usable(const struct cred *);
void	 cred_token_failed(struct cred *, uint64_t, long);
void	 cred_adopt(struct cred *, const char *, time_t, uint64_t);
void	 cred_refresh(struct cred *, int);
void	 cred_got_token(struct cred *, const char *, int);
void	 cred_fetch_failed(struct cred *, long, const char *, int);
void	 cred_pump(struct cred *);
void	 cred_token_reply(struct cred *, const struct upstream_reply *,
	    const char *);
int	 cred_parse_token(const struct upstream_reply *, const char *,
	    const char **, int *, long *, const char **);
const char	*cred_state_name(const struct cred *);
const char	*cred_kind_name(enum cred_kind);
int	 cred_today(void);

/* redis.c: sharing tokens between daemons through Redis (hiredis async). */
void	 redis_init(const struct config *);
void	 redis_shutdown(void);
int	 redis_refresh(struct cred *, int);	/* 0: redis.c handles it */
void	 redis_token(struct cred *);
void	 redis_release(struct cred *);
const char	*redis_mode(void);
void	 redis_ticket_put(const char *, const char *, time_t);
void	 redis_ticket_get(const char *);
void	 redis_authorizer_put(const char *, const char *, const char *, int,
	    time_t);
int	 redis_authorizer_get(const char *);	/* 0: answer comes later */

/* send.c: the send method, from request to WeChat's answer. */
struct send {
	struct request		*req;
	struct message		 msg;
	struct cred		*cred;
	int			 attempts;
	int			 auth_retried;	/* one retry after a refused token */
	int			 busy_retries;	/* -1 answers retried */
	uint64_t		 gen;		/* token generation of this attempt */
	int			 queued;
	struct upstream_call	*call;
	struct event		*deadline;
	struct event		*retry;
	struct timeval		 started;	/* accepted at; for the histogram */
	TAILQ_ENTRY(send)	 entry;
	struct idem		*idem;		/* idempotency key entry, or NULL */
	TAILQ_ENTRY(send)	 all;		/* every send not yet answered */
};
void	 send_method(struct request *, const msgpack_object *);
void	 send_start(struct send *);
void	 send_fail_unavailable(struct send *, const char *);
struct json_t;
int	 send_reply_parse(const struct json_t *, long *, char *, size_t);
void	 send_fail_revoked(struct send *);
void	 send_abort(const char *);
void	 send_fail_queued(struct send *, const char *);
void	 send_init(void);
const char	*send_outcome_name(int);
extern uint64_t	send_stats[];

/* httpd.c: an evhttp endpoint on a configured HOST:PORT, movable on reload. */
struct evhttp;
struct evhttp_bound_socket;
struct httpd {
	const char			*name;	/* for the log: "callback", "metrics" */
	struct evhttp			*http;	/* set up by the owner */
	struct evhttp_bound_socket	*sock;
	char				*addr;	/* what sock is bound to */
};
int	 httpd_listen(struct httpd *, const char *);
void	 httpd_reload(struct httpd *, const char *);
void	 httpd_close(struct httpd *);

/* component.c: third-party platforms, their tickets and authorizers. */
struct callback_event;
/* An event or authorization is done: e NULL on success, else why not. */
typedef void (*component_done_cb)(void *, const struct rpc_error *,
	    const char *, const char *);
void	 component_reconcile(struct config *);
void	 component_fetch(struct cred *, int);
void	 component_revoked(struct cred *);
void	 component_token_ready(struct cred *);
void	 component_wanted(struct cred *);
void	 component_shutdown(void);
void	 component_ticket_shared(const char *, const char *, time_t);
void	 component_ticket_sync(struct cred *);
void	 component_authorizer_shared(const char *, const char *, const char *,
	    int, time_t);
void	 component_authorizer_sync(struct cred *);
void	 component_adopted(struct cred *);
const char	*component_detail(const struct cred *);
int64_t	 component_ticket_age(const struct cred *);
void	 component_event_handle(struct component_conf *,
	    const struct callback_event *, component_done_cb, void *);
void	 component_event_method(struct request *, const msgpack_object *);
void	 component_authorize_method(struct request *, const msgpack_object *);
void	 component_preauth_method(struct request *, const msgpack_object *);

/* callback.c: opening component events, and the HTTP endpoint for them. */
#define CALLBACK_BODY_MAX	65536	/* bytes in an event body */
#define CALLBACK_INFO_TYPE_MAX	63
struct callback_event {
	char		 info_type[CALLBACK_INFO_TYPE_MAX + 1];
	char		 authorizer_appid[WX_APPID_MAX + 1];	/* "" if none */
	char		*secret;	/* the ticket or authorization code; wiped */
	size_t		 secretlen;
};
int	 callback_appid_ok(const char *, size_t);
int	 callback_outer_appid(const char *, size_t, char *, size_t, char **);
int	 callback_event_open(const struct component_conf *, const char *,
	    const char *, const char *, const char *, size_t,
	    struct callback_event *, const char **, char **);
void	 callback_event_clear(struct callback_event *);
int	 callback_start(void);
void	 callback_reload(void);
void	 callback_stop(void);

/* method.c: the dispatch table. */
struct method {
	const char	*name;
	void		(*fn)(struct request *, const msgpack_object *);
};
const struct method	*method_find(const char *, size_t);

/* store.c: durable state in SQLite (WAL) under state_dir. Never on the send path. */
struct store_token {
	char		 appid[WX_APPID_MAX + 1];
	enum cred_kind	 kind;
	char		 token[WX_TOKEN_MAX + 1];	/* "" if none */
	time_t		 expires_at;
	time_t		 refreshed_at;
	int		 calls_day;	/* day number (UTC+8, WeChat's quota day) of calls_today */
	int		 calls_today;
};
struct store_authorizer {
	char		 component_appid[WX_APPID_MAX + 1];
	char		 appid[WX_APPID_MAX + 1];
	char		 refresh_token[WX_TOKEN_MAX + 1];
	int		 revoked;
	time_t		 updated_at;
};
int	 store_open(const char *, char **);
void	 store_close(void);
int	 store_token_save(const struct store_token *);
int	 store_token_load(const char *, struct store_token *);	/* 1 found, 0 not, -1 error */
int	 store_ticket_save(const char *, const char *, time_t);
int	 store_ticket_load(const char *, char *, size_t, time_t *);	/* 1, 0, -1 */
int	 store_authorizer_save(const struct store_authorizer *);
int	 store_authorizer_load(const char *, struct store_authorizer *);	/* by appid: 1, 0, -1 */
int	 store_authorizer_foreach(const char *,
	    int (*)(const struct store_authorizer *, void *), void *);
	    /* 0 all visited, the callback's non-zero value, or -1 */
int	 store_integrity_check(char **);	/* 0 "ok", or -1 and a cause */
int	 store_synchronous(void);	/* PRAGMA synchronous now: 0..3, or -1 */
#define IDEM_KEY_MAX		128	/* message.c: 1..128 bytes */
#define IDEM_DIGEST_LEN		32	/* SHA-256 of the WeChat body */
struct store_idem {
	uint32_t	 uid;
	char		 appid[WX_APPID_MAX + 1];
	char		 key[IDEM_KEY_MAX + 1];
	time_t		 created;
	unsigned char	 digest[IDEM_DIGEST_LEN];
	char		 code[16];	/* "ok", "wechat" or "timeout" */
	int		 attempts;
	long		 errcode;
	char		 errmsg[256];
	char		 message[256];
	int		 retryable;
	int		 retry_after;
};
int	 store_batch_begin(void);
int	 store_idem_put(const struct store_idem *);
int	 store_batch_end(int);
int	 store_idem_expire(time_t);
int	 store_idem_foreach(time_t,
	    int (*)(const struct store_idem *, void *), void *);

/* idem.c: idempotency keys, in memory, written behind to the store. */
struct idem;
enum idem_begin { IDEM_NEW, IDEM_ANSWERED, IDEM_WAITING };
int	 idem_init(void);
void	 idem_shutdown(void);
void	 idem_flush(void);
enum idem_begin	 idem_begin(struct request *, const struct message *,
	    struct idem **);
void	 idem_finish_ok(struct idem *, int);
void	 idem_finish_error(struct idem *, const struct rpc_error *);
size_t	 idem_count(void);

/* upstream.c: HTTP(S) to WeChat with libcurl multi on libevent (hiperfifo). */
struct json_t;
struct upstream_reply {
	int		 ok;		/* 1: HTTP 200 and a JSON object body */
	long		 http_status;	/* 0 if no HTTP answer */
	const char	*error;		/* when !ok: a short reason, never a URL */
	struct json_t	*json;		/* borrowed, valid during the callback */
	double		 seconds;	/* how long the call took */
};
typedef void (*upstream_cb)(const struct upstream_reply *, void *);
struct upstream_call;
int	 upstream_init(struct event_base *);
void	 upstream_configure(const struct config *);
void	 upstream_shutdown(void);
struct upstream_call	*upstream_request(const char *, const char *,
	    const char *, const char *, size_t, upstream_cb, void *);
void	 upstream_cancel(struct upstream_call *);
size_t	 upstream_inflight(void);
void	 upstream_errmsg(const struct json_t *, char *, size_t);

/* metrics.c: counters for monitoring, and the Prometheus endpoint. */
struct metrics_histogram {
	uint64_t	 buckets[METRICS_NBUCKETS];	/* not cumulative */
	uint64_t	 count;
	uint64_t	 sum_us;
};
extern struct metrics_histogram	metrics_send_duration;
extern uint64_t	metrics_sends_nocred[SEND_NOUTCOMES];
extern uint64_t	metrics_sends_errcode[METRICS_NERRCODES];
void	 metrics_count_send(struct cred *, int, long, const struct timeval *);
int	 metrics_errcode_index(long);
const char	*metrics_errcode_name(int);
const char	*metrics_bucket_name(int);
int	 metrics_start(void);
void	 metrics_reload(void);
void	 metrics_stop(void);

/* systemd.c: notifications, watchdog and socket activation (libsystemd). */
int	 systemd_listen_fd(const char *);
void	 systemd_ready(void);
void	 systemd_reloading(void);
void	 systemd_stopping(void);
void	 systemd_shutdown(void);

#endif
