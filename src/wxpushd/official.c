/*
 * Official accounts (and mini programs, whose tokens come from the same
 * endpoints): the token source that fetches an access_token with the
 * AppSecret, stable (default) or classic, and the accounts' part of a
 * configuration reload.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wxpushd.h"

static enum cred_fetch	official_fetch(struct cred *, void *, int,
			    struct upstream_call **);
static int		official_can_force(void *);
static const struct acl	*official_acl(void *);

static const struct cred_source official_source = {
	.name = "official",
	.endpoint = WXAPI_STABLE_TOKEN,
	.token_field = "access_token",
	.shared = 1,
	.fetch = official_fetch,
	.can_force = official_can_force,
	.acl = official_acl,
};

/* The account of an official credential (NULL once removed). */
const struct account_conf *
official_account(const struct cred *c)
{
	if (cred_source(c) != &official_source)
		return (NULL);
	return (cred_data(c));
}

static const struct acl *
official_acl(void *data)
{
	const struct account_conf *a = data;

	return (a != NULL ? &a->allow : NULL);
}

/* Only the stable API can invalidate a token it handed out. */
static int
official_can_force(void *data)
{
	const struct account_conf *a = data;

	return (a != NULL && a->token_api == TOKEN_API_STABLE);
}

static void
official_cb(const struct upstream_reply *r, void *arg)
{
	cred_token_reply(arg, r);
}

/* Ask for an official account's access_token, stable (default) or classic. */
static enum cred_fetch
official_fetch(struct cred *c, void *data, int force,
    struct upstream_call **call)
{
	struct account_conf *a = data;
	char *s;
	json_t *body;

	if (a->token_api == TOKEN_API_CLASSIC) {
		xasprintf(&s, "grant_type=client_credential&appid=%s&secret=%s",
		    a->appid, a->secret);
		*call = wxapi_request(WXAPI_TOKEN, NULL, s, NULL, 0,
		    official_cb, c);
	} else {
		body = json_pack("{s:s, s:s, s:s, s:b}", "grant_type",
		    "client_credential", "appid", a->appid, "secret", a->secret,
		    "force_refresh", force);
		s = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (s == NULL)
			fatalx("json_dumps");
		*call = wxapi_request(WXAPI_STABLE_TOKEN, NULL, NULL, s,
		    strlen(s), official_cb, c);
	}
	freezero_str(s);
	log_debug("%s: fetching access_token (%s%s)", cred_appid(c),
	    a->token_api == TOKEN_API_CLASSIC ? "classic" : "stable",
	    force ? ", force_refresh" : "");
	return (CRED_FETCH_STARTED);
}

/*
 * A reload gave c new account settings. A usable token is kept whatever
 * changed. Without one, a credential whose secret or token_api changed, or
 * that waits out the long retry of an error an operator must fix (a wrong
 * secret, the IP whitelist, the daily quota), tries again now: the reload may
 * be the fix.
 */
static void
official_reconfigure(struct cred *c, struct account_conf *a)
{
	const struct account_conf *old = cred_data(c);
	int changed;

	changed = old == NULL || old->token_api != a->token_api ||
	    old->secret == NULL || a->secret == NULL ||
	    strcmp(old->secret, a->secret) != 0;
	cred_set_data(c, a);
	if (changed)
		log_info("%s: secret or token_api changed", a->appid);
	cred_retry_now(c, changed);
}

/*
 * Bring the accounts in line with conf: new ones start, changed ones take the
 * new settings, removed ones go once their sends finish.
 */
void
official_reconcile(struct config *conf)
{
	struct account_conf *a;
	struct cred *c, *next;

	for (c = cred_first(); c != NULL; c = next) {
		next = cred_next(c);
		if (cred_source(c) != &official_source || cred_removed(c))
			continue;
		if ((a = config_find_account(conf, cred_appid(c))) == NULL) {
			log_info("%s: removed", cred_appid(c));
			cred_remove(c);	/* its account goes with the old conf */
			continue;
		}
		official_reconfigure(c, a);
	}
	TAILQ_FOREACH(a, &conf->accounts, entry) {
		if ((c = cred_find(a->appid)) != NULL && !cred_removed(c))
			continue;
		c = cred_add(a->appid, CRED_OFFICIAL, &official_source, a);
		cred_start(c, 1);
	}
}
