/*
 * The consents of queued messages: an enqueued subscribe_once spends its
 * consent when it is accepted, holds it while queued and settles it at its
 * final state, through consent.c's interface. The hold is durable through
 * the message's own row (outbox.db, committed before the enqueue is
 * answered): at start, every consent a row not yet final holds is spent
 * again, whatever the ledger's write-behind had reached before a crash.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "wxpushd.h"

/*
 * Spend the consents of n messages being enqueued (oc[i] for
 * msgs[pos[i]]). 0, or -1 with *bad the index in msgs of the first that
 * found none where one is required; every consent spent for the others is
 * then given back.
 */
int
outbox_consent_enqueue(struct message *msgs, const size_t *pos, size_t n,
    struct outbox_consent *oc, size_t *bad)
{
	struct message	*m;
	struct cred	*c;
	size_t		 i;

	for (i = 0; i < n; i++) {
		m = &msgs[pos[i]];
		memset(&oc[i], 0, sizeof oc[i]);
		if (m->kind != &kind_subscribe_once)
			continue;
		oc[i].on = 1;
		snprintf(oc[i].openid, sizeof oc[i].openid, "%s", m->touser);
		snprintf(oc[i].template_id, sizeof oc[i].template_id, "%s",
		    m->template_id);
		oc[i].scene = m->scene;
		if (consent_spend(m->appid, m->touser, m->template_id, m->scene,
		    oc[i].tag) == 0 && (c = cred_lookup(m->appid)) != NULL &&
		    consent_required(c)) {
			oc[i].on = 0;
			outbox_consent_unqueue(msgs, pos, i, oc);
			*bad = pos[i];
			return (-1);
		}
	}
	return (0);
}

/* Messages whose consents were spent were not queued: give them back. */
void
outbox_consent_unqueue(struct message *msgs, const size_t *pos, size_t n,
    const struct outbox_consent *oc)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (oc[i].on)
			consent_give_back(msgs[pos[i]].appid, oc[i].openid,
			    oc[i].template_id, oc[i].scene, oc[i].tag);
	}
}

/*
 * A queued message of appid reached its final state (enum outbox_state;
 * errcode WeChat's, uncertain: an attempt may have reached WeChat).
 * Delivered: spent. 43101: spent (one matching is spent if it held none).
 * Otherwise it never reached WeChat, or was refused: given back, unless an
 * attempt went unanswered, since a second delivery is the worse error.
 */
void
outbox_consent_final(const char *appid, const struct outbox_consent *oc,
    int state, long errcode, int uncertain)
{
	if (oc == NULL || !oc->on || state == OUTBOX_DELIVERED)
		return;
	if (state == OUTBOX_FAILED && errcode == 43101)
		consent_used_up(appid, oc->openid, oc->template_id, oc->scene,
		    oc->tag);
	else if (!uncertain)
		consent_give_back(appid, oc->openid, oc->template_id,
		    oc->scene, oc->tag);
}

/* One row not yet final holds its consent. */
static void
outbox_consent_hold_cb(const char *appid, const struct outbox_consent *oc)
{
	consent_hold(appid, oc->openid, oc->template_id, oc->scene, oc->tag);
}

/* At start, after consent_init: the held consents are spent again. */
int
outbox_consent_init(void)
{
	return (outbox_db_consents(outbox_consent_hold_cb));
}
