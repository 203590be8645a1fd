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

enum cred_kind { CRED_OFFICIAL, CRED_COMPONENT, CRED_AUTHORIZER, CRED_JSAPI };

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
void	 acl_free(struct acl *);
int	 peer_load(int, struct peer *);
void	 peer_free(struct peer *);

/* config.c: the configuration file (libconfuse). */
enum token_api { TOKEN_API_STABLE, TOKEN_API_CLASSIC };

/* An apis list: the paths call may use; a final '*' makes a prefix. */
struct apis {
	size_t		 n;
	char		**paths;
};

struct account_conf {
	char			*appid;
	char			*secret;	/* wiped on free */
	char			*secret_file;	/* absolute */
	enum token_api		 token_api;
	struct acl		 allow;
	struct apis		 apis;		/* call: allowed paths */
	int			 consent_required;	/* consent = required */
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
	struct apis		 apis;		/* call, for its authorizers */
	int			 consent_required;	/* for its authorizers */
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
	int		 authorizer_idle;	/* seconds unused before an
						 * authorizer is not refreshed;
						 * 0: never */
	int		 upstream_timeout;
	int		 send_timeout;
	int		 max_inflight;
	int		 queue_limit;
	int		 max_clients;
	int		 max_clients_per_uid;
	int		 idle_timeout;		/* seconds; 0 disables */
	int		 drain_timeout;
	int		 http_max_connections;	/* per HTTP endpoint */
	int		 http_request_timeout;	/* seconds for a whole request */
	int		 outbox_ttl;		/* seconds: default not_after */
	int		 outbox_limit;		/* messages waiting on disk */
	int		 outbox_keep;		/* seconds final states stay */
	size_t		 max_request;
	size_t		 call_max_body;		/* bytes in a call's body */
	size_t		 call_max_answer;	/* bytes of a call's answer */
	int		 log_level;
	char		*callback_listen;
	char		*metrics_listen;
	char		*metrics_token;		/* from metrics_token_file; wiped on free */
	int		 metrics_aggregate;	/* metrics_authorizers = aggregate */
	char		*redis;
	char		*redis_sentinels;	/* "HOST:PORT,..." or NULL */
	char		*redis_master;		/* Sentinel's master name[/DB] */
	char		*redis_password;	/* from redis_password_file; wiped on free */
	char		*user;
	char		*group;
	char		*consent_listen;	/* the redirect endpoint, or NULL */
	char		*consent_key;		/* from consent_key_file; wiped */
	char		*consent_public_url;	/* no trailing slash, or NULL */
	char		*consent_landing_url;	/* or NULL: a small page */
	int		 consent_ttl;		/* seconds a consent is kept */
	int		 consent_max;		/* consents in memory */
	struct account_list	accounts;
	struct component_list	components;
};
struct config	*config_load(const char *, int *);
void		 config_free(struct config *);
struct account_conf	*config_find_account(struct config *, const char *);
struct component_conf	*config_find_component(struct config *, const char *);
const char	*config_apis_match(const struct apis *, const char *, size_t);

/* server.c: the listening socket and client connections. */
struct client {
	int			 fd;
	uint64_t		 id;
	struct peer		 peer;
	struct bufferevent	*bev;		/* writes; its input is filled by rd */
	struct event		*rd;		/* reads the socket (server.c) */
	int			 rd_full;	/* input at its bound: not reading */
	int			 idle_timeout;	/* seconds, as at accept; 0: none */
	struct event		*more;		/* resumes parsing after the per-event quota */
	struct event		*idle;
	TAILQ_HEAD(, request)	 requests;	/* in flight */
	size_t			 nrequests;
	int			 closing;	/* flush the output, then free */
	int			 paused;	/* reading stopped for backpressure */
	struct rpc_scan_state	 scan;		/* how far the next frame is scanned */
	TAILQ_ENTRY(client)	 entry;
};
int	 server_listen(void);
void	 server_close(void);
void	 server_stop_accepting(void);
void	 server_client_request_done(struct client *);
size_t	 server_nclients(void);
const char	*server_socket_path(void);
void	 server_drain(void (*)(void));
struct client	*server_client_find(uint64_t);

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
struct method;
void	 rpc_init(const struct method *(*)(const char *, size_t),
	    void (*)(struct client *));
int	 rpc_input(struct client *, const unsigned char *, size_t);
msgpack_packer	*rpc_reply_begin(struct request *, size_t);
void	 rpc_reply_end(struct request *);
void	 rpc_reply_error(struct request *, const struct rpc_error *);
void	 rpc_reply_errorx(struct request *, const char *, int, const char *,
	    const char *, ...) __attribute__((format(printf, 5, 6)));
msgpack_packer	*rpc_notify_begin(struct client *, const char *, size_t);
void	 rpc_pack_str(msgpack_packer *, const char *);
void	 rpc_pack_kv_str(msgpack_packer *, const char *, const char *);
void	 rpc_pack_kv_int(msgpack_packer *, const char *, int64_t);
void	 rpc_pack_kv_bool(msgpack_packer *, const char *, int);
const msgpack_object	*rpc_map_get(const msgpack_object *, const char *);
int	 rpc_str_eq(const msgpack_object *, const char *);
int	 rpc_printable(const char *, size_t, size_t);
int	 rpc_params_check(struct request *, const msgpack_object *,
	    const char *const *, size_t);
void	 rpc_shutdown(void);
extern uint64_t	rpc_requests;

/* valid.c: the syntax of ids, scenes, tokens and words, in one place. */
#define WX_SCENE_MAX		10000	/* subscribe_once's scene: 0..10000 */
#define WX_SCENE_DIGITS		5
size_t	 valid_id_span(const char *, size_t);
int	 valid_id(const char *, size_t, size_t);
int	 valid_scene(const char *, size_t);
int	 valid_appid(const char *, size_t);
int	 valid_appid_str(const char *);
int	 valid_word(const char *, size_t, size_t);
int	 valid_token(const char *, size_t);
int	 valid_token_str(const char *);

/* clock.c: the time of day, settable by tests. */
time_t	 clock_now(void);
int	 clock_today(void);
long	 clock_until_tomorrow(void);
void	 clock_set(time_t);

/* wxapi.c: WeChat's endpoints and what its errcodes mean. */
enum wxapi_ep { WXAPI_TOKEN, WXAPI_STABLE_TOKEN, WXAPI_COMPONENT_TOKEN,
	WXAPI_START_PUSH_TICKET, WXAPI_AUTHORIZER_TOKEN, WXAPI_QUERY_AUTH,
	WXAPI_CREATE_PREAUTHCODE, WXAPI_GET_AUTHORIZER_LIST,
	WXAPI_SUBSCRIBE_ONCE,
	WXAPI_TEMPLATE_SEND, WXAPI_SUBSCRIBE_BIZSEND, WXAPI_SUBSCRIBE_SEND,
	WXAPI_CUSTOM_SEND, WXAPI_GETTICKET, WXAPI_CALL,
	WXAPI_NENDPOINTS };
struct wxapi_endpoint {
	const char	*name;		/* for logs and metrics */
	const char	*method;	/* GET, POST */
	const char	*path;
	const char	*token_param;	/* the query's token, NULL for none */
	int		 fetch;		/* a token endpoint */
};
enum wxapi_class {
	WXAPI_OK,
	WXAPI_TOKEN_REFUSED,	/* 40001 40014 42001: compare-and-refresh */
	WXAPI_RETRY,		/* -1 and the like: again after a backoff */
	WXAPI_RATE_LIMITED,	/* 45011, 895xx: again after retry_after */
	WXAPI_QUOTA,		/* 45009: the daily quota, until the next day */
	WXAPI_REVOKED,		/* 61003: the merchant revoked the platform */
	WXAPI_REFRESH_TOKEN_REFUSED,	/* 61023 */
	WXAPI_TICKET_REFUSED,	/* 61005 61006: the verify ticket */
	WXAPI_OPERATOR,		/* wrong secret, IP whitelist...: an operator */
	WXAPI_TOKEN_MISSING,	/* 41001: our bug */
	WXAPI_FINAL		/* any other refusal: final */
};
#define WXAPI_NERRCODES		24	/* labelled send errcodes, and other */
struct json_t;
struct upstream_reply;
struct upstream_call;
typedef void (*upstream_cb)(const struct upstream_reply *, void *);
const struct wxapi_endpoint	*wxapi_endpoint(enum wxapi_ep);
struct upstream_call	*wxapi_request(enum wxapi_ep, const char *,
	    const char *, const char *, size_t, upstream_cb, void *);
struct upstream_call	*wxapi_post_json(enum wxapi_ep, const char *,
	    struct json_t *, upstream_cb, void *);
struct upstream_call	*wxapi_request_path(enum wxapi_ep, const char *,
	    const char *, const char *, const char *, const char *, size_t,
	    upstream_cb, void *);
#define WXAPI_PATH_MAX		256	/* bytes in a path for call */
int	 wxapi_path_check(const char *, size_t, int, const char **);
int	 wxapi_path_secret(const char *, size_t);
int	 wxapi_secret_field(const char *, size_t);
int	 wxapi_query_reserved(const char *, size_t);
enum wxapi_class	 wxapi_classify(enum wxapi_ep, long, int *);
long	 wxapi_errcode(const struct upstream_reply *);
void	 wxapi_errmsg(const struct json_t *, char *, size_t);
int	 wxapi_reply_parse(const struct json_t *, long *, char *, size_t);
int	 wxapi_errcode_index(long);
const char	*wxapi_errcode_name(int);
const char	*wxapi_errcode_hint(long);

/* message.c and kind-*.c: validating a send and building WeChat's body. */
struct message;
/* A known key of a map, with its length so lookups need no strlen. */
struct message_key {
	const char	*name;
	size_t		 len;
	int		 required;
};
#define MESSAGE_KEY(s)	{ s, sizeof (s) - 1, 0 }
#define MESSAGE_REQ(s)	{ s, sizeof (s) - 1, 1 }
/* Every kind's params begin with these three, at these indices. */
enum { MESSAGE_APPID, MESSAGE_KIND, MESSAGE_IDEMPOTENCY_KEY, MESSAGE_NCOMMON };
#define MESSAGE_COMMON_KEYS \
	MESSAGE_REQ("appid"), MESSAGE_KEY("kind"), MESSAGE_KEY("idempotency_key")
#define MESSAGE_KEYS_MAX	16
#define MESSAGE_ID_MAX		128	/* touser, template_id: bytes */
#define CONSENT_ID_MAX		128	/* openid, template_id: bytes */
#define CONSENT_REF_MAX		32	/* a caller's reference: bytes */
#define CONSENT_TAG_HEX		32	/* a link's tag as hex */
/* A message kind: a row of message.c's table, a file of its own. */
struct kind {
	const char		*name;
	enum wxapi_ep		 endpoint;
	const struct message_key *keys;	/* MESSAGE_COMMON_KEYS first */
	size_t			 nkeys;
	/* Check the kind's own params (vals by keys) and write msg's body. */
	int			(*build)(const msgpack_object **,
				    struct message *, struct rpc_error *);
};
struct message {
	char		 appid[WX_APPID_MAX + 1];
	const struct kind *kind;
	char		*json;		/* the WeChat request body, NUL-terminated */
	size_t		 len;
	char		*idempotency_key;	/* NULL if none */
	/* subscribe_once: what its consent matches (consent.c). */
	char		 touser[MESSAGE_ID_MAX + 1];
	char		 template_id[MESSAGE_ID_MAX + 1];
	int		 scene;
};
/* A literal piece of a body followed by one string value (or none). */
struct message_part {
	const char	*lit;
	size_t		 litlen;
	const char	*s;
	size_t		 n;
};
#define MESSAGE_PARTS_MAX	160
/* 0: msg filled; -1: err filled (static strings, until the next call), msg zeroed. */
int	 message_parse(const msgpack_object *, struct message *, struct rpc_error *);
void	 message_free(struct message *);
int	 message_error(struct rpc_error *, const char *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
int	 message_missing(struct rpc_error *, const char *,
	    const struct message_key *);
int	 message_fields(const msgpack_object *, const char *,
	    const struct message_key *, size_t, const msgpack_object **,
	    struct rpc_error *);
int	 message_want_str(const msgpack_object *, const char *,
	    struct rpc_error *);
int	 message_want_map(const msgpack_object *, const char *,
	    struct rpc_error *);
int	 message_id(const msgpack_object *, const char *, size_t,
	    struct rpc_error *);
int	 message_check_utf8(const msgpack_object *, const char *, int,
	    size_t *, struct rpc_error *);
int	 message_text_field(const msgpack_object *, const char *, size_t,
	    struct rpc_error *);
int	 message_color(const msgpack_object *, const char *,
	    struct rpc_error *);
int	 message_url(const msgpack_object *, struct rpc_error *);
int	 message_url_field(const msgpack_object *, const char *,
	    struct rpc_error *);
int	 message_path_field(const msgpack_object *, const char *,
	    struct rpc_error *);
int	 message_miniprogram(const msgpack_object *, const msgpack_object **,
	    struct rpc_error *);
int	 message_miniprogram_opt(const msgpack_object *,
	    const msgpack_object **, int, struct rpc_error *);
int	 message_ikey(const msgpack_object *, const char *,
	    struct rpc_error *);
/* One entry of a data map: name -> {value[, color]}. */
struct message_datum {
	const msgpack_object	*name;
	const msgpack_object	*value;
	const msgpack_object	*color;		/* NULL if none */
};
#define MESSAGE_DATA_MAX	32	/* entries of a data map */
#define MESSAGE_DATA_NAME_MAX	32	/* bytes of an entry's name */
/* How message_data checks each value. */
enum message_data_rule {
	MESSAGE_DATA_TEXT,	/* text of 1..200 characters */
	MESSAGE_DATA_TYPED	/* by the name's type prefix (thing1, ...) */
};
int	 message_data(const msgpack_object *, const char *, int,
	    enum message_data_rule, struct message_datum *, size_t *,
	    struct rpc_error *);
int	 message_typed_value(const char *, size_t, const msgpack_object *,
	    const char *, struct rpc_error *);
/* message-value.c: subscribe data values by type prefix (a leaf). */
#define MESSAGE_VALUE_MAX	200	/* code points of any data value */
const char	*message_value_check(const char *, size_t, const char *, size_t);
void	 message_part_data(struct message_part *, size_t *, const char *,
	    const struct message_datum *, size_t);
enum { MESSAGE_MP_APPID, MESSAGE_MP_PAGEPATH, MESSAGE_NMP };
void	 message_part(struct message_part *, size_t *, const char *,
	    const char *, size_t);
void	 message_part_str(struct message_part *, size_t *, const char *,
	    const msgpack_object *);
void	 message_body(struct message *, const struct message_part *, size_t);
const struct kind	*message_parse_kind(const char *, size_t);
extern const struct kind	kind_subscribe_once;
extern const struct kind	kind_template;
extern const struct kind	kind_subscribe;
extern const struct kind	kind_mini_subscribe;
extern const struct kind	kind_custom;

/* send.c's outcomes of a send (the error codes, and ok). */
enum send_outcome { SEND_OK, SEND_INVALID, SEND_UNKNOWN_APPID, SEND_FORBIDDEN,
	SEND_BUSY, SEND_UNAVAILABLE, SEND_TIMEOUT, SEND_REVOKED, SEND_WECHAT,
	SEND_INTERNAL, SEND_NO_CONSENT, SEND_NOUTCOMES };
#define SEND_NBUCKETS	13	/* send latency histogram buckets, +Inf apart */

/*
 * cred.c: one credential per appid: its token, kept fresh, and the only file
 * that writes its state. What differs between kinds is a token source.
 */
enum cred_state { CRED_VALID, CRED_REFRESHING, CRED_EXPIRED, CRED_FAILED,
	CRED_REVOKED };
/* What a credential tells the layer above (send.c) through its listener. */
enum cred_event {
	CRED_EV_READY,		/* a usable token: start what waits */
	CRED_EV_FAILED,		/* no token can come soon: fail what waits */
	CRED_EV_REVOKED,	/* the merchant revoked the platform */
	CRED_EV_REMOVED,	/* gone from the configuration */
	CRED_EV_STOPPING,	/* wxpushd is stopping */
	CRED_EV_UNLOADED	/* out of memory (nothing waits), then removed */
};
struct cred;
/* What a refresh did: a call is in flight, or none was made. */
enum cred_fetch { CRED_FETCH_STARTED, CRED_FETCH_NONE };
/* A kind of credential: how its token is fetched and what else it does. */
struct cred_source {
	const char	*name;		/* "official", "component", "authorizer" */
	enum wxapi_ep	 endpoint;	/* where the token comes from */
	const char	*token_field;	/* the token in the endpoint's answer */
	int		 shared;	/* shared between hosts (Redis) */
	/* Start a refresh; CRED_FETCH_STARTED with *call set, or NONE. */
	enum cred_fetch	(*fetch)(struct cred *, void *, int,
			    struct upstream_call **);
	int		(*can_force)(void *);	/* stable force_refresh */
	const struct acl *(*acl)(void *);	/* who may use it */
	void		(*ready)(struct cred *, void *);	/* a new token */
	void		(*wanted)(struct cred *, void *);	/* a send waits */
	void		(*revoked)(struct cred *, void *);	/* keep it */
	/* Seconds unused after which c is not refreshed; 0: always is. */
	long		(*idle_after)(void *);
};
/* How hosts share tokens (none, or redis.c): cred.c's only view of it. */
struct cred_share {
	/* Before a refresh: 0 if the share takes it from here, -1 to fetch. */
	int		(*acquire)(struct cred *, int);
	void		(*publish)(struct cred *);	/* a new token */
	void		(*release)(struct cred *);	/* a refresh failed */
	int		(*busy)(const struct cred *);	/* a token may come */
	void		(*forget)(struct cred *);	/* c is being freed */
};
typedef void (*cred_listener)(struct cred *, enum cred_event, const char *);
int	 cred_init(void);
void	 cred_shutdown(void);
void	 cred_set_listener(cred_listener);
void	 cred_set_busy(int (*)(const struct cred *));
void	 cred_set_share(const struct cred_share *);
struct cred	*cred_add(const char *, enum cred_kind,
	    const struct cred_source *, void *);
void	 cred_start(struct cred *, int);
void	 cred_remove(struct cred *);
int	 cred_unloadable(const struct cred *, long);
void	 cred_unload(struct cred *);
void	 cred_hold(struct cred *);
void	 cred_release(struct cred *);
struct cred	*cred_find(const char *);
struct cred	*cred_lookup(const char *);
void	 cred_set_loader(struct cred *(*)(const char *));
struct cred	*cred_first(void);
struct cred	*cred_next(const struct cred *);
/* Readers. */
const char	*cred_appid(const struct cred *);
enum cred_kind	 cred_kind(const struct cred *);
const char	*cred_kind_name(enum cred_kind);
const struct cred_source	*cred_source(const struct cred *);
void	*cred_data(const struct cred *);
void	*cred_user(const struct cred *);
void	*cred_share_data(const struct cred *);
int	 cred_usable(const struct cred *);
int	 cred_removed(const struct cred *);
int	 cred_revoked(const struct cred *);
int	 cred_permanent(const struct cred *);
int	 cred_refreshing(const struct cred *);
int	 cred_awaiting(const struct cred *);
int	 cred_invalid(const struct cred *);
int	 cred_shared(const struct cred *);
int	 cred_has_token(const struct cred *);
const char	*cred_token(const struct cred *);
uint64_t	 cred_gen(const struct cred *);
time_t	 cred_expires_at(const struct cred *);
time_t	 cred_refreshed_at(const struct cred *);
int	 cred_expires_in(const struct cred *);
int	 cred_failures(const struct cred *);
long	 cred_last_errcode(const struct cred *);
const char	*cred_last_error(const struct cred *);
int	 cred_calls_today(const struct cred *);
uint64_t	 cred_refreshes(const struct cred *);
const char	*cred_state_name(const struct cred *);
int	 cred_allows(const struct cred *, const struct peer *);
int	 cred_refresh_due(const struct cred *, struct timeval *);
int	 cred_breaker_open(const struct cred *);
int	 cred_idle(const struct cred *);
int	 cred_dozing(const struct cred *);
time_t	 cred_used_at(const struct cred *);
/* Writers: each a transition of the machine. */
void	 cred_set_user(struct cred *, void *);
void	 cred_set_share_data(struct cred *, void *);
void	 cred_set_data(struct cred *, void *);
void	 cred_refresh(struct cred *, int);
void	 cred_refresh_if_used(struct cred *);
void	 cred_use(struct cred *);
void	 cred_set_used(struct cred *, time_t);
void	 cred_cancel(struct cred *);
void	 cred_got_token(struct cred *, const char *, int);
void	 cred_token_reply(struct cred *, const struct upstream_reply *);
void	 cred_fetch_failed(struct cred *, long, const char *, int);
void	 cred_note(struct cred *, long, const char *);
void	 cred_token_failed(struct cred *, uint64_t, long);
void	 cred_call_refused(struct cred *, long, const char *);
void	 cred_call_ok(struct cred *);
void	 cred_adopt(struct cred *, const char *, time_t, uint64_t);
void	 cred_install(struct cred *, const char *, int);
void	 cred_revoke(struct cred *);
void	 cred_unrevoke(struct cred *);
void	 cred_fetch_done(struct cred *);
void	 cred_yield(struct cred *);
void	 cred_mark_permanent(struct cred *, const char *);
void	 cred_fail_waiting(struct cred *, const char *);
void	 cred_wanted(struct cred *);
void	 cred_retry_now(struct cred *, int);
void	 cred_uncount(struct cred *);
int	 cred_parse_token(const struct upstream_reply *, const char *,
	    const char **, int *, long *, const char **);

/* official.c: official accounts and mini programs, a token source. */
void	 official_reconcile(struct config *);
const struct account_conf	*official_account(const struct cred *);

/* redis.c: sharing tokens between daemons through Redis (hiredis async). */
/* What component.c hears from Redis: registered, so calls go one way. */
struct redis_handlers {
	void	(*ticket)(const char *, const char *, time_t);
	void	(*authorizer)(const char *, const char *, const char *, int,
		    time_t);
	void	(*connected)(void);
};
void	 redis_init(const struct config *);
void	 redis_shutdown(void);
void	 redis_set_handlers(const struct redis_handlers *);
const char	*redis_mode(void);
int	 redis_connected(void);
int	 redis_pending_count(void);	/* commands unanswered */
void	 redis_ticket_put(const char *, const char *, time_t);
void	 redis_ticket_get(const char *);
void	 redis_authorizer_put(const char *, const char *, const char *, int,
	    time_t);
int	 redis_authorizer_get(const char *);	/* 0: answer comes later */
enum redis_claim { REDIS_CLAIM_OURS, REDIS_CLAIM_HELD, REDIS_CLAIM_FAILED };
typedef void (*redis_claim_cb)(void *, enum redis_claim, const char *, size_t);
int	 redis_claim(const char *, const char *, long, redis_claim_cb, void *);
void	 redis_settle(const char *, const char *, const char *, time_t);
void	 redis_unclaim(const char *, const char *);

/* send.c: the send method, from request to WeChat's answer. */
struct send_counters {
	uint64_t	 outcome[SEND_NOUTCOMES];
	uint64_t	 errcode[WXAPI_NERRCODES];	/* wechat ones */
};
struct send_histogram {
	uint64_t	 buckets[SEND_NBUCKETS];	/* not cumulative */
	uint64_t	 count;
	uint64_t	 sum_us;
};
struct send_queue_state {
	int		 queued;
	int		 inflight;
	int64_t		 oldest;	/* seconds the oldest queued send waited */
};
/*
 * A request other than a message that rides a send lane (method-call.c):
 * the same token wait, compare-and-refresh, -1 backoff and deadline.
 */
struct send_job {
	enum wxapi_ep	 endpoint;	/* for wxapi_classify */
	/* Start one attempt with token: as wxapi_request. */
	struct upstream_call *(*start)(void *, const char *, upstream_cb,
			    void *);
	/* WeChat answered errcode 0 (r): reply to req. */
	void		(*answer)(void *, struct request *,
			    const struct upstream_reply *);
	/* The job ends with an outcome (errcode when SEND_WECHAT). */
	void		(*done)(void *, enum send_outcome, long);
	void		(*free)(void *);
};
/* What a background send (the outbox's) hears at its end. */
struct send_result {
	enum send_outcome	 outcome;
	const struct rpc_error	*error;		/* NULL for SEND_OK */
	int			 attempts;	/* calls that reached upstream */
	int			 uncertain;	/* WeChat may have it (timeout) */
};
typedef void (*send_done_cb)(void *, const struct send_result *);
void	 send_method(struct request *, const msgpack_object *);
void	 send_job(struct request *, const char *, const struct send_job *,
	    void *);
void	 send_background(struct cred *, struct message *, send_done_cb,
	    void *);
void	 send_set_ready_hook(void (*)(struct cred *));
void	 send_init(void);
void	 send_abort(const char *);
void	 send_stop_queued(const char *);
const char	*send_outcome_name(int);
const char	*send_bucket_name(int);
const struct send_counters	*send_counters_all(void);
const struct send_counters	*send_counters_nocred(void);
const struct send_counters	*send_counters_of(const struct cred *);
const struct send_counters	*send_counters_retired(const char *);
const struct send_histogram	*send_duration(void);
struct send_queue_state	 send_queue_of(const struct cred *);

/*
 * outbox-db.c: the outbox's SQLite file, written by one writer thread (group
 * commit), read on the loop through a read-only connection.
 */
enum outbox_state { OUTBOX_QUEUED, OUTBOX_SENDING, OUTBOX_DELIVERED,
	OUTBOX_FAILED, OUTBOX_EXPIRED };
enum outbox_op_type { OUTBOX_OP_INSERT, OUTBOX_OP_CLAIM, OUTBOX_OP_SET,
	OUTBOX_OP_EXPIRE, OUTBOX_OP_KEEP };
#define OUTBOX_KIND_MAX		31
#define OUTBOX_UIDS_MAX		32	/* callers of an appid with fair shares */
/*
 * What a queued subscribe_once holds of the consent ledger: what its consent
 * matches and the tag of the one it spent ("" if none). Stored in its row.
 */
struct outbox_consent {
	int		 on;		/* subscribe_once: the ledger was asked */
	char		 openid[CONSENT_ID_MAX + 1];
	char		 template_id[CONSENT_ID_MAX + 1];
	int		 scene;
	char		 tag[CONSENT_TAG_HEX + 1];
};
/* A message to insert; the strings belong to the caller. */
struct outbox_item {
	int64_t		 id;		/* out */
	const char	*appid;
	const char	*kind;
	const char	*body;
	size_t		 len;
	uint32_t	 uid;
	int		 watch;
	time_t		 not_after;
	const struct outbox_consent *consent;	/* NULL: holds none */
};
/* A row a claim or an expiry sweep returned; body is allocated (claims). */
struct outbox_claimed {
	int64_t		 id;
	char		 appid[WX_APPID_MAX + 1];	/* expiry sweeps */
	char		 kind[OUTBOX_KIND_MAX + 1];
	char		*body;
	size_t		 len;
	uint32_t	 uid;
	int		 watch;
	int		 attempts;
	int		 uncertain;
	time_t		 created_at;
	time_t		 not_after;
	struct outbox_consent consent;
};
/* One message's next state, in a set operation. */
struct outbox_set {
	int64_t		 id;
	int		 state;
	int		 attempts;
	int		 uncertain;
	time_t		 next_at;
	char		 code[16];	/* "" for none */
	long		 errcode;
	char		*errmsg;	/* allocated with a code, or NULL */
};
/* One operation for the writer thread; done runs on the loop afterwards. */
struct outbox_op {
	enum outbox_op_type	 type;
	time_t			 now;
	int			 rc;		/* 0 committed, -1 not */
	char			 error[128];	/* SQLite's, when rc is -1 */
	struct outbox_item	*items;		/* insert */
	size_t			 n;
	char			 appid[WX_APPID_MAX + 1];	/* claim */
	int			 limit;		/* claim, expire */
	uint32_t		 uids[OUTBOX_UIDS_MAX];	/* claim: callers */
	int			 got[OUTBOX_UIDS_MAX];	/* out: 1 none left */
	size_t			 nuids;
	struct outbox_claimed	*claimed;	/* claim, expire: out */
	size_t			 nclaimed;	/* keep: rows deleted */
	struct outbox_set	*sets;		/* set: the state changes */
	size_t			 nsets;
	void			(*done)(struct outbox_op *);
	void			*arg;
	TAILQ_ENTRY(outbox_op)	 entry;
};
/* A message as `delivery` shows it. */
struct outbox_row {
	int64_t		 id;
	char		 appid[WX_APPID_MAX + 1];
	uint32_t	 uid;
	int		 state;
	int		 attempts;
	time_t		 created_at;
	time_t		 updated_at;
	time_t		 not_after;
	char		 code[16];
	long		 errcode;
	char		 errmsg[256];
};
int	 outbox_db_open(const char *, char **);
void	 outbox_db_close(void);
void	 outbox_db_submit(struct outbox_op *);
int	 outbox_db_get(int64_t, struct outbox_row *);
int	 outbox_db_depths(void (*)(const char *, int64_t));
time_t	 outbox_db_oldest(const char *);
void	 outbox_db_counts(uint64_t *, uint64_t *);
int	 outbox_db_consents(void (*)(const char *,
	    const struct outbox_consent *));

/* outbox-consent.c: the consents queued subscribe_once messages hold. */
int	 outbox_consent_enqueue(struct message *, const size_t *, size_t,
	    struct outbox_consent *, size_t *);
void	 outbox_consent_unqueue(struct message *, const size_t *, size_t,
	    const struct outbox_consent *);
void	 outbox_consent_final(const char *, const struct outbox_consent *,
	    int, long, int);
int	 outbox_consent_init(void);
void	 outbox_db_set_lazy(long);

/* outbox.c: enqueue, delivery and outbox methods, and the scheduler. */
int	 outbox_init(char **);
void	 outbox_shutdown(void);
void	 outbox_method_enqueue(struct request *, const msgpack_object *);
void	 outbox_method_delivery(struct request *, const msgpack_object *);
void	 outbox_method_outbox(struct request *, const msgpack_object *);
struct outbox_depth {
	int64_t		 depth;		/* queued or sending */
	time_t		 oldest;	/* created_at of the oldest; 0 if none */
};
struct outbox_depth	 outbox_depth_of(const char *);
const char	*outbox_state_name(int);

/* httpd.c: an evhttp endpoint on a configured HOST:PORT, movable on reload. */
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct httpd_conn;
struct httpd {
	const char			*name;	/* for the log: "callback", "metrics" */
	struct evhttp			*http;	/* made by the owner, httpd_setup */
	struct evhttp_bound_socket	*sock;
	char				*addr;	/* what sock is bound to */
	TAILQ_HEAD(, httpd_conn)	 conns;	/* open connections */
	size_t				 nconns;
	struct event			*adopt;	/* finds evhttp's new connections */
	struct event			*pause;	/* EMFILE: accept again after it */
	int				 paused;
	int				 full;	/* at http_max_connections */
	int				 closing;
};
void	 httpd_setup(struct httpd *, struct evhttp *);
void	 httpd_dispatched(struct httpd *, struct evhttp_request *);
int	 httpd_listen(struct httpd *, const char *);
void	 httpd_reload(struct httpd *, const char *);
void	 httpd_close(struct httpd *);

/*
 * authorizer.c: a component's authorizers: a token source each, refresh
 * tokens committed before their access tokens are used, 61023 recovery
 * through api_get_authorizer_list, revocation.
 */
struct authorizer_set;
struct store_authorizer;
struct authorizer_set	*authorizer_set_new(struct cred *, struct component_conf *);
void	 authorizer_set_free(struct authorizer_set *, int);
void	 authorizer_set_configure(struct authorizer_set *, struct component_conf *);
void	 authorizer_set_load(struct authorizer_set *);
struct cred	*authorizer_set_load_row(struct authorizer_set *,
	    const struct store_authorizer *);
void	 authorizer_set_ready(struct authorizer_set *);
void	 authorizer_set_sync(struct authorizer_set *);
int	 authorizer_install(struct authorizer_set *, const char *, const char *,
	    const char *, int, const char **, char *, size_t);
void	 authorizer_unauthorized(struct authorizer_set *, const char *);
int	 authorizer_recover(struct authorizer_set *, const char *);
void	 authorizer_shared(struct authorizer_set *, const char *, const char *,
	    const char *, int, time_t);
const char	*authorizer_detail(const struct cred *);
void	 authorizer_set_permissions(struct authorizer_set *, const char *,
	    const char *);
const char	*authorizer_permissions(const struct cred *);
const char	*authorizer_component_appid(const struct cred *);
uint64_t	 authorizer_unloads(void);

/* component.c: third-party platforms: the verify ticket, the component token. */
struct ingress_event;
/* An event or authorization is done: e NULL on success, else why not. */
typedef void (*component_done_cb)(void *, const struct rpc_error *,
	    const char *, const char *);
/* A pre_auth_code arrived (code and expires_in), or e says why not. */
typedef void (*component_preauth_cb)(void *, const struct rpc_error *,
	    const char *, int);
void	 component_init(void);
void	 component_reconcile(struct config *);
void	 component_shutdown(void);
const char	*component_detail(const struct cred *);
int64_t	 component_ticket_age(const struct cred *);
int	 component_exchanges(const struct cred *, int *, uint64_t *);
int	 component_running(const char *);
void	 component_event_handle(struct component_conf *,
	    const struct ingress_event *, component_done_cb, void *);
void	 component_authorize(const char *, const char *, component_done_cb,
	    void *);
void	 component_preauth(const char *, component_preauth_cb, void *);
int	 component_answer(component_done_cb, void *, const char *, int, long,
	    const char *, const char *, ...)
	    __attribute__((format(printf, 7, 8)));

/* method-component.c: the component methods (event, authorize, preauth). */
void	 method_component_event(struct request *, const msgpack_object *);
void	 method_component_authorize(struct request *, const msgpack_object *);
void	 method_component_preauth(struct request *, const msgpack_object *);

/* ingress.c: opening component events, and the HTTP endpoint for them. */
#define INGRESS_BODY_MAX	65536	/* bytes in an event body */
#define INGRESS_INFO_TYPE_MAX	63
struct ingress_event {
	char		 info_type[INGRESS_INFO_TYPE_MAX + 1];
	char		 authorizer_appid[WX_APPID_MAX + 1];	/* "" if none */
	char		*secret;	/* the ticket or authorization code; wiped */
	size_t		 secretlen;
	time_t		 create_time;	/* <CreateTime>, 0 if none */
};
/* How far (seconds) an event's signed timestamp may be from our clock. */
#define INGRESS_EVENT_WINDOW	900
int	 ingress_outer_appid(const char *, size_t, char *, size_t, char **);
int	 ingress_event_open(const struct component_conf *, const char *,
	    const char *, const char *, const char *, size_t,
	    struct ingress_event *, const char **, char **);
void	 ingress_event_clear(struct ingress_event *);
int	 ingress_event_accept(struct component_conf *, const char *,
	    const char *, const char *, const char *, size_t,
	    component_done_cb, void *, const char **, char **);
int	 ingress_start(void);
void	 ingress_reload(void);
void	 ingress_stop(void);

/* method-call.c: call, any allowed WeChat API with the appid's token. */
struct call_stat {
	char		*path;		/* the apis entry, or "other" */
	uint64_t	 outcome[SEND_NOUTCOMES];
	uint64_t	 stripped;	/* credential fields taken out of answers */
	uint64_t	 too_large;	/* answers over call_max_answer */
};
void	 method_call(struct request *, const msgpack_object *);
const struct call_stat	*method_call_stat(size_t);
void	 method_call_shutdown(void);

/* jsapi.c: the JS-SDK's jsapi_ticket per appid (a token source), jssdk_sign. */
#define JSAPI_KEY_SUFFIX	"/jsapi"	/* its credential's key: APPID/jsapi */
void	 jsapi_method_sign(struct request *, const msgpack_object *);
void	 jsapi_reconcile(void);
void	 jsapi_shutdown(void);
const char	*jsapi_parent_appid(const struct cred *);
int	 jsapi_sign(const char *, const char *, const char *, time_t,
	    char *);

/* method-consent.c: consent_url, consent_record, consents, consent_forget. */
int	 method_consent_accept(const char *, const char *, const char *, int,
	    const char *, const char *, size_t, int *, int *, const char **);
void	 method_consent_url(struct request *, const msgpack_object *);
void	 method_consent_record(struct request *, const msgpack_object *);
void	 method_consents(struct request *, const msgpack_object *);
void	 method_consent_forget(struct request *, const msgpack_object *);

/* consent-http.c: the endpoint WeChat's consent page redirects to. */
int	 consent_http_start(void);
void	 consent_http_reload(void);
void	 consent_http_stop(void);

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
	time_t		 last_used;	/* a send; only ever moves forward */
};
int	 store_open(const char *, char **);
void	 store_close(void);
int	 store_token_save(const struct store_token *);
int	 store_token_load(const char *, struct store_token *);	/* 1 found, 0 not, -1 error */
int	 store_ticket_save(const char *, const char *, time_t);
int	 store_ticket_load(const char *, char *, size_t, time_t *);	/* 1, 0, -1 */
int	 store_authorizer_save(const struct store_authorizer *);
int	 store_authorizer_load(const char *, struct store_authorizer *);	/* by appid: 1, 0, -1 */
int	 store_authorizer_components(const char *const *, size_t,
	    void (*)(const char *, const char *, void *), void *);
int	 store_authorizer_foreach(const char *,
	    int (*)(const struct store_authorizer *, void *), void *);
	    /* 0 all visited, the callback's non-zero value, or -1 */
int	 store_authorizer_foreach_used(const char *, time_t,
	    int (*)(const struct store_authorizer *, void *), void *);
int	 store_authorizer_count(const char *, time_t, uint64_t *, uint64_t *);
int	 store_authorizer_page(const char *, const char *, size_t,
	    int (*)(const struct store_authorizer *, void *), void *);
int	 store_authorizer_touch(const char *, time_t);
int	 store_authorizer_learn(const char *, const char *, const char *,
	    time_t, time_t);	/* 1 changed, 0 not, -1 error */
int	 store_walk_save(const char *, int, time_t);
int	 store_walk_load(const char *, int *, time_t *);	/* 1, 0, -1 */
int	 store_walk_delete(const char *);
int	 store_integrity_check(char **);	/* 0 "ok", or -1 and a cause */
int	 store_synchronous(void);	/* PRAGMA synchronous now: 0..3, or -1 */
/* The last component event applied for a subject ("": the ticket). */
struct store_mark {
	char		 component_appid[WX_APPID_MAX + 1];
	char		 subject[WX_APPID_MAX + 1];
	time_t		 create_time;
	char		 info_type[INGRESS_INFO_TYPE_MAX + 1];
	char		 digest[2 * 32 + 1];	/* hex SHA-256 of type and secret */
};
int	 store_mark_save(const struct store_mark *);
int	 store_mark_load(struct store_mark *);	/* 1, 0, -1 */
struct store_pending {
	char		 component_appid[WX_APPID_MAX + 1];
	char		 authorizer_appid[WX_APPID_MAX + 1];
	char		 info_type[INGRESS_INFO_TYPE_MAX + 1];
	char		 code[WX_TOKEN_MAX + 1];	/* wiped */
	time_t		 create_time;
	int		 attempts;
};
int	 store_pending_save(const struct store_pending *);
int	 store_pending_delete(const char *, const char *);
int	 store_pending_foreach(const char *, int,
	    int (*)(const struct store_pending *, void *), void *);
int	 store_permissions_save(const char *, const char *);
int	 store_permissions_load(const char *, char *, size_t);	/* 1, 0, -1 */
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
	int64_t		 msgid;		/* WeChat's, 0 if none */
};
int	 store_batch_begin(void);
int	 store_idem_put(const struct store_idem *);
int	 store_batch_end(int);
int	 store_idem_expire(time_t);
int	 store_idem_foreach(time_t,
	    int (*)(const struct store_idem *, void *), void *);

struct store_consent {
	char		 appid[WX_APPID_MAX + 1];
	char		 openid[CONSENT_ID_MAX + 1];
	char		 tag[CONSENT_TAG_HEX + 1];
	char		 template_id[CONSENT_ID_MAX + 1];
	int		 scene;
	char		 reference[CONSENT_REF_MAX + 1];
	char		 state[16];	/* granted, refused, spent */
	time_t		 recorded_at;
	time_t		 spent_at;	/* 0 if not spent */
};
int	 store_consent_put(const struct store_consent *);
int	 store_consent_expire(time_t);
int	 store_consent_forget(const char *, const char *);
int	 store_consent_foreach(time_t,
	    int (*)(const struct store_consent *, void *), void *);

/* consent.c: signed consent links and the ledger of one-time consents. */
#define CONSENT_RESERVED_MAX	128	/* WeChat: reserved is 1..128 [A-Za-z0-9] */
enum consent_state { CONSENT_GRANTED, CONSENT_REFUSED, CONSENT_SPENT,
	CONSENT_NSTATES };
const char	*consent_state_name(enum consent_state);
int	 consent_sign(const char *, const char *, const char *, int, time_t,
	    const char *, char *);
int	 consent_verify(const char *, const char *, const char *, int,
	    const char *, size_t, time_t, char *, char *, const char **);
int	 consent_record(const char *, const char *, const char *, int,
	    const char *, const char *, int *, const char **);
int	 consent_required(const struct cred *);
int	 consent_spend(const char *, const char *, const char *, int, char *);
void	 consent_give_back(const char *, const char *, const char *, int,
	    const char *);
void	 consent_used_up(const char *, const char *, const char *, int,
	    const char *);
void	 consent_hold(const char *, const char *, const char *, int,
	    const char *);
void	 consent_foreach(const char *, const char *, const char *,
	    void (*)(const struct store_consent *, void *), void *);
int	 consent_forget(const char *, const char *);
void	 consent_counts(uint64_t *);
void	 consent_groups(void (*)(const char *, const char *,
	    enum consent_state, uint64_t, void *), void *);
void	 consent_flush(void);
void	 consent_expire(void);
int	 consent_init(void);
void	 consent_shutdown(void);
size_t	 consent_count(void);

/* idem.c: idempotency keys, in memory, written behind to the store. */
struct idem;
enum idem_begin { IDEM_NEW, IDEM_ANSWERED, IDEM_WAITING, IDEM_CLAIMING };
typedef void (*idem_resume_cb)(void *, enum idem_begin);
/* Where keys are shared between hosts (redis.c's claims, or a test's). */
struct idem_share {
	int	(*claim)(const char *, const char *, long, redis_claim_cb,
		    void *);
	void	(*settle)(const char *, const char *, const char *, time_t);
	void	(*unclaim)(const char *, const char *);
};
void	 idem_set_share(const struct idem_share *);
int	 idem_init(void);
void	 idem_shutdown(void);
void	 idem_flush(void);
enum idem_begin	 idem_begin(struct request *, const struct message *,
	    struct idem **);
enum idem_begin	 idem_begin_salted(struct request *, const struct message *,
	    const char *, struct idem **);
enum idem_begin	 idem_begin_shared(struct request *, const struct message *,
	    struct idem **, idem_resume_cb, void *);
enum idem_look { IDEM_LOOK_NEW, IDEM_LOOK_QUEUED, IDEM_LOOK_PENDING,
	IDEM_LOOK_OTHER };
enum idem_look	 idem_look_salted(uint32_t, const struct message *,
	    const char *, int64_t *);
struct idem	*idem_add_salted(uint32_t, const struct message *,
	    const char *);
void	 idem_finish_ok(struct idem *, int, int64_t);
void	 idem_finish_queued(struct idem *, int64_t);
void	 idem_finish_error(struct idem *, const struct rpc_error *);
size_t	 idem_count(void);

/* upstream.c: HTTP(S) to WeChat with libcurl multi on libevent (hiperfifo). */
struct json_t;
struct upstream_reply {
	int		 ok;		/* 1: HTTP 200 and a JSON object body */
	long		 http_status;	/* 0 if no HTTP answer */
	const char	*error;		/* when !ok: a short reason, never a URL */
	struct json_t	*json;		/* borrowed, valid during the callback;
					   read-only: it may be shared */
	double		 seconds;	/* how long the call took */
};
struct upstream_call;
int	 upstream_init(struct event_base *);
void	 upstream_configure(const struct config *);
void	 upstream_shutdown(void);
struct upstream_call	*upstream_request(const char *, const char *,
	    const char *, const char *, size_t, upstream_cb, void *);
void	 upstream_cancel(struct upstream_call *);
size_t	 upstream_inflight(void);

/* metrics.c: the Prometheus endpoint. */
int	 metrics_start(void);
void	 metrics_reload(void);
void	 metrics_stop(void);

/* ratelog.c: log lines a peer can cause, rate-limited per peer and cause. */
void	 ratelog(int, const char *, const char *, const char *, ...)
	    __attribute__((format(printf, 4, 5)));
void	 ratelog_shutdown(void);
extern uint64_t	ratelog_suppressed;

/* systemd.c: notifications, watchdog and socket activation (libsystemd). */
int	 systemd_listen_fd(const char *);
void	 systemd_ready(void);
void	 systemd_reloading(void);
void	 systemd_stopping(void);
void	 systemd_shutdown(void);

#endif
