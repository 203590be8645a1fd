/*
 * A component's authorizers: the accounts that authorized a third-party
 * platform. Each is a credential whose token source is here: its token comes
 * from api_authorizer_token with the component's token and the authorizer's
 * refresh token. A refresh token is committed to the store before the access
 * token that came with it is used: a lost refresh token means the merchant
 * must authorize the platform again. 61023 (refresh token refused) is
 * recovered through Redis or api_get_authorizer_list; 61003 and unauthorized
 * events revoke, durably.
 *
 * One set per component holds its authorizers (a list, not a walk over every
 * credential) and the api_get_authorizer_list walk. Each authorizer has its
 * own events: the staggered first refresh and the wait for Redis after 61023.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wxpushd.h"

#define AUTHORIZER_LIST_COUNT	500	/* api_get_authorizer_list page, WeChat's most */
#define AUTHORIZER_LIST_MAX	10000000 /* offsets walked at most (WeChat's total) */
#define AUTHORIZER_LIST_PACE_MS	500	/* between pages: 1,000 rows a second */
#define AUTHORIZER_SPREAD_MAX	60000	/* ms over which waiting authorizers start */
#define AUTHORIZER_SPREAD_RATE	100	/* ... at about this many per second */
#define AUTHORIZER_SPREAD_FAST	200	/* at most this many a second, beyond */
#define AUTHORIZER_RTWAIT_SECS	5	/* Redis silent that long: walk the list */
#define AUTHORIZER_FLUSH_SECS	5	/* uses written together, this often */
#define AUTHORIZER_SYNC_PAGE	200	/* rows shared with Redis at a time */
#define AUTHORIZER_SYNC_INFLIGHT 1000	/* Redis commands unanswered, at most */
#define AUTHORIZER_SYNC_PACE_MS	5	/* between pages: the loop serves too */
#define AUTHORIZER_UNLOAD_TURN	500	/* authorizers looked at per sweep turn */
#define AUTHORIZER_UNLOAD_PACE_MS 1000	/* between turns: 1.8 M an hour */

/* How a revocation is kept: committed and shared, or known already. */
#define AUTHORIZER_REVOKE_COMMIT	0	/* ours: store it, share it */
#define AUTHORIZER_REVOKE_SHARED	1	/* from Redis: committed there */
#define AUTHORIZER_REVOKE_LOADED	2	/* from the store, at start */

/* One component's authorizers, and its api_get_authorizer_list walk. */
struct authorizer_set {
	char			 appid[WX_APPID_MAX + 1];	/* the component's */
	struct cred		*parent;	/* the component's credential */
	struct component_conf	*conf;
	TAILQ_HEAD(, authorizer) list;
	unsigned int		 n;

	struct upstream_call	*list_call;
	struct event		*list_timer;	/* the pace between pages */
	uint64_t		 list_gen;	/* the component token it used */
	int			 list_offset;	/* the next page's, also stored */
	time_t			 list_started;	/* this walk, stored with it */
	time_t			 list_asked;	/* when the page in flight was */
	uint64_t		 list_learned;	/* store rows it wrote */

	struct event		*flush;		/* write the uses to the store */
	struct event		*sync;		/* the paced write-back to Redis */
	char			 sync_from[WX_APPID_MAX + 1];	/* after this */
	uint64_t		 sync_rows;	/* shared so far */
	int			 sync_seen;	/* rows in the page being shared */
	unsigned int		 touched;	/* authorizers with a use to write */
	struct event		*unload;	/* the sweep of dozing ones */
};

/* An authorizer: what its credential's source keeps. */
struct authorizer {
	struct cred		*cred;
	struct authorizer_set	*set;
	char			*refresh_token;	/* wiped on free */
	char			*permissions;	/* granted set ids "1,2", NULL unknown */
	uint64_t		 parent_gen;	/* the component token its refresh used */
	int			 waiting;	/* refresh once the component has a token */
	int			 staggered;	/* refresh deferred to spread the load */
	int			 listed;	/* 61023: in api_get_authorizer_list's hands */
	int			 late;		/* ... joined after the walk had started */
	int			 reauth;	/* 61023 and no other refresh token */
	int			 rtwait;	/* 61023: asking Redis for a newer one */
	int			 rtnew;		/* refresh token replaced mid-refresh */
	int			 wanted;	/* a send waited for a token */
	int			 revoke_how;	/* AUTHORIZER_REVOKE_* of the next one */
	time_t			 used_saved;	/* the last use the store has */
	int			 touched;	/* a newer use waits for the flush */
	struct event		*stagger;	/* the spread first refresh */
	struct event		*rtwait_timer;	/* Redis did not answer: the list */
	TAILQ_ENTRY(authorizer)	 entry;
};

static enum cred_fetch	authorizer_fetch(struct cred *, void *, int,
			    struct upstream_call **);
static const struct acl	*authorizer_acl(void *);
static void		authorizer_ready(struct cred *, void *);
static void		authorizer_wanted(struct cred *, void *);
static void		authorizer_revoked(struct cred *, void *);
static long		authorizer_idle_after(void *);
static void		authorizer_list_start(struct authorizer_set *, int);
static void		authorizer_list_page(struct authorizer_set *);
static void		authorizer_list_join(struct authorizer *);
static struct authorizer *authorizer_get(struct authorizer_set *,
			    const char *);

static uint64_t		authorizer_unloaded;	/* since the start */

static const struct cred_source authorizer_source = {
	.name = "authorizer",
	.endpoint = WXAPI_AUTHORIZER_TOKEN,
	.token_field = "authorizer_access_token",
	.shared = 1,
	.fetch = authorizer_fetch,
	.acl = authorizer_acl,
	.ready = authorizer_ready,
	.wanted = authorizer_wanted,
	.revoked = authorizer_revoked,
	.idle_after = authorizer_idle_after,
};

/* The authorizer behind credential c, or NULL if c is none (or removed). */
static struct authorizer *
authorizer_of(const struct cred *c)
{
	if (c == NULL || cred_source(c) != &authorizer_source)
		return (NULL);
	return (cred_data(c));
}

/* The authorizer appid of this set, or NULL. */
static struct authorizer *
authorizer_find(struct authorizer_set *set, const char *appid)
{
	struct authorizer *a = authorizer_of(cred_find(appid));

	return (a != NULL && a->set == set ? a : NULL);
}

static const struct acl *
authorizer_acl(void *data)
{
	struct authorizer *a = data;

	return (a != NULL && a->set->conf != NULL ? &a->set->conf->allow : NULL);
}

/* The component an authorizer credential belongs to, or NULL. */
const char *
authorizer_component_appid(const struct cred *c)
{
	struct authorizer *a = authorizer_of(c);

	return (a != NULL ? a->set->appid : NULL);
}

/* authorizer_idle: one unused that long is refreshed only when used again. */
static long
authorizer_idle_after(void *data)
{
	(void)data;
	return (wx_conf->authorizer_idle);
}

static void
authorizer_stagger_cb(evutil_socket_t fd, short events, void *arg)
{
	struct authorizer *a = arg;

	(void)fd;
	(void)events;
	a->staggered = 0;
	cred_refresh_if_used(a->cred);
}

static void
authorizer_rtwait_cb(evutil_socket_t fd, short events, void *arg)
{
	struct authorizer *a = arg;

	(void)fd;
	(void)events;
	/* Redis did not answer in time: WeChat's list, then. */
	a->rtwait = 0;
	authorizer_list_join(a);
}

/* A new authorizer of set, with its refresh token (or "" if none). */
static struct authorizer *
authorizer_new(struct authorizer_set *set, const char *appid, const char *rt)
{
	struct authorizer *a;

	a = xcalloc(1, sizeof *a);
	a->set = set;
	a->refresh_token = xstrdup(rt);
	a->stagger = evtimer_new(wx_base, authorizer_stagger_cb, a);
	a->rtwait_timer = evtimer_new(wx_base, authorizer_rtwait_cb, a);
	a->cred = cred_add(appid, CRED_AUTHORIZER, &authorizer_source, a);
	TAILQ_INSERT_TAIL(&set->list, a, entry);
	set->n++;
	return (a);
}

/* How an authorizer is forgotten (authorizer_free). */
#define AUTHORIZER_FREE_REMOVE	0	/* its component went */
#define AUTHORIZER_FREE_STOP	1	/* a stop: cred.c saves the credential */
#define AUTHORIZER_FREE_UNLOAD	2	/* idle: its row is the truth */

/*
 * Forget an authorizer: its credential goes once its sends are done, or, at a
 * stop, stays for cred.c to save.
 */
static void
authorizer_free(struct authorizer *a, int how)
{
	TAILQ_REMOVE(&a->set->list, a, entry);
	a->set->n--;
	if (a->touched && a->set->touched > 0)
		a->set->touched--;
	event_free(a->stagger);
	event_free(a->rtwait_timer);
	free(a->permissions);
	if (how == AUTHORIZER_FREE_STOP)
		cred_set_data(a->cred, NULL);
	else if (how == AUTHORIZER_FREE_UNLOAD)
		cred_unload(a->cred);
	else
		cred_remove(a->cred);
	freezero_str(a->refresh_token);
	free(a);
}

/* Write a's last use to the store now (in a flush's batch); 0 or -1. */
static int
authorizer_touch_now(struct authorizer *a)
{
	time_t used = cred_used_at(a->cred);

	a->touched = 0;
	if (used <= a->used_saved)
		return (0);
	if (store_authorizer_touch(cred_appid(a->cred), used) != 0)
		return (-1);
	a->used_saved = used;
	return (0);
}

/* Write every waiting use of the set in one transaction (no fsync each). */
static void
authorizer_flush(struct authorizer_set *set)
{
	struct authorizer *a;
	int batch;

	if (set->touched == 0)
		return;
	batch = store_batch_begin() == 0;
	TAILQ_FOREACH(a, &set->list, entry) {
		if (a->touched && authorizer_touch_now(a) != 0)
			log_warnx("%s: could not store its last use",
			    cred_appid(a->cred));
	}
	if (batch)
		store_batch_end(1);
	set->touched = 0;
}

static void
authorizer_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	authorizer_flush(arg);
}

/*
 * a was refreshed: its last use goes to the store with the next flush, so
 * that a start loads the authorizers used within authorizer_idle. Written
 * behind, in batches: never on the send path, and no commit of its own
 * between a token and the send waiting for it.
 */
static void
authorizer_touch(struct authorizer *a)
{
	struct timeval tv = { AUTHORIZER_FLUSH_SECS, 0 };

	if (a->touched || cred_used_at(a->cred) <= a->used_saved)
		return;
	a->touched = 1;
	if (a->set->touched++ == 0)
		evtimer_add(a->set->flush, &tv);
}

/*
 * Whether a dozing a can leave memory: its last use is on disk, no 61023
 * recovery or deferred start is under way (a needing re-authorization stays:
 * a reload would walk the list again), and its credential can go
 * (cred_unloadable: no refresh, no send, unused and unnamed for secs). Its
 * refresh token is always committed before it is taken.
 */
static int
authorizer_unloadable(const struct authorizer *a, long secs)
{
	if (a->touched || cred_used_at(a->cred) > a->used_saved ||
	    a->waiting || a->staggered || a->listed || a->late || a->rtwait ||
	    a->rtnew || a->wanted || a->reauth ||
	    evtimer_pending(a->stagger, NULL) ||
	    evtimer_pending(a->rtwait_timer, NULL))
		return (0);
	return (cred_unloadable(a->cred, secs));
}

/*
 * A turn of the sweep: the next AUTHORIZER_UNLOAD_TURN authorizers of the
 * set (round-robin: each goes to the tail), and those dozing for a further
 * authorizer_idle (unused for twice it, and for twice send_timeout at
 * least) leave memory. A dozing one whose last use is not on disk yet is
 * written with the next flush and goes at a later turn.
 */
static void
authorizer_unload_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authorizer_set *set = arg;
	struct authorizer *a;
	unsigned int i, n, gone = 0;
	long secs = 2L * wx_conf->authorizer_idle;
	int batch = -1;

	(void)fd;
	(void)what;
	if (wx_conf->authorizer_idle <= 0)
		return;
	if (secs < 2L * wx_conf->send_timeout)
		secs = 2L * wx_conf->send_timeout;
	n = set->n < AUTHORIZER_UNLOAD_TURN ? set->n : AUTHORIZER_UNLOAD_TURN;
	for (i = 0; i < n && (a = TAILQ_FIRST(&set->list)) != NULL; i++) {
		TAILQ_REMOVE(&set->list, a, entry);
		TAILQ_INSERT_TAIL(&set->list, a, entry);
		if (!cred_dozing(a->cred))
			continue;
		if (cred_used_at(a->cred) > a->used_saved) {
			authorizer_touch(a);
			continue;
		}
		if (!authorizer_unloadable(a, secs))
			continue;
		if (batch == -1)
			batch = store_batch_begin() == 0;
		log_debug("%s: unused for %lld s: unloaded", cred_appid(a->cred),
		    (long long)(clock_now() - cred_used_at(a->cred)));
		authorizer_free(a, AUTHORIZER_FREE_UNLOAD);
		gone++;
	}
	if (batch == 1)
		store_batch_end(1);
	authorizer_unloaded += gone;
}

/* Dozing authorizers unloaded since the start (metrics). */
uint64_t
authorizer_unloads(void)
{
	return (authorizer_unloaded);
}

/* Replace a's refresh token (committed already). */
static void
authorizer_set_rt(struct authorizer *a, const char *rt)
{
	freezero_str(a->refresh_token);
	a->refresh_token = xstrdup(rt);
}

/*
 * Commit an authorizer's refresh token and revoked flag, as of at, and its
 * last use if known (0: the stored one stays); 0 or -1.
 */
static int
authorizer_save(const char *component_appid, const char *appid,
    const char *refresh_token, int revoked, time_t at, time_t used)
{
	struct store_authorizer sa;
	int r;

	memset(&sa, 0, sizeof sa);
	if (strlen(component_appid) >= sizeof sa.component_appid ||
	    strlen(appid) >= sizeof sa.appid ||
	    strlen(refresh_token) >= sizeof sa.refresh_token)
		return (-1);
	memcpy(sa.component_appid, component_appid, strlen(component_appid));
	memcpy(sa.appid, appid, strlen(appid));
	memcpy(sa.refresh_token, refresh_token, strlen(refresh_token));
	sa.revoked = revoked;
	sa.updated_at = at;
	sa.last_used = used;
	r = store_authorizer_save(&sa);
	explicit_bzero(&sa, sizeof sa);
	return (r);
}

/*
 * Commit an authorizer's refresh token and revoked flag, then (only once it is
 * committed) share them with the other hosts through Redis; 0 or -1.
 */
static int
authorizer_commit(const char *component_appid, const char *appid,
    const char *refresh_token, int revoked)
{
	time_t now = clock_now();

	if (authorizer_save(component_appid, appid, refresh_token, revoked,
	    now, 0) != 0)
		return (-1);
	redis_authorizer_put(component_appid, appid, refresh_token, revoked,
	    now);
	return (0);
}

/*
 * The walk is over: an authorizer still listed that joined before it started
 * has no other refresh token and needs re-authorization; one that joined later
 * gets another walk; on failure (why) they all retry later.
 */
static void
authorizer_list_end(struct authorizer_set *set, const char *why)
{
	struct authorizer *a;
	char msg[96];
	int again = 0;

	TAILQ_FOREACH(a, &set->list, entry) {
		if (!a->listed || cred_revoked(a->cred))
			continue;
		if (why != NULL) {
			a->listed = a->late = 0;
			snprintf(msg, sizeof msg, "refresh token refused "
			    "(61023); %s", why);
			cred_fetch_failed(a->cred, 61023, msg, 0);
		} else if (a->late) {
			a->late = 0;
			again = 1;
		} else {
			a->listed = 0;
			a->reauth = 1;
			log_warnx("%s: refresh token invalid (61023) and "
			    "WeChat lists no other: the merchant must "
			    "authorize %s again", cred_appid(a->cred), set->appid);
			cred_fetch_failed(a->cred, 61023, "refresh token invalid "
			    "(61023): needs re-authorization", 1);
		}
	}
	if (again)
		authorizer_list_start(set, 1);
}

/*
 * One authorizer of the list: a refresh token other than ours may work. One
 * not in memory goes to the store as it is listed (no credential loaded):
 * cred_lookup finds it there at its next send (learn: only those, in the
 * page's transaction; else only the loaded ones, each committed on its own
 * before its refresh is retried).
 */
static void
authorizer_list_item(struct authorizer_set *set, json_t *item, int learn)
{
	const char *aid, *rt;
	struct authorizer *a;

	aid = json_string_value(json_object_get(item, "authorizer_appid"));
	rt = json_string_value(json_object_get(item, "refresh_token"));
	if (!valid_appid_str(aid) || rt == NULL ||
	    !valid_word(rt, strlen(rt), WX_TOKEN_MAX))
		return;
	if (cred_find(aid) == NULL) {
		if (learn && store_authorizer_learn(set->appid, aid, rt,
		    clock_now(), set->list_asked) == 1)
			set->list_learned++;
		return;
	}
	if (learn)
		return;
	if ((a = authorizer_find(set, aid)) == NULL || !a->listed ||
	    cred_revoked(a->cred) || strcmp(rt, a->refresh_token) == 0)
		return;
	a->listed = a->late = 0;
	if (authorizer_commit(set->appid, aid, rt, 0) != 0) {
		cred_fetch_failed(a->cred, 61023, "could not store the refresh "
		    "token found with api_get_authorizer_list", 0);
		return;
	}
	authorizer_set_rt(a, rt);
	log_info("%s: api_get_authorizer_list has a newer refresh token; "
	    "stored, retrying", aid);
	cred_refresh(a->cred, 0);
}

/* A page of api_get_authorizer_list: use it, then ask for the next or end. */
static void
authorizer_list_cb(const struct upstream_reply *r, void *arg)
{
	struct authorizer_set *set = arg;
	json_t *list, *total, *item;
	size_t i, n;
	long errcode = wxapi_errcode(r);
	int retry_after, batch, last;
	char why[96];
	struct timeval pace = { AUTHORIZER_LIST_PACE_MS / 1000,
	    (AUTHORIZER_LIST_PACE_MS % 1000) * 1000 };

	set->list_call = NULL;
	if (!r->ok) {
		snprintf(why, sizeof why, "api_get_authorizer_list failed (%s)",
		    r->error);
		authorizer_list_end(set, why);
		return;
	}
	switch (wxapi_classify(WXAPI_GET_AUTHORIZER_LIST, errcode,
	    &retry_after)) {
	case WXAPI_OK:
		break;
	case WXAPI_TOKEN_REFUSED:
		cred_token_failed(set->parent, set->list_gen, errcode);
		authorizer_list_end(set, "the component_access_token was "
		    "refused");
		return;
	default:
		snprintf(why, sizeof why, "api_get_authorizer_list refused "
		    "(errcode %ld)", errcode);
		authorizer_list_end(set, why);
		return;
	}
	list = json_object_get(r->json, "list");
	total = json_object_get(r->json, "total_count");
	if (!json_is_array(list) || !json_is_integer(total) ||
	    (n = json_array_size(list)) > AUTHORIZER_LIST_COUNT) {
		authorizer_list_end(set, "malformed api_get_authorizer_list "
		    "reply");
		return;
	}
	/*
	 * A page's rows not in memory and the offset after them in one
	 * transaction (lost together: the page is asked again); then the
	 * loaded ones.
	 */
	batch = store_batch_begin() == 0;
	json_array_foreach(list, i, item)
		authorizer_list_item(set, item, 1);
	set->list_offset += (int)n;
	last = n == 0 || set->list_offset >= json_integer_value(total) ||
	    set->list_offset >= AUTHORIZER_LIST_MAX;
	if (last)
		store_walk_delete(set->appid);
	else
		store_walk_save(set->appid, set->list_offset,
		    set->list_started);
	if (batch && store_batch_end(1) != 0)
		log_warnx("%s: could not store a page of "
		    "api_get_authorizer_list", set->appid);
	json_array_foreach(list, i, item)
		authorizer_list_item(set, item, 0);
	if (last) {
		log_info("%s: api_get_authorizer_list walked to %d; %llu "
		    "stored row%s learned", set->appid, set->list_offset,
		    (unsigned long long)set->list_learned,
		    set->list_learned == 1 ? "" : "s");
		authorizer_list_end(set, NULL);
		return;
	}
	evtimer_add(set->list_timer, &pace);
}

/* The pace is kept: the next page. */
static void
authorizer_list_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	authorizer_list_page(arg);
}

/* Whether the component's walk is under way (a page asked or paced). */
static int
authorizer_list_running(struct authorizer_set *set)
{
	return (set->list_call != NULL ||
	    evtimer_pending(set->list_timer, NULL));
}

/* Ask for the next page of the component's authorizers. */
static void
authorizer_list_page(struct authorizer_set *set)
{
	struct cred *p = set->parent;

	if (!cred_usable(p)) {
		authorizer_list_end(set, "the component has no "
		    "component_access_token");
		return;
	}
	set->list_gen = cred_gen(p);
	set->list_asked = clock_now();
	set->list_call = wxapi_post_json(WXAPI_GET_AUTHORIZER_LIST,
	    cred_token(p), json_pack("{s:s, s:i, s:i}", "component_appid",
	    set->appid, "offset", set->list_offset, "count",
	    AUTHORIZER_LIST_COUNT), authorizer_list_cb, set);
}

/*
 * Walk api_get_authorizer_list for the authorizers that got 61023, from where
 * a stopped walk stands (stored) or from the start; paced (again: the first
 * page too). Resumed past the start, the authorizers waiting are late: their
 * rows may be behind, so they get a walk from the start after this one.
 */
static void
authorizer_list_start(struct authorizer_set *set, int paced)
{
	struct authorizer *a;
	struct timeval pace = { AUTHORIZER_LIST_PACE_MS / 1000,
	    (AUTHORIZER_LIST_PACE_MS % 1000) * 1000 };
	int resumed;

	if (authorizer_list_running(set))
		return;
	resumed = store_walk_load(set->appid, &set->list_offset,
	    &set->list_started) == 1 && set->list_offset > 0;
	TAILQ_FOREACH(a, &set->list, entry)
		a->late = resumed && a->listed;
	if (resumed)
		log_info("%s: resuming api_get_authorizer_list at %d",
		    set->appid, set->list_offset);
	else {
		set->list_offset = 0;
		set->list_started = clock_now();
		set->list_learned = 0;
		store_walk_save(set->appid, 0, set->list_started);
	}
	if (paced)
		evtimer_add(set->list_timer, &pace);
	else
		authorizer_list_page(set);
}

/*
 * 61023: our refresh token is no longer good. WeChat's list of authorizers
 * may hold a newer one (lost by a crash, or rotated by another host); one walk
 * serves every authorizer of the component that needs it.
 */
static void
authorizer_list_join(struct authorizer *a)
{
	a->listed = 1;
	cred_note(a->cred, 61023, "refresh token refused (61023); looking for "
	    "a newer one");
	log_warnx("%s: refresh token refused (61023); checking "
	    "api_get_authorizer_list", cred_appid(a->cred));
	if (authorizer_list_running(a->set)) {
		a->late = 1;
		return;
	}
	authorizer_list_start(a->set, 0);
}

/* 61023 for a: a newer refresh token from Redis or WeChat's list may help. */
static void
authorizer_rt_refused(struct authorizer *a)
{
	struct cred *c = a->cred;
	struct timeval tv = { AUTHORIZER_RTWAIT_SECS, 0 };

	if (a->rtnew) {
		/* Refused the one we replaced meanwhile: try the new. */
		a->rtnew = 0;
		log_info("%s: the old refresh token was refused; retrying "
		    "with the newer one", cred_appid(c));
		cred_refresh(c, 0);
	} else if (redis_authorizer_get(cred_appid(c)) == 0) {
		/* Another host may have rotated it: Redis first. */
		a->rtwait = 1;
		cred_note(c, 61023, "refresh token refused (61023); checking "
		    "Redis");
		log_warnx("%s: refresh token refused (61023); checking Redis "
		    "for a newer one", cred_appid(c));
		evtimer_add(a->rtwait_timer, &tv);
	} else
		authorizer_list_join(a);
}

/* api_authorizer_token's answer; 40001 here means the component's token. */
static void
authorizer_token_cb(const struct upstream_reply *r, void *arg)
{
	struct authorizer *a = arg;
	struct cred *c = a->cred;
	const char *rt;
	long errcode = wxapi_errcode(r);
	int retry_after;

	cred_fetch_done(c);
	if (!r->ok) {
		a->rtnew = 0;
		cred_token_reply(c, r);
		return;
	}
	switch (wxapi_classify(WXAPI_AUTHORIZER_TOKEN, errcode,
	    &retry_after)) {
	case WXAPI_OK:
		break;
	case WXAPI_TOKEN_REFUSED:
		/* The only token in this call is the component's. */
		a->rtnew = 0;
		cred_token_failed(a->set->parent, a->parent_gen, errcode);
		a->waiting = 1;
		cred_fetch_failed(c, errcode, "the component_access_token was "
		    "refused", 0);
		return;
	case WXAPI_REFRESH_TOKEN_REFUSED:
		cred_yield(c);
		authorizer_rt_refused(a);
		return;
	case WXAPI_REVOKED:
		a->rtnew = 0;
		cred_note(c, errcode, "the merchant revoked the authorization "
		    "(61003)");
		cred_revoke(c);
		return;
	default:
		a->rtnew = 0;
		cred_token_reply(c, r);
		return;
	}

	/* Commit the refresh token that came back before using the token. */
	a->rtnew = 0;
	rt = json_string_value(json_object_get(r->json,
	    "authorizer_refresh_token"));
	if (rt == NULL || !valid_word(rt, strlen(rt), WX_TOKEN_MAX))
		log_warnx("%s: api_authorizer_token gave no usable refresh "
		    "token; keeping ours", cred_appid(c));
	else if (strcmp(rt, a->refresh_token) != 0) {
		if (authorizer_commit(a->set->appid, cred_appid(c), rt,
		    0) != 0) {
			cred_fetch_failed(c, 0, "could not store the new "
			    "refresh token, so its access token is not used",
			    0);
			return;
		}
		authorizer_set_rt(a, rt);
		log_info("%s: new refresh token stored", cred_appid(c));
	}
	a->waiting = a->reauth = 0;
	authorizer_touch(a);
	cred_token_reply(c, r);
}

/* Refresh an authorizer's token, which needs the component's. */
static enum cred_fetch
authorizer_fetch(struct cred *c, void *data, int force,
    struct upstream_call **call)
{
	struct authorizer *a = data;
	struct cred *p = a->set->parent;

	(void)force;	/* no force_refresh for these */
	a->staggered = 0;
	evtimer_del(a->stagger);
	if (a->rtwait) {
		/* Redis did not answer in time: WeChat's list, then. */
		a->rtwait = 0;
		evtimer_del(a->rtwait_timer);
		authorizer_list_join(a);
		return (CRED_FETCH_NONE);
	}
	if (a->listed || a->reauth)
		return (CRED_FETCH_NONE);	/* the walk retries it, or only a
						 * new authorization helps */
	if (!cred_usable(p)) {
		a->waiting = 1;
		if (!cred_usable(c))
			cred_note(c, cred_last_errcode(c), "waiting for the "
			    "component_access_token");
		return (CRED_FETCH_NONE);
	}
	a->waiting = 0;
	a->parent_gen = cred_gen(p);
	*call = wxapi_post_json(WXAPI_AUTHORIZER_TOKEN, cred_token(p),
	    json_pack("{s:s, s:s, s:s}", "component_appid", a->set->appid,
	    "authorizer_appid", cred_appid(c), "authorizer_refresh_token",
	    a->refresh_token), authorizer_token_cb, a);
	log_debug("%s: fetching authorizer_access_token", cred_appid(c));
	return (CRED_FETCH_STARTED);
}

/* A new token for a (fetched, installed or from Redis): nothing is deferred. */
static void
authorizer_ready(struct cred *c, void *data)
{
	struct authorizer *a = data;

	(void)c;
	a->waiting = a->staggered = a->wanted = 0;
	evtimer_del(a->stagger);
}

/* Whether a waits for its component's token. */
static int
authorizer_waiting(const struct authorizer *a)
{
	return (!cred_revoked(a->cred) && !cred_refreshing(a->cred) &&
	    a->waiting);
}

/*
 * The component has a token: start the authorizers that waited for it, spread
 * over up to a minute (about 100 a second) so that thousands never fire in the
 * same second; one with a send waiting goes now, and one with a token left
 * goes before half of it is gone.
 */
void
authorizer_set_ready(struct authorizer_set *set)
{
	struct authorizer *a, *next;
	struct timeval tv;
	time_t now = clock_now();
	uint32_t n = 0, window, ms, limit;
	time_t started;
	int off;

	TAILQ_FOREACH(a, &set->list, entry) {
		if (!authorizer_waiting(a))
			continue;
		if (!a->wanted && cred_idle(a->cred)) {
			/* Unused: no token until a send asks for one. */
			a->waiting = 0;
			cred_refresh_if_used(a->cred);
		} else
			n++;
	}
	/* A walk a stop interrupted goes on. */
	if (!authorizer_list_running(set) &&
	    store_walk_load(set->appid, &off, &started) == 1)
		authorizer_list_start(set, 0);
	if (n == 0)
		return;
	window = n > AUTHORIZER_SPREAD_MAX / (1000 / AUTHORIZER_SPREAD_RATE) ?
	    AUTHORIZER_SPREAD_MAX : n * (1000 / AUTHORIZER_SPREAD_RATE);
	/*
	 * 100,000 in a minute is 1,700 calls a second, each token committed on
	 * its own: far more than the loop and the upstream handle (tens of
	 * thousands of transfers pending stall libcurl). Past 12,000, a longer
	 * window keeps it to AUTHORIZER_SPREAD_FAST a second.
	 */
	if ((uint64_t)n * 1000 > (uint64_t)window * AUTHORIZER_SPREAD_FAST)
		window = (uint32_t)((uint64_t)n * 1000 / AUTHORIZER_SPREAD_FAST);
	log_info("%s: refreshing %u authorizer%s over %u ms", set->appid, n,
	    n == 1 ? "" : "s", window);
	for (a = TAILQ_FIRST(&set->list); a != NULL; a = next) {
		next = TAILQ_NEXT(a, entry);
		if (!authorizer_waiting(a))
			continue;
		a->waiting = 0;
		if (a->wanted) {
			cred_refresh(a->cred, 0);
			continue;
		}
		ms = arc4random_uniform(window + 1);
		if (cred_usable(a->cred)) {
			limit = (uint32_t)(cred_expires_at(a->cred) - now) * 500;
			if (ms > limit)
				ms = limit;
		}
		a->staggered = 1;
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(a->stagger, &tv);
	}
}

/* A send waits for c's token: do not let the spreading delay it. */
static void
authorizer_wanted(struct cred *c, void *data)
{
	struct authorizer *a = data;
	struct cred *p = a->set->parent;
	char why[160];

	a->wanted = 1;
	if (a->staggered) {
		cred_refresh(c, 0);
		return;
	}
	if (a->waiting && !cred_usable(p) && cred_permanent(p)) {
		/* The component's own failure needs an operator: say so now. */
		snprintf(why, sizeof why, "the component has no token (%s)",
		    cred_last_error(p));
		cred_fail_waiting(c, why);
	}
}

/*
 * The merchant revoked the platform (61003, an unauthorized event, or
 * another host through Redis): commit and share that unless it came from
 * Redis (committed already there), and stop what was deferred.
 */
static void
authorizer_revoked(struct cred *c, void *data)
{
	struct authorizer *a = data;

	a->waiting = a->staggered = a->listed = a->late = a->reauth = 0;
	a->rtwait = a->rtnew = 0;
	evtimer_del(a->stagger);
	evtimer_del(a->rtwait_timer);
	if (a->revoke_how == AUTHORIZER_REVOKE_COMMIT &&
	    authorizer_commit(a->set->appid, cred_appid(c), a->refresh_token,
	    1) != 0)
		log_warnx("%s: could not store the revocation", cred_appid(c));
	if (a->revoke_how != AUTHORIZER_REVOKE_LOADED)
		log_info("%s: the merchant revoked its authorization of %s",
		    cred_appid(c), a->set->appid);
	a->revoke_how = AUTHORIZER_REVOKE_COMMIT;
}

/*
 * An authorization whose api_query_auth answer may have been lost (no answer,
 * then 61010 for the same code): WeChat may have issued tokens we never saw.
 * The authorizer's refresh token is looked for in api_get_authorizer_list;
 * if WeChat lists none, the merchant must authorize again. 0, or -1 if appid
 * is another account's or component's, or needs nothing.
 */
int
authorizer_recover(struct authorizer_set *set, const char *appid)
{
	struct authorizer *a = authorizer_get(set, appid);
	struct cred *c = a != NULL ? a->cred : cred_find(appid);

	if (c != NULL && !cred_removed(c) && (a == NULL || a->set != set))
		return (-1);
	if (a == NULL)
		a = authorizer_new(set, appid, "");
	else if (!cred_revoked(a->cred))
		return (-1);	/* it has a refresh token of its own */
	else {
		a->revoke_how = AUTHORIZER_REVOKE_COMMIT;
		cred_unrevoke(a->cred);
	}
	a->waiting = a->staggered = a->reauth = a->rtwait = a->rtnew = 0;
	authorizer_list_join(a);
	return (0);
}

/* An unauthorized event for appid: revoke it if it is ours. */
void
authorizer_unauthorized(struct authorizer_set *set, const char *appid)
{
	struct authorizer *a;

	if ((a = authorizer_get(set, appid)) != NULL)
		cred_revoke(a->cred);
	else
		log_info("%s: %s is not an authorizer here", set->appid, appid);
}

/*
 * Take an authorizer's tokens from api_query_auth: commit the refresh token,
 * then use the access token. 0, or -1 with an error code and message.
 */
int
authorizer_install(struct authorizer_set *set, const char *appid,
    const char *refresh_token, const char *token, int expires_in,
    const char **code, char *msg, size_t msglen)
{
	struct authorizer *a = authorizer_get(set, appid);
	struct cred *c = a != NULL ? a->cred : cred_find(appid);
	time_t now = clock_now();

	if (a == NULL)
		a = authorizer_of(c);	/* another set's, if any */
	if (c != NULL && !cred_removed(c) && (a == NULL || a->set != set)) {
		*code = "invalid_request";
		snprintf(msg, msglen, "%s is already configured here as %s",
		    appid, a != NULL ? "an authorizer of another component" :
		    "an account or component");
		return (-1);
	}
	if (authorizer_save(set->appid, appid, refresh_token, 0, now,
	    now) != 0) {
		*code = "internal";
		snprintf(msg, msglen, "could not store the refresh token of "
		    "%s; its tokens are not used", appid);
		return (-1);
	}
	if (a == NULL)
		a = authorizer_new(set, appid, refresh_token);
	else
		authorizer_set_rt(a, refresh_token);
	a->used_saved = now;
	a->waiting = a->staggered = a->listed = a->late = a->reauth = 0;
	a->rtwait = a->rtnew = 0;
	evtimer_del(a->stagger);
	evtimer_del(a->rtwait_timer);
	log_info("%s: authorized %s", appid, set->appid);
	/* api_query_auth issued this token: counted as a token call. */
	cred_install(a->cred, token, expires_in);
	/* Shared after its token, so another host finds both in Redis. */
	redis_authorizer_put(set->appid, appid, refresh_token, 0, now);
	return (0);
}

/*
 * What Redis holds for an authorizer of this set (another host committed it),
 * or NULL component if nothing usable: taken, and committed here too, if it
 * is at least as recent as our stored one; ours goes back to Redis if it is
 * newer. Returns whether the authorizer took it.
 */
static int
authorizer_take_shared(struct authorizer_set *set, struct authorizer *a,
    const char *appid, const char *rt, int revoked, time_t at)
{
	struct store_authorizer sa;
	int found = 0, r = 0;	/* 1 taken, 2 taken into the store only */

	memset(&sa, 0, sizeof sa);
	if (revoked ? rt[0] != '\0' && !valid_word(rt, strlen(rt),
	    WX_TOKEN_MAX) : !valid_word(rt, strlen(rt), WX_TOKEN_MAX))
		goto out;
	switch (store_authorizer_load(appid, &sa)) {
	case -1:
		goto out;
	case 1:
		found = 1;
		break;
	}
	if (found && (strcmp(sa.component_appid, set->appid) != 0 ||
	    (strcmp(sa.refresh_token, rt) == 0 &&
	    (sa.revoked != 0) == (revoked != 0))))
		goto out;
	if (found && sa.updated_at > at) {
		/* Ours is newer (Redis lost it, or a host was behind). */
		if (sa.revoked || sa.refresh_token[0] != '\0')
			redis_authorizer_put(set->appid, appid, sa.refresh_token,
			    sa.revoked, sa.updated_at);
		goto out;
	}
	if (authorizer_save(set->appid, appid, rt, revoked, at, 0) != 0) {
		log_warnx("%s: could not store the refresh token from Redis",
		    appid);
		goto out;
	}
	/* Stored but idle here (not in memory): committed, it stays there. */
	r = found && a == NULL ? 2 : 1;
out:
	explicit_bzero(&sa, sizeof sa);
	return (r);
}

/*
 * Redis's answer for an authorizer of this set (see authorizer_take_shared).
 * An authorizer waiting on 61023 retries with a newer refresh token, or else
 * walks api_get_authorizer_list.
 */
void
authorizer_shared(struct authorizer_set *set, const char *appid,
    const char *component, const char *rt, int revoked, time_t at)
{
	struct cred *c = cred_find(appid);
	struct authorizer *a = authorizer_of(c);
	int wait = 0, took;

	if (c != NULL && cred_removed(c))
		c = NULL, a = NULL;
	if (a != NULL && a->set != set)
		return;		/* another component's */
	if (a != NULL && a->rtwait) {
		wait = 1;
		a->rtwait = 0;
		evtimer_del(a->rtwait_timer);	/* the fallback */
	}
	if (component == NULL || strcmp(component, set->appid) != 0 ||
	    (c != NULL && a == NULL) ||
	    (took = authorizer_take_shared(set, a, appid, rt, revoked,
	    at)) == 0) {
		if (wait)
			authorizer_list_join(a);
		return;
	}
	if (took == 2) {
		log_info("%s: %s from another host (through Redis) stored; "
		    "idle here", appid, revoked ? "revocation" :
		    "refresh token");
		return;
	}
	if (a == NULL) {
		/* Authorized (or revoked) on another host. */
		a = authorizer_new(set, appid, rt);
		log_info("%s: %s %s on another host (through Redis)", appid,
		    revoked ? "revoked" : "authorized", set->appid);
		if (revoked) {
			a->revoke_how = AUTHORIZER_REVOKE_SHARED;
			cred_revoke(a->cred);
		} else
			cred_start(a->cred, 1);
		return;
	}
	authorizer_set_rt(a, rt);
	if (revoked) {
		a->revoke_how = AUTHORIZER_REVOKE_SHARED;
		cred_revoke(a->cred);
		return;
	}
	log_info("%s: %s refresh token from another host (through Redis)",
	    appid, cred_revoked(a->cred) ? "re-authorized, with a" : "newer");
	if (cred_refreshing(a->cred)) {
		a->rtnew = 1;	/* a 61023 then retries */
		return;
	}
	if (wait || cred_revoked(a->cred) || cred_permanent(a->cred) ||
	    a->listed || a->reauth) {
		cred_unrevoke(a->cred);
		a->listed = a->late = a->reauth = 0;
		cred_refresh(a->cred, 0);
	}
}

static int
authorizer_sync_one(const struct store_authorizer *sa, void *arg)
{
	struct authorizer_set *set = arg;

	set->sync_seen++;
	snprintf(set->sync_from, sizeof set->sync_from, "%s", sa->appid);
	if (sa->revoked || sa->refresh_token[0] != '\0') {
		redis_authorizer_put(set->appid, sa->appid, sa->refresh_token,
		    sa->revoked, sa->updated_at);
		set->sync_rows++;
	}
	return (0);
}

/*
 * A page of the write-back: AUTHORIZER_SYNC_PAGE stored rows after sync_from,
 * once Redis has room for them (at most AUTHORIZER_SYNC_INFLIGHT commands
 * unanswered, ours and everyone's); then the next, paced.
 */
static void
authorizer_sync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authorizer_set *set = arg;
	struct timeval pace = { 0, AUTHORIZER_SYNC_PACE_MS * 1000 };
	int r;

	(void)fd;
	(void)what;
	if (!redis_connected())
		return;		/* the next connection starts it over */
	if (redis_pending_count() + AUTHORIZER_SYNC_PAGE >
	    AUTHORIZER_SYNC_INFLIGHT) {
		evtimer_add(set->sync, &pace);
		return;
	}
	set->sync_seen = 0;
	r = store_authorizer_page(set->appid, set->sync_from,
	    AUTHORIZER_SYNC_PAGE, authorizer_sync_one, set);
	if (r == -1)
		log_warnx("%s: could not share every stored refresh token",
		    set->appid);
	else if (set->sync_seen == AUTHORIZER_SYNC_PAGE) {
		evtimer_add(set->sync, &pace);
		return;
	} else
		log_info("%s: %llu stored refresh token%s shared with Redis",
		    set->appid, (unsigned long long)set->sync_rows,
		    set->sync_rows == 1 ? "" : "s");
}

/*
 * Redis is (back) up: share every stored refresh token of the component,
 * idle authorizers' (not in memory) included, a page at a time from the
 * store (a million at once would be a million commands queued). A new
 * connection starts over: the Redis behind it may have none of them.
 */
void
authorizer_set_sync(struct authorizer_set *set)
{
	set->sync_from[0] = '\0';
	set->sync_rows = 0;
	evtimer_del(set->sync);
	authorizer_sync_cb(-1, 0, set);
}

/* The permission sets a stored authorizer granted, if known. */
static void
authorizer_load_permissions(struct authorizer *a)
{
	char ids[1025];

	if (store_permissions_load(cred_appid(a->cred), ids, sizeof ids) == 1) {
		free(a->permissions);
		a->permissions = xstrdup(ids);
	}
}

/*
 * The permission sets (func_info ids, "1,2,15") authorizer appid of set just
 * granted: kept durably and shown in status.
 */
void
authorizer_set_permissions(struct authorizer_set *set, const char *appid,
    const char *ids)
{
	struct authorizer *a;

	if (store_permissions_save(appid, ids) != 0)
		log_warnx("%s: could not store its permissions", appid);
	if ((a = authorizer_find(set, appid)) == NULL)
		return;
	free(a->permissions);
	a->permissions = xstrdup(ids);
	log_info("%s: permission sets granted to %s: [%s]", appid, set->appid,
	    ids);
}

/* The permission set ids an authorizer granted ("1,2"), NULL if unknown. */
const char *
authorizer_permissions(const struct cred *c)
{
	struct authorizer *a = authorizer_of(c);

	return (a != NULL ? a->permissions : NULL);
}

/* A stored authorizer, at start: its token if still good, else wait. */
static int
authorizer_load_one(const struct store_authorizer *sa, void *arg)
{
	struct authorizer_set *set = arg;
	struct authorizer *a;
	struct cred *c;

	if ((c = cred_find(sa->appid)) != NULL && !cred_removed(c)) {
		log_warnx("%s: stored as an authorizer of %s but already used "
		    "here; ignored", sa->appid, set->appid);
		return (0);
	}
	a = authorizer_new(set, sa->appid, sa->refresh_token);
	authorizer_load_permissions(a);
	a->used_saved = sa->last_used;
	cred_set_used(a->cred, sa->last_used);
	if (sa->revoked) {
		a->revoke_how = AUTHORIZER_REVOKE_LOADED;
		cred_revoke(a->cred);
		return (0);
	}
	if (sa->refresh_token[0] == '\0') {
		a->reauth = 1;
		cred_mark_permanent(a->cred, "no refresh token stored: needs "
		    "re-authorization");
		return (0);
	}
	/* Without a stored token, wait: authorizer_set_ready spreads these. */
	cred_start(a->cred, 0);
	if (!cred_has_token(a->cred))
		a->waiting = 1;
	return (0);
}

/*
 * Load a component's stored authorizers: with authorizer_idle, only those
 * used within it (an index range); the others stay in the store until a send
 * names one (authorizer_set_load_appid).
 */
void
authorizer_set_load(struct authorizer_set *set)
{
	struct authorizer *a;
	struct timespec t0, t1;
	unsigned int revoked = 0;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (wx_conf->authorizer_idle > 0)
		r = store_authorizer_foreach_used(set->appid, clock_now() -
		    wx_conf->authorizer_idle, authorizer_load_one, set);
	else
		r = store_authorizer_foreach(set->appid, authorizer_load_one,
		    set);
	if (r == -1)
		log_warnx("%s: could not load all authorizers", set->appid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TAILQ_FOREACH(a, &set->list, entry)
		revoked += cred_revoked(a->cred) != 0;
	log_info("%s: component with %u %sauthorizer%s (%u revoked) loaded in "
	    "%ld ms", set->appid, set->n, wx_conf->authorizer_idle > 0 ?
	    "recently used " : "", set->n == 1 ? "" : "s", revoked,
	    (long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
}

/*
 * A stored authorizer of set that is not in memory, brought in because a
 * send (or an event) names it: sa is its row. Without a usable stored token
 * it dozes, so that the send's use fetches one at once. Its credential, or
 * NULL if the appid is used otherwise here.
 */
struct cred *
authorizer_set_load_row(struct authorizer_set *set,
    const struct store_authorizer *sa)
{
	struct authorizer *a;

	authorizer_load_one(sa, set);
	if ((a = authorizer_find(set, sa->appid)) == NULL)
		return (NULL);
	if (a->waiting) {
		a->waiting = 0;
		cred_refresh_if_used(a->cred);
	}
	return (a->cred);
}

/*
 * The authorizer appid of set, in memory or loaded from the store; NULL if
 * set has none.
 */
static struct authorizer *
authorizer_get(struct authorizer_set *set, const char *appid)
{
	struct store_authorizer sa;
	struct authorizer *a;
	struct cred *c;

	if ((a = authorizer_find(set, appid)) != NULL)
		return (a);
	if ((c = cred_find(appid)) != NULL && !cred_removed(c))
		return (NULL);	/* another kind, or another set's */
	if (store_authorizer_load(appid, &sa) == 1 &&
	    strcmp(sa.component_appid, set->appid) == 0)
		authorizer_set_load_row(set, &sa);
	explicit_bzero(&sa, sizeof sa);
	return (authorizer_find(set, appid));
}

/* A component's (empty) set of authorizers. */
struct authorizer_set *
authorizer_set_new(struct cred *parent, struct component_conf *conf)
{
	struct authorizer_set *set;
	struct timeval pace = { AUTHORIZER_UNLOAD_PACE_MS / 1000,
	    (AUTHORIZER_UNLOAD_PACE_MS % 1000) * 1000 };

	set = xcalloc(1, sizeof *set);
	snprintf(set->appid, sizeof set->appid, "%s", cred_appid(parent));
	set->parent = parent;
	set->conf = conf;
	TAILQ_INIT(&set->list);
	set->flush = evtimer_new(wx_base, authorizer_flush_cb, set);
	set->list_timer = evtimer_new(wx_base, authorizer_list_timer_cb, set);
	set->sync = evtimer_new(wx_base, authorizer_sync_cb, set);
	set->unload = event_new(wx_base, -1, EV_PERSIST, authorizer_unload_cb,
	    set);
	evtimer_add(set->unload, &pace);
	return (set);
}

/* A reload: the authorizers take their component's new settings. */
void
authorizer_set_configure(struct authorizer_set *set, struct component_conf *conf)
{
	set->conf = conf;
}

/*
 * The component goes, and its authorizers with it; at a stop (stopping) their
 * credentials stay for cred.c to save, with no source data left.
 */
void
authorizer_set_free(struct authorizer_set *set, int stopping)
{
	struct authorizer *a;

	/* A walk under way stays stored: the next start resumes it. */
	if (set->list_call != NULL)
		upstream_cancel(set->list_call);
	event_free(set->list_timer);
	event_free(set->sync);
	event_free(set->unload);
	if (stopping) {
		/* Every use since the last refresh, for the next start. */
		TAILQ_FOREACH(a, &set->list, entry) {
			if (!a->touched &&
			    cred_used_at(a->cred) > a->used_saved) {
				a->touched = 1;
				set->touched++;
			}
		}
		authorizer_flush(set);
	}
	while ((a = TAILQ_FIRST(&set->list)) != NULL)
		authorizer_free(a, stopping ? AUTHORIZER_FREE_STOP :
		    AUTHORIZER_FREE_REMOVE);
	event_free(set->flush);
	free(set);
}

/* A line for status: an authorizer's trouble, or "". */
const char *
authorizer_detail(const struct cred *c)
{
	struct authorizer *a = authorizer_of(c);

	if (a == NULL)
		return ("");
	if (cred_revoked(c))
		return ("revoked");
	if (a->reauth)
		return ("needs re-authorization");
	if (a->listed)
		return ("refresh token refused (61023): checking "
		    "api_get_authorizer_list");
	if (a->rtwait)
		return ("refresh token refused (61023): checking Redis");
	if (a->waiting && !cred_usable(c))
		return ("waiting for the component_access_token");
	return ("");
}
