/*
 * wxpush-mock: a mock WeChat API server (access tokens, stable tokens, the
 * subscribe endpoint, the third-party platform endpoints and their encrypted
 * events) with a control API for fault injection. Private to the mock.
 */
#ifndef WX_MOCK_H
#define WX_MOCK_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "wxcrypt.h"

/* Sizes of what a peer sends. */
#define MOCK_MAX_BODY		(1024 * 1024)
#define MOCK_MAX_HEADERS	(64 * 1024)
#define MOCK_APPID_MAX		64
#define MOCK_SECRET_MAX		256
#define MOCK_ERRMSG_MAX		256

/* Generated credentials: base64url of that many random bytes. */
#define MOCK_TOKEN_BYTES	102	/* 136 characters */
#define MOCK_TOKEN_LEN		136
#define MOCK_REFRESH_BYTES	48	/* after "refreshtoken@@@" */
#define MOCK_TICKET_BYTES	48	/* after "ticket@@@" */
#define MOCK_CODE_BYTES		48	/* after "queryauthcode@@@" */
#define MOCK_CRED_MAX		96	/* room for any of the three above */

/* A string literal and its length, for the reply helpers. */
#define MOCK_LIT(s)		(s), (sizeof (s) - 1)

/* Table bounds: past them a call gets HTTP 503. */
#define MOCK_MAX_ACCOUNTS	10000	/* official accounts and components */
#define MOCK_MAX_AUTHORIZERS	300000	/* made; a bulk range is not */
#define MOCK_BULK_MAX		10000000	/* authorizers in a bulk range */
#define MOCK_BULK_DIGITS	7	/* PREFIX0000000 .. PREFIX9999999 */
#define MOCK_BULK_REFRESH	"refreshtoken@@@bulk"	/* + the appid */
#define MOCK_MAX_TOKENS		500000
#define MOCK_MAX_CODES		100000
#define MOCK_MAX_EMITS		1024	/* event POSTs in flight */
#define MOCK_MAX_FAULTS		1000	/* fault entries queued per path */
#define MOCK_MAX_DELAYED	100000	/* calls held by delay_ms faults */
#define MOCK_MAX_ISSUED		100000	/* credentials kept for /mock/tokens */

/* WeChat's rules. */
#define MOCK_SENDS		10000	/* accepted sends kept for /mock/sends */
#define MOCK_TICKETS		64	/* verify tickets remembered per component */
#define MOCK_TICKET_LIFE	(12 * 3600)
#define MOCK_CODE_LIFE		600
#define MOCK_PREAUTH_LIFE	1800	/* api_create_preauthcode's expires_in */
#define MOCK_FORCE_PER_DAY	20
#define MOCK_FORCE_INTERVAL	30
#define MOCK_LIST_MAX		500
#define MOCK_TITLE_MAX		15	/* code points */
#define MOCK_CONTENT_MAX	200	/* code points */
#define MOCK_SCENE_MAX		10000

/* Fault bounds. */
#define MOCK_MAX_DELAY_MS	600000
#define MOCK_MAX_OVERSIZE	(64 * 1024 * 1024)
#define MOCK_MAX_FAULT_COUNT	1000000

/* Outgoing event POSTs. */
#define MOCK_EMIT_TIMEOUT	10	/* seconds */
#define MOCK_EMIT_REPLY_MAX	(64 * 1024)

#define MOCK_DURATION_MAX	(366 * 86400)

/* The WeChat endpoints; their index names their counters and fault queue. */
enum mock_ep {
	MOCK_EP_TOKEN,
	MOCK_EP_STABLE_TOKEN,
	MOCK_EP_SUBSCRIBE,
	MOCK_EP_COMPONENT_TOKEN,
	MOCK_EP_QUERY_AUTH,
	MOCK_EP_AUTHORIZER_TOKEN,
	MOCK_EP_AUTHORIZER_LIST,
	MOCK_EP_START_PUSH_TICKET,
	MOCK_EP_PREAUTHCODE,
	MOCK_EP_TEMPLATE_SEND,
	MOCK_EP_BIZSEND,
	MOCK_EP_SUBSCRIBE_SEND,
	MOCK_EP_CUSTOM_SEND,
	MOCK_EP_GETTICKET,
	MOCK_EP_DOMAIN_IP,
	MOCK_EP_ECHO,
	MOCK_EP_LEAK,
	MOCK_EP_BIG,
	MOCK_EP_COUNT
};

/* One call to a WeChat endpoint. */
struct mock_call {
	struct evhttp_request	*req;
	enum mock_ep		 ep;
	time_t			 now;
	struct evkeyvalq	 query;
};

struct mock_endpoint {
	const char		*path;
	enum evhttp_cmd_type	 method;
	void			(*handler)(struct mock_call *);
};

enum mock_kind {
	MOCK_OFFICIAL,
	MOCK_COMPONENT,
	MOCK_AUTHORIZER
};

/*
 * Token slots of an account. Classic holds /cgi-bin/token, component and
 * authorizer tokens; stable is /cgi-bin/stable_token, isolated from classic.
 */
enum mock_slot {
	MOCK_SLOT_CLASSIC,
	MOCK_SLOT_STABLE,
	MOCK_SLOTS
};

/* How a new token treats the current one. */
enum mock_issue {
	MOCK_ISSUE_ROTATE,	/* the current one lives `overlap` seconds more */
	MOCK_ISSUE_REPLACE	/* the current and previous ones die at once */
};

struct mock_account;

struct mock_token {
	char			 value[MOCK_TOKEN_LEN + 1];
	struct mock_account	*owner;
	enum mock_slot		 slot;
	time_t			 expires_at;
	time_t			 killed_at;	/* 0: lives until it expires */
};

struct mock_ticket {
	char			 value[MOCK_CRED_MAX];
	time_t			 issued;
};

/* What only a third-party platform has. */
struct mock_component {
	char			*token;		/* the message-check token */
	unsigned char		 key[WXCRYPT_KEY_LEN];
	struct mock_ticket	 tickets[MOCK_TICKETS];
	u_int			 ticket_next;
	struct mock_account	**list;		/* active authorizers, by auth time */
	size_t			 nlist;
	size_t			 list_alloc;
	char			*bulk_prefix;	/* a range authorized in bulk */
	uint32_t		 bulk_count;	/* ... made at its first token */
};

struct mock_account {
	char			 appid[MOCK_APPID_MAX + 1];
	enum mock_kind		 kind;
	char			*secret;	/* official and component */
	struct mock_token	*tokens[MOCK_SLOTS][2];	/* current, previous */

	/* stable_token force_refresh accounting. */
	long			 force_day;
	u_int			 force_count;
	time_t			 force_last;

	struct mock_component	*component;	/* kind == MOCK_COMPONENT */

	/* kind == MOCK_AUTHORIZER */
	struct mock_account	*platform;
	char			 refresh_token[MOCK_CRED_MAX];
	int			 revoked;
	time_t			 auth_time;
	size_t			 list_index;
};

struct mock_config {
	int			 expires_in;
	int			 rotation_window;
	int			 overlap;
	int			 rotate_refresh_token;
	char			*event_url;
	json_t			*func_info;	/* permission set ids granted; NULL:
						 * tokens and func_info [] */
};

struct mock_stats {
	uint64_t		 calls[MOCK_EP_COUNT];
	uint64_t		 errors[MOCK_EP_COUNT];
	uint64_t		 unknown_paths;
	uint64_t		 tokens_issued;
	uint64_t		 sends_ok;
	uint64_t		 connections;
	uint64_t		 tls_handshakes;
	uint64_t		 events_sent;
	uint64_t		 events_failed;
};

/* mock.c */
extern struct event_base	*mock_base;
extern struct mock_config	 mock_conf;
extern struct mock_stats	 mock_stats;
extern const struct mock_endpoint mock_endpoints[MOCK_EP_COUNT];
int		 mock_endpoint_find(const char *);
void		 mock_call_run(struct mock_call *);
const char	*mock_call_param(struct mock_call *, const char *);
json_t		*mock_call_body(struct mock_call *);
void		 mock_reply(struct evhttp_request *, int, const char *,
		     const char *, size_t);
void		 mock_reply_json(struct mock_call *, json_t *);
void		 mock_reply_ok(struct mock_call *);
void		 mock_reply_error(struct mock_call *, int, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
void		 mock_reply_busy(struct mock_call *, const char *);
void		 mock_rid(char *, size_t);
void		 mock_random_b64url(char *, size_t);
const char	*mock_json_str(json_t *, const char *);
int		 mock_appid_valid(const char *);
size_t		 mock_utf8_len(const char *);

/* mock-hash.c */
struct mock_hash;
struct mock_hash *mock_hash_new(void);
void		 mock_hash_free(struct mock_hash *);
void		*mock_hash_find(struct mock_hash *, const char *);
void		 mock_hash_insert(struct mock_hash *, const char *, void *);
void		*mock_hash_remove(struct mock_hash *, const char *);
size_t		 mock_hash_count(struct mock_hash *);
void		 mock_hash_foreach(struct mock_hash *,
		     void (*)(void *, void *), void *);

/* mock-token.c */
void		 mock_token_init(void);
void		 mock_token_shutdown(void);
struct mock_account *mock_account_find(const char *);
struct mock_account *mock_account_new(const char *, enum mock_kind,
		     const char *);
int		 mock_account_add(const char *, const char *, char **);
size_t		 mock_account_count(enum mock_kind);
void		 mock_account_foreach(void (*)(struct mock_account *, void *),
		     void *);
int		 mock_token_issue(struct mock_account *, enum mock_slot,
		     enum mock_issue, time_t, struct mock_token **);
int		 mock_token_check(const char *, time_t, struct mock_token **);
int		 mock_token_usable(struct mock_token *, time_t);
void		 mock_token_kill_all(struct mock_account *);
u_int		 mock_token_expire_all(struct mock_account *, time_t);
u_int		 mock_token_count_all(struct mock_account *);
void		 mock_token_reset_quota(void);
void		 mock_token_classic(struct mock_call *);
void		 mock_token_stable(struct mock_call *);

/* mock-send.c */
void		 mock_send_subscribe(struct mock_call *);
struct mock_account *mock_send_sender(struct mock_call *);
void		 mock_send_record(struct mock_call *, const char *, json_t *);
json_t		*mock_send_list(const char *);
void		 mock_send_clear(void);

/* mock-kinds.c */
void		 mock_kinds_template(struct mock_call *);
void		 mock_kinds_bizsend(struct mock_call *);
void		 mock_kinds_subscribe(struct mock_call *);
void		 mock_kinds_custom(struct mock_call *);
/* mock-api.c */
void		 mock_api_getticket(struct mock_call *);
void		 mock_api_domain_ip(struct mock_call *);
void		 mock_api_echo(struct mock_call *);
void		 mock_api_leak(struct mock_call *);
void		 mock_api_big(struct mock_call *);

/* mock-component.c */
void		 mock_component_init(void);
void		 mock_component_drain(void);
void		 mock_component_shutdown(void);
int		 mock_component_add(const char *, const char *, const char *,
		     const char *, char **);
int		 mock_component_url_check(const char *, char **);
void		 mock_component_token(struct mock_call *);
void		 mock_component_query_auth(struct mock_call *);
void		 mock_component_authorizer_token(struct mock_call *);
void		 mock_component_authorizer_list(struct mock_call *);
void		 mock_component_start_push(struct mock_call *);
void		 mock_component_preauthcode(struct mock_call *);
void		 mock_component_ctl_event(struct evhttp_request *, json_t *);
void		 mock_component_ctl_code(struct evhttp_request *, json_t *);
void		 mock_component_ctl_bulk(struct evhttp_request *, json_t *);

/* mock-control.c */
void		 mock_control(struct evhttp_request *, const char *);
void		 mock_fault_init(void);
int		 mock_fault_apply(struct mock_call *);
void		 mock_fault_shutdown(void);
void		 mock_ctl_reply(struct evhttp_request *, int, json_t *);
void		 mock_ctl_error(struct evhttp_request *, int, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
void		 mock_issued_add(const char *, const char *, const char *,
		     time_t);
void		 mock_issued_shutdown(void);

#endif
