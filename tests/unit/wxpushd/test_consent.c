/*
 * Unit tests for consent.c: signed links (round trip, every field tampered,
 * every character of reserved changed, expiry, another key, the length
 * bound), the redirect's fields (valid.c), and the ledger (a reload is
 * one consent, spending, giving back, 43101, forgetting, expiry, the
 * write-behind to the store and back).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wxpushd.h"
#include "harness.h"
#include "tap.h"

#define T_APPID	"wx1234567890abcdef"
#define T_KEY	"0123456789abcdef0123456789abcdef"
#define T_TID	"TPL_id-0001"

static char	test_base[] = "/tmp/test_consent.XXXXXX";

/* Verify r for (appid, tid, scene) at now; 0 or -1. */
static int
test_verify(const char *appid, const char *tid, int scene, const char *r,
    time_t now, char *tag, char *ref)
{
	const char	*why;

	return (consent_verify(T_KEY, appid, tid, scene, r, strlen(r), now, tag,
	    ref, &why));
}

/* Count the consents of a state in the ledger. */
static uint64_t
test_count(enum consent_state st)
{
	uint64_t	counts[CONSENT_NSTATES];

	consent_counts(counts);
	return (counts[st]);
}

/* Write each group as "template/state=n;" into the buffer arg. */
static void
test_group(const char *appid, const char *template_id, enum consent_state st,
    uint64_t n, void *arg)
{
	char	*buf = arg;
	size_t	 len = strlen(buf);

	(void)appid;
	snprintf(buf + len, 256 - len, "%s/%s=%llu;", template_id,
	    consent_state_name(st), (unsigned long long)n);
}

int
main(void)
{
	static const char digits[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	char		 r[CONSENT_RESERVED_MAX + 1], r2[CONSENT_RESERVED_MAX + 1];
	char		 tag[CONSENT_TAG_HEX + 1], tag2[CONSENT_TAG_HEX + 1];
	char		 ref[CONSENT_REF_MAX + 1], longref[CONSENT_REF_MAX + 2];
	char		 id[CONSENT_ID_MAX + 1];
	char		*dir, *cause;
	const char	*why;
	int		 yes = 1, no = 0;
	char		 groups[256];
	struct config	 conf;
	time_t		 now = 1800000000;
	size_t		 i, bad;
	int		 all;

	log_init("test_consent", 0, LOG_LEVEL_WARN);
	if (mkdtemp(test_base) == NULL) {
		perror("mkdtemp");
		return (1);
	}

	/* Links: a round trip gives the tag and the reference back. */
	is_int(consent_sign(T_KEY, T_APPID, T_TID, 1000, now + 60, "order-42",
	    r), 0, "sign a link");
	ok(strlen(r) <= CONSENT_RESERVED_MAX && strspn(r, digits) == strlen(r),
	    "reserved is at most 128 of [A-Za-z0-9] (%zu)", strlen(r));
	is_int(test_verify(T_APPID, T_TID, 1000, r, now, tag, ref), 0,
	    "the link verifies");
	is_str(ref, "order-42", "the reference comes back");
	is_int((int)strlen(tag), CONSENT_TAG_HEX, "the tag is hex");
	ok(consent_sign(T_KEY, T_APPID, T_TID, 1000, now + 60, "order-42",
	    r2) == 0 && strcmp(r, r2) != 0, "two links differ (the nonce)");
	is_int(test_verify(T_APPID, T_TID, 1000, r2, now, tag2, ref), 0,
	    "the second verifies");
	is_int(consent_sign(T_KEY, T_APPID, T_TID, 0, now + 60, NULL, r2), 0,
	    "a link without a reference");
	is_int(test_verify(T_APPID, T_TID, 0, r2, now, tag2, ref), 0,
	    "verifies");
	is_str(ref, "", "with an empty reference");
	ok(strcmp(tag, tag2) != 0, "with another tag");

	/* Each signed field changed on the redirect's side. */
	is_int(test_verify("wx1234567890abcdee", T_TID, 1000, r, now, tag, ref),
	    -1, "another appid is refused");
	is_int(test_verify(T_APPID, "TPL_id-0002", 1000, r, now, tag, ref), -1,
	    "another template_id is refused");
	is_int(test_verify(T_APPID, T_TID, 1001, r, now, tag, ref), -1,
	    "another scene is refused");
	ok(consent_verify("another key of thirty-two bytes!", T_APPID, T_TID,
	    1000, r, strlen(r), now, tag, ref, &why) == -1,
	    "another key is refused");

	/* Expiry: valid until the second it names, then refused. */
	is_int(test_verify(T_APPID, T_TID, 1000, r, now + 60, tag, ref), 0,
	    "valid at its expiry");
	all = consent_verify(T_KEY, T_APPID, T_TID, 1000, r, strlen(r),
	    now + 61, tag, ref, &why) == -1;
	ok(all && strstr(why, "expired") != NULL, "expired a second later: %s",
	    why);

	/* Every character of reserved changed: refused. */
	bad = 0;
	for (i = 0; r[i] != '\0'; i++) {
		snprintf(r2, sizeof r2, "%s", r);
		r2[i] = r2[i] == 'a' ? 'b' : 'a';
		if (test_verify(T_APPID, T_TID, 1000, r2, now, tag, ref) == 0)
			bad++;
	}
	is_int((int)bad, 0, "no changed character of reserved verifies");
	snprintf(r2, sizeof r2, "%.*s", (int)strlen(r) - 11, r);
	is_int(test_verify(T_APPID, T_TID, 1000, r2, now, tag, ref), -1,
	    "a shortened reserved is refused");
	snprintf(r2, sizeof r2, "%s00000000000", r);
	is_int(test_verify(T_APPID, T_TID, 1000, r2, now, tag, ref), -1,
	    "a lengthened reserved is refused");
	is_int(test_verify(T_APPID, T_TID, 1000, "zzzzzzzzzzz", now, tag, ref),
	    -1, "a chunk over 64 bits is refused");
	is_int(test_verify(T_APPID, T_TID, 1000, "", now, tag, ref), -1,
	    "an empty reserved is refused");
	is_int(test_verify(T_APPID, T_TID, 1000, "abc-def", now, tag, ref), -1,
	    "a reserved with a - is refused");

	/* The longest reference still fits in 128 characters. */
	memset(longref, 'R', CONSENT_REF_MAX);
	longref[CONSENT_REF_MAX] = '\0';
	all = consent_sign(T_KEY, T_APPID, T_TID, 10000, now + 60, longref,
	    r) == 0;
	ok(all && strlen(r) <= CONSENT_RESERVED_MAX,
	    "a %d-byte reference: %zu characters", CONSENT_REF_MAX, strlen(r));
	is_int(test_verify(T_APPID, T_TID, 10000, r, now, tag, ref), 0,
	    "and verifies");
	is_str(ref, longref, "with its reference");
	longref[CONSENT_REF_MAX] = 'R';
	longref[CONSENT_REF_MAX + 1] = '\0';
	is_int(consent_sign(T_KEY, T_APPID, T_TID, 1, now + 60, longref, r), -1,
	    "a longer reference cannot be signed");

	/* The fields of a redirect, checked by valid.c. */
	memset(id, 'o', sizeof id);
	ok(valid_id(id, CONSENT_ID_MAX, CONSENT_ID_MAX) &&
	    !valid_id(id, CONSENT_ID_MAX + 1, CONSENT_ID_MAX) &&
	    !valid_id("", 0, CONSENT_ID_MAX) &&
	    !valid_id("o.1", 3, CONSENT_ID_MAX) &&
	    valid_id("oUSER_open-id9", 14, CONSENT_ID_MAX),
	    "an openid is 1..128 of A-Z a-z 0-9 _ -");
	ok(valid_scene("0", 1) == 0 && valid_scene("10000", 5) == 10000 &&
	    valid_scene("10001", 5) == -1 && valid_scene("000001", 6) == -1 &&
	    valid_scene("", 0) == -1 && valid_scene("1a", 2) == -1 &&
	    valid_scene("-1", 2) == -1, "a scene is digits of 0..10000");

	/* The ledger, on a store. */
	memset(&conf, 0, sizeof conf);
	conf.consent_ttl = 30 * 86400;
	conf.consent_max = 4;
	TAILQ_INIT(&conf.accounts);
	TAILQ_INIT(&conf.components);
	wx_conf = &conf;
	clock_set(now);
	xasprintf(&dir, "%s/state", test_base);
	wx_base = event_base_new();
	if (store_open(dir, &cause) != 0) {
		printf("Bail out! store_open: %s\n", cause);
		return (1);
	}
	is_int(consent_init(), 0, "consent_init on an empty store");
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000001", "", &yes, &why), 1,
	    "a consent is recorded");
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000001", "", &yes, &why), 0,
	    "the same redirect again (a reload) records nothing");
	is_int((int)consent_count(), 1, "one consent held");
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000002", "", &no, &why), 1,
	    "a cancel is recorded");
	is_int((int)test_count(CONSENT_REFUSED), 1, "as refused");
	no = 0;
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000001", "", &no, &why), 0,
	    "a cancel of a confirmed link changes nothing");
	is_int(no, 1, "and says it is granted");
	is_int((int)test_count(CONSENT_GRANTED), 1, "one granted");
	yes = 1;
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000002", "", &yes, &why), 1,
	    "a confirm of a cancelled link grants it");
	is_int((int)test_count(CONSENT_GRANTED), 2, "two granted");
	no = 0;
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000002", "", &no, &why), 0,
	    "and a cancel again changes nothing");
	is_int(consent_spend(T_APPID, "openid-1", T_TID, 1000, tag), 1,
	    "spend the second");
	is_str(tag, "00000000000000000000000000000001", "the oldest first");
	consent_give_back(T_APPID, "openid-1", T_TID, 1000, tag);
	consent_forget(T_APPID, "openid-1");
	no = 0;
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000001", "", &yes, &why), 1,
	    "recorded again after forget");
	is_int(consent_record(T_APPID, "openid-1", T_TID, 1000,
	    "00000000000000000000000000000002", "", &no, &why), 1,
	    "and its cancel");

	/* Spending: one consent, once; a refusal is never spent. */
	is_int(consent_spend(T_APPID, "openid-1", T_TID, 1000, tag), 1,
	    "a send spends the consent");
	is_str(tag, "00000000000000000000000000000001", "the granted one");
	is_int(consent_spend(T_APPID, "openid-1", T_TID, 1000, tag2), 0,
	    "a second send finds none");
	is_int(consent_spend(T_APPID, "openid-1", T_TID, 1001, tag2), 0,
	    "another scene finds none");
	is_int(consent_spend(T_APPID, "openid-2", T_TID, 1000, tag2), 0,
	    "another user finds none");
	consent_give_back(T_APPID, "openid-1", T_TID, 1000, tag);
	is_int((int)test_count(CONSENT_GRANTED), 1, "given back: granted again");
	is_int(consent_spend(T_APPID, "openid-1", T_TID, 1000, tag), 1,
	    "and spendable");

	/* 43101 without a spent consent spends a matching one. */
	is_int(consent_record(T_APPID, "openid-3", T_TID, 7,
	    "00000000000000000000000000000003", "ref", &yes, &why), 1,
	    "another user's consent");
	consent_used_up(T_APPID, "openid-3", T_TID, 7, "");
	is_int(consent_spend(T_APPID, "openid-3", T_TID, 7, tag2), 0,
	    "43101 marked it spent");

	/* Bounded: consent_max consents in memory. */
	is_int(consent_record(T_APPID, "openid-4", T_TID, 7,
	    "00000000000000000000000000000004", "", &yes, &why), 1,
	    "the fourth consent");
	all = consent_record(T_APPID, "openid-5", T_TID, 7,
	    "00000000000000000000000000000005", "", &yes, &why) == -1;
	ok(all && strstr(why, "consent_max") != NULL, "the fifth: %s", why);

	/* Write-behind: the spends reach the store and come back. */
	consent_shutdown();
	is_int(consent_init(), 0, "consent_init again");
	is_int((int)consent_count(), 4, "four consents loaded");
	is_int((int)test_count(CONSENT_SPENT), 2, "two spent");
	is_int((int)test_count(CONSENT_REFUSED), 1, "one refused");
	groups[0] = '\0';
	consent_groups(test_group, groups);
	is_str(groups, "TPL_id-0001/granted=1;TPL_id-0001/refused=1;"
	    "TPL_id-0001/spent=2;", "groups by template and state, counted");
	is_int(consent_spend(T_APPID, "openid-4", T_TID, 7, tag2), 1,
	    "the unspent one is spendable");

	/* Forget one user: memory and store. */
	is_int(consent_forget(T_APPID, "openid-1"), 2, "forget: two deleted");
	consent_shutdown();
	is_int(consent_init(), 0, "consent_init again");
	is_int((int)consent_count(), 2, "the others stay");
	all = 1;
	for (i = 0; i < 2; i++)
		all &= consent_spend(T_APPID, "openid-1", T_TID, 1000, tag2) == 0;
	ok(all, "nothing of the forgotten user");

	/* Expiry: after consent_ttl, gone from memory and the store. */
	clock_set(now + conf.consent_ttl + 1);
	consent_expire();
	is_int((int)consent_count(), 0, "expired consents are dropped");
	consent_shutdown();
	clock_set(now);
	is_int(consent_init(), 0, "consent_init again");
	is_int((int)consent_count(), 0, "and deleted from the store");
	consent_shutdown();

	store_close();
	event_base_free(wx_base);
	free(dir);
	harness_rmtree(test_base);
	return (tap_done());
}
