/*
 * Accounts and their access tokens: the classic /cgi-bin/token and the
 * /cgi-bin/stable_token endpoints, and the token table every other endpoint
 * checks tokens against.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

/* Accounts by appid, tokens by value. */
static struct mock_hash	*mock_accounts;
static struct mock_hash	*mock_tokens;
static size_t		 mock_naccounts[3];	/* by kind */

/* Create the empty tables. */
void
mock_token_init(void)
{
	mock_accounts = mock_hash_new();
	mock_tokens = mock_hash_new();
}

/* Free a token and its table entry. */
static void
mock_token_free_cb(void *value, void *arg)
{
	(void)arg;
	free(value);
}

/* Free an account and what it owns (its tokens are freed separately). */
static void
mock_account_free_cb(void *value, void *arg)
{
	struct mock_account *a = value;

	(void)arg;
	if (a->component != NULL) {
		free(a->component->list);
		free(a->component->bulk_prefix);
		freezero_str(a->component->token);
		free(a->component);
	}
	freezero_str(a->secret);
	free(a);
}

/* Free every account and token, at exit. */
void
mock_token_shutdown(void)
{
	mock_hash_foreach(mock_tokens, mock_token_free_cb, NULL);
	mock_hash_free(mock_tokens);
	mock_hash_foreach(mock_accounts, mock_account_free_cb, NULL);
	mock_hash_free(mock_accounts);
}

/* The account with that appid, or NULL. */
struct mock_account *
mock_account_find(const char *appid)
{
	return (mock_hash_find(mock_accounts, appid));
}

/* How many accounts of that kind exist. */
size_t
mock_account_count(enum mock_kind kind)
{
	return (mock_naccounts[kind]);
}

/* A foreach callback taking an account, and its argument. */
struct mock_account_iter {
	void	(*cb)(struct mock_account *, void *);
	void	 *arg;
};

/* Unwrap the value for an account callback. */
static void
mock_account_foreach_cb(void *value, void *arg)
{
	struct mock_account_iter *it = arg;

	it->cb(value, it->arg);
}

/* Call cb on every account. */
void
mock_account_foreach(void (*cb)(struct mock_account *, void *), void *arg)
{
	struct mock_account_iter it = { cb, arg };

	mock_hash_foreach(mock_accounts, mock_account_foreach_cb, &it);
}

/*
 * Create an account; the caller has checked that appid is valid and new.
 * NULL if the table for that kind is full.
 */
struct mock_account *
mock_account_new(const char *appid, enum mock_kind kind, const char *secret)
{
	struct mock_account *a;

	if (kind == MOCK_AUTHORIZER) {
		if (mock_naccounts[kind] >= MOCK_MAX_AUTHORIZERS)
			return (NULL);
	} else if (mock_naccounts[MOCK_OFFICIAL] +
	    mock_naccounts[MOCK_COMPONENT] >= MOCK_MAX_ACCOUNTS)
		return (NULL);

	a = xcalloc(1, sizeof *a);
	snprintf(a->appid, sizeof a->appid, "%s", appid);
	a->kind = kind;
	if (secret != NULL)
		a->secret = xstrdup(secret);
	mock_hash_insert(mock_accounts, a->appid, a);
	mock_naccounts[kind]++;
	return (a);
}

/*
 * Add an official account or change the secret of an existing official
 * account or component. 0, or an HTTP status with *cause.
 */
int
mock_account_add(const char *appid, const char *secret, char **cause)
{
	struct mock_account *a;

	if (!mock_appid_valid(appid)) {
		*cause = xstrdup("appid must be 1-64 characters of "
		    "[A-Za-z0-9_-]");
		return (400);
	}
	if (secret == NULL || *secret == '\0' ||
	    strlen(secret) > MOCK_SECRET_MAX) {
		*cause = xstrdup("secret must be 1-256 bytes");
		return (400);
	}
	if ((a = mock_account_find(appid)) != NULL) {
		if (a->kind == MOCK_AUTHORIZER) {
			*cause = xstrdup("appid is an authorizer");
			return (409);
		}
		freezero_str(a->secret);
		a->secret = xstrdup(secret);
		return (0);
	}
	if (mock_account_new(appid, MOCK_OFFICIAL, secret) == NULL) {
		*cause = xstrdup("too many accounts");
		return (503);
	}
	return (0);
}

/* Forget a token: out of the table, off its owner's slots, freed. */
static void
mock_token_free(struct mock_token *t)
{
	struct mock_account *a = t->owner;

	mock_hash_remove(mock_tokens, t->value);
	if (a->tokens[t->slot][0] == t)
		a->tokens[t->slot][0] = NULL;
	if (a->tokens[t->slot][1] == t)
		a->tokens[t->slot][1] = NULL;
	free(t);
}

/* Whether t still works at now (neither killed nor expired). */
int
mock_token_usable(struct mock_token *t, time_t now)
{
	if (t == NULL)
		return (0);
	if (t->killed_at != 0 && now >= t->killed_at)
		return (0);
	return (now < t->expires_at);
}

/*
 * Issue a new token in a slot of a; with MOCK_ISSUE_ROTATE the current one
 * works `overlap` seconds more and the one before dies, with
 * MOCK_ISSUE_REPLACE both die now. -1 if the token table is full.
 */
int
mock_token_issue(struct mock_account *a, enum mock_slot slot,
    enum mock_issue how, time_t now, struct mock_token **tp)
{
	struct mock_token *cur = a->tokens[slot][0], *prev = a->tokens[slot][1];
	struct mock_token *t;
	size_t dying = 0;
	time_t until;

	if (prev != NULL)
		dying++;
	if (cur != NULL && how == MOCK_ISSUE_REPLACE)
		dying++;
	if (mock_hash_count(mock_tokens) - dying >= MOCK_MAX_TOKENS)
		return (-1);

	if (prev != NULL)
		mock_token_free(prev);
	if (cur != NULL) {
		until = now + mock_conf.overlap;
		if (how == MOCK_ISSUE_REPLACE || mock_conf.overlap == 0 ||
		    (cur->killed_at != 0 && cur->killed_at <= now))
			mock_token_free(cur);
		else {
			if (cur->killed_at == 0 || until < cur->killed_at)
				cur->killed_at = until;
			a->tokens[slot][1] = cur;
			a->tokens[slot][0] = NULL;
		}
	}

	t = xcalloc(1, sizeof *t);
	do
		mock_random_b64url(t->value, MOCK_TOKEN_BYTES);
	while (mock_hash_find(mock_tokens, t->value) != NULL);
	t->owner = a;
	t->slot = slot;
	t->expires_at = now + mock_conf.expires_in;
	mock_hash_insert(mock_tokens, t->value, t);
	a->tokens[slot][0] = t;
	mock_stats.tokens_issued++;
	mock_issued_add(a->kind == MOCK_OFFICIAL ? "access_token" :
	    a->kind == MOCK_COMPONENT ? "component_access_token" :
	    "authorizer_access_token", a->appid, t->value, now);
	*tp = t;
	return (0);
}

/*
 * Check a presented token: 0 and *tp if it works, 40001 if unknown or
 * killed, 42001 if expired. A token found dead is pruned here.
 */
int
mock_token_check(const char *value, time_t now, struct mock_token **tp)
{
	struct mock_token *t;

	*tp = NULL;
	if ((t = mock_hash_find(mock_tokens, value)) == NULL)
		return (40001);
	if (t->killed_at != 0 && now >= t->killed_at) {
		mock_token_free(t);
		return (40001);
	}
	if (now >= t->expires_at)
		return (42001);
	*tp = t;
	return (0);
}

/* Kill every token of a (invalidation, revocation). */
void
mock_token_kill_all(struct mock_account *a)
{
	int s, i;

	for (s = 0; s < MOCK_SLOTS; s++) {
		for (i = 0; i < 2; i++) {
			if (a->tokens[s][i] != NULL)
				mock_token_free(a->tokens[s][i]);
		}
	}
}

/* Make every token of a expired now; returns how many. */
u_int
mock_token_expire_all(struct mock_account *a, time_t now)
{
	u_int n = 0;
	int s, i;

	for (s = 0; s < MOCK_SLOTS; s++) {
		for (i = 0; i < 2; i++) {
			if (a->tokens[s][i] != NULL) {
				if (a->tokens[s][i]->expires_at > now)
					a->tokens[s][i]->expires_at = now;
				n++;
			}
		}
	}
	return (n);
}

/* How many tokens a holds, dead or alive. */
u_int
mock_token_count_all(struct mock_account *a)
{
	u_int n = 0;
	int s, i;

	for (s = 0; s < MOCK_SLOTS; s++) {
		for (i = 0; i < 2; i++) {
			if (a->tokens[s][i] != NULL)
				n++;
		}
	}
	return (n);
}

/* Forget one account's force_refresh quota. */
static void
mock_token_reset_quota_cb(struct mock_account *a, void *arg)
{
	(void)arg;
	a->force_count = 0;
	a->force_last = 0;
}

/* Forget the force_refresh quotas of every account (/mock/reset). */
void
mock_token_reset_quota(void)
{
	mock_account_foreach(mock_token_reset_quota_cb, NULL);
}

/*
 * Check appid and secret for a token endpoint: 0 and *ap, or the errcode
 * already answered.
 */
static int
mock_token_login(struct mock_call *call, const char *appid, const char *secret,
    struct mock_account **ap)
{
	struct mock_account *a;

	if (appid == NULL || *appid == '\0') {
		mock_reply_error(call, 41002, "appid missing");
		return (41002);
	}
	if (secret == NULL || *secret == '\0') {
		mock_reply_error(call, 41004, "appsecret missing");
		return (41004);
	}
	a = mock_account_find(appid);
	if (a == NULL || a->kind == MOCK_AUTHORIZER) {
		mock_reply_error(call, 40013, "invalid appid");
		return (40013);
	}
	if (a->kind == MOCK_COMPONENT) {
		mock_reply_error(call, 61024, "this is a component appid: "
		    "use api_component_token");
		return (61024);
	}
	if (strlen(secret) != strlen(a->secret) ||
	    CRYPTO_memcmp(secret, a->secret, strlen(secret)) != 0) {
		mock_reply_error(call, 40125, "invalid appsecret");
		return (40125);
	}
	*ap = a;
	return (0);
}

/* Answer a token and its remaining lifetime. */
static void
mock_token_reply(struct mock_call *call, struct mock_token *t)
{
	json_t *o;

	o = json_pack("{s:s,s:I}", "access_token", t->value, "expires_in",
	    (json_int_t)(t->expires_at - call->now));
	mock_reply_json(call, o);
}

/* GET /cgi-bin/token: every call issues a new token. */
void
mock_token_classic(struct mock_call *call)
{
	const char *grant;
	struct mock_account *a;
	struct mock_token *t;

	grant = mock_call_param(call, "grant_type");
	if (grant == NULL || strcmp(grant, "client_credential") != 0) {
		mock_reply_error(call, 40002, "invalid grant_type");
		return;
	}
	if (mock_token_login(call, mock_call_param(call, "appid"),
	    mock_call_param(call, "secret"), &a) != 0)
		return;
	if (mock_token_issue(a, MOCK_SLOT_CLASSIC, MOCK_ISSUE_ROTATE, call->now,
	    &t) != 0) {
		mock_reply_busy(call, "token table full");
		return;
	}
	mock_token_reply(call, t);
}

/*
 * POST /cgi-bin/stable_token: the same token while it has more than
 * rotation_window seconds left, a new one inside the window;
 * force_refresh=true replaces it, at most 20 times a day and not within
 * 30 seconds of the previous forced refresh.
 */
void
mock_token_stable(struct mock_call *call)
{
	json_t *body, *force;
	const char *grant;
	struct mock_account *a;
	struct mock_token *cur, *t;
	long day;

	if ((body = mock_call_body(call)) == NULL)
		return;
	grant = mock_json_str(body, "grant_type");
	if (grant == NULL || strcmp(grant, "client_credential") != 0) {
		mock_reply_error(call, 40002, "invalid grant_type");
		goto out;
	}
	force = json_object_get(body, "force_refresh");
	if (force != NULL && !json_is_boolean(force)) {
		mock_reply_error(call, 47001, "data format error: "
		    "force_refresh must be a boolean");
		goto out;
	}
	if (mock_token_login(call, mock_json_str(body, "appid"),
	    mock_json_str(body, "secret"), &a) != 0)
		goto out;

	cur = a->tokens[MOCK_SLOT_STABLE][0];
	if (!mock_token_usable(cur, call->now))
		cur = NULL;

	if (json_is_true(force)) {
		if (cur != NULL && a->force_last != 0 &&
		    call->now - a->force_last < MOCK_FORCE_INTERVAL) {
			/* Too soon after the last forced refresh: unchanged. */
			mock_token_reply(call, cur);
			goto out;
		}
		day = (long)(call->now / 86400);
		if (a->force_day != day) {
			a->force_day = day;
			a->force_count = 0;
		}
		if (a->force_count >= MOCK_FORCE_PER_DAY) {
			mock_reply_error(call, 45009, "reach max api daily "
			    "quota limit: force_refresh");
			goto out;
		}
		if (mock_token_issue(a, MOCK_SLOT_STABLE, MOCK_ISSUE_REPLACE,
		    call->now, &t) != 0) {
			mock_reply_busy(call, "token table full");
			goto out;
		}
		a->force_count++;
		a->force_last = call->now;
		mock_token_reply(call, t);
		goto out;
	}

	if (cur != NULL &&
	    cur->expires_at - call->now > mock_conf.rotation_window) {
		mock_token_reply(call, cur);
		goto out;
	}
	if (mock_token_issue(a, MOCK_SLOT_STABLE, MOCK_ISSUE_ROTATE, call->now,
	    &t) != 0) {
		mock_reply_busy(call, "token table full");
		goto out;
	}
	mock_token_reply(call, t);
out:
	json_decref(body);
}
