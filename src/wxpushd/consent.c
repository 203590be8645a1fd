/*
 * The consent ledger: signed consent links (the reserved value), the
 * consents users gave on WeChat's page, and their spending by sends. The
 * ledger lives in memory (bounded by consent_max) and is written behind to
 * the store like idem.c; a recorded consent is written at once.
 *
 * reserved: base62 of a packed binary, 8 bytes to 11 characters:
 *   version (1) | expiry (4, big-endian seconds) | nonce (8) |
 *   reference length (1) | reference (0..32) | zeros to a multiple of 8 |
 *   tag (16: HMAC-SHA256 truncated).
 * The tag covers a domain string, appid, template_id, scene and every byte
 * before it, so any change to either side of the redirect is refused. At
 * most 64 bytes: 88 characters, under WeChat's 128.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "wxpushd.h"

#define CONSENT_VERSION		1
#define CONSENT_HEAD		14	/* version, expiry, nonce, ref length */
#define CONSENT_TAG_LEN		16	/* 128 bits of HMAC-SHA256 */
#define CONSENT_PACKED_MAX	64
#define CONSENT_CHUNK		8	/* bytes per base62 chunk */
#define CONSENT_CHUNK_CHARS	11	/* 62^11 > 2^64 */
#define CONSENT_DOMAIN		"wxpushd-consent-v1"
#define CONSENT_BUCKETS		4096
#define CONSENT_FLUSH_MS	200	/* write-behind delay */
#define CONSENT_FLUSH_RETRY	5	/* seconds, after a failed write */
#define CONSENT_EXPIRE_EVERY	60	/* seconds between expiry sweeps */

static const char consent_digits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* One consent of the ledger. */
struct consent {
	struct store_consent	 row;
	enum consent_state	 state;
	int			 dirty;
	uint32_t		 hash;
	TAILQ_ENTRY(consent)	 bucket;
	TAILQ_ENTRY(consent)	 age;	/* oldest first */
	TAILQ_ENTRY(consent)	 dirty_entry;
};
TAILQ_HEAD(consent_list, consent);

static struct consent_list	 consent_buckets[CONSENT_BUCKETS];
static struct consent_list	 consent_age = TAILQ_HEAD_INITIALIZER(consent_age);
static struct consent_list	 consent_dirty =
    TAILQ_HEAD_INITIALIZER(consent_dirty);
static size_t			 consent_n;
static struct event		*consent_flush_ev;
static struct event		*consent_expire_ev;
static const char *consent_state_names[] = {
	[CONSENT_GRANTED] = "granted",
	[CONSENT_REFUSED] = "refused",
	[CONSENT_SPENT] = "spent",
};

/* The name of a state, as stored and shown. */
const char *
consent_state_name(enum consent_state st)
{
	return (consent_state_names[st]);
}

/* The tag of a packed link: HMAC-SHA256 over what it binds, truncated. */
static int
consent_mac(const char *key, const char *appid, const char *template_id,
    int scene, const unsigned char *packed, size_t len,
    unsigned char tag[CONSENT_TAG_LEN])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned char	 msg[sizeof CONSENT_DOMAIN + WX_APPID_MAX +
			    CONSENT_ID_MAX + 16 + CONSENT_PACKED_MAX];
	unsigned int	 mdlen = 0;
	int		 n;

	/* Each string with its NUL, so no two inputs run together. */
	n = snprintf((char *)msg, sizeof msg, "%s%c%s%c%s%c%d%c",
	    CONSENT_DOMAIN, 0, appid, 0, template_id, 0, scene, 0);
	if (n < 0 || (size_t)n + len > sizeof msg)
		return (-1);
	memcpy(msg + n, packed, len);
	if (HMAC(EVP_sha256(), key, (int)strlen(key), msg, (size_t)n + len, md,
	    &mdlen) == NULL || mdlen < CONSENT_TAG_LEN)
		return (-1);
	memcpy(tag, md, CONSENT_TAG_LEN);
	OPENSSL_cleanse(md, sizeof md);
	return (0);
}

/* Write len (a multiple of 8) bytes as base62 into out (NUL-terminated). */
static void
consent_base62(const unsigned char *in, size_t len, char *out)
{
	uint64_t	v;
	size_t		i, j;
	int		k;

	for (i = 0; i < len; i += CONSENT_CHUNK) {
		v = 0;
		for (j = 0; j < CONSENT_CHUNK; j++)
			v = (v << 8) | in[i + j];
		for (k = CONSENT_CHUNK_CHARS - 1; k >= 0; k--) {
			out[k] = consent_digits[v % 62];
			v /= 62;
		}
		out += CONSENT_CHUNK_CHARS;
	}
	*out = '\0';
}

/* Read base62 back into out; the byte count, or -1 if it is not ours. */
static int
consent_unbase62(const char *s, size_t n, unsigned char *out, size_t outlen)
{
	const char	*p;
	uint64_t	 v;
	size_t		 i, j, len = 0;
	unsigned	 d;

	if (n == 0 || n % CONSENT_CHUNK_CHARS != 0 ||
	    n / CONSENT_CHUNK_CHARS * CONSENT_CHUNK > outlen)
		return (-1);
	for (i = 0; i < n; i += CONSENT_CHUNK_CHARS) {
		v = 0;
		for (j = 0; j < CONSENT_CHUNK_CHARS; j++) {
			if (s[i + j] == '\0' ||
			    (p = strchr(consent_digits, s[i + j])) == NULL)
				return (-1);
			d = (unsigned)(p - consent_digits);
			if (v > (UINT64_MAX - d) / 62)
				return (-1);	/* over 64 bits */
			v = v * 62 + d;
		}
		for (j = CONSENT_CHUNK; j > 0; j--) {
			out[len + j - 1] = v & 0xff;
			v >>= 8;
		}
		len += CONSENT_CHUNK;
	}
	return ((int)len);
}

/*
 * Sign a consent link for appid, template_id and scene, valid until
 * expires, with an optional reference (NULL or 1..CONSENT_REF_MAX bytes of
 * [A-Za-z0-9_-]); reserved gets CONSENT_RESERVED_MAX + 1 bytes. 0 or -1.
 */
int
consent_sign(const char *key, const char *appid, const char *template_id,
    int scene, time_t expires, const char *ref, char *reserved)
{
	unsigned char	 packed[CONSENT_PACKED_MAX];
	size_t		 reflen = ref != NULL ? strlen(ref) : 0, len;
	uint32_t	 e = (uint32_t)expires;

	if (reflen > CONSENT_REF_MAX || expires <= 0 ||
	    (uint64_t)expires > UINT32_MAX)
		return (-1);
	memset(packed, 0, sizeof packed);
	packed[0] = CONSENT_VERSION;
	packed[1] = e >> 24;
	packed[2] = e >> 16;
	packed[3] = e >> 8;
	packed[4] = e;
	if (RAND_bytes(packed + 5, 8) != 1)
		return (-1);
	packed[13] = (unsigned char)reflen;
	if (reflen != 0)
		memcpy(packed + CONSENT_HEAD, ref, reflen);
	len = CONSENT_HEAD + reflen + CONSENT_TAG_LEN;
	len = (len + CONSENT_CHUNK - 1) / CONSENT_CHUNK * CONSENT_CHUNK;
	if (consent_mac(key, appid, template_id, scene, packed,
	    len - CONSENT_TAG_LEN, packed + len - CONSENT_TAG_LEN) != 0)
		return (-1);
	consent_base62(packed, len, reserved);
	return (0);
}

/*
 * Check a reserved value against appid, template_id and scene at now. 0 and
 * the link's tag (hex) and reference, or -1 and why (a static string).
 */
int
consent_verify(const char *key, const char *appid, const char *template_id,
    int scene, const char *reserved, size_t n, time_t now, char *taghex,
    char *ref, const char **why)
{
	unsigned char	 packed[CONSENT_PACKED_MAX], tag[CONSENT_TAG_LEN];
	size_t		 reflen, i;
	uint32_t	 e;
	int		 len;

	*why = "reserved is not a link signed here";
	if (n > CONSENT_RESERVED_MAX ||
	    (len = consent_unbase62(reserved, n, packed, sizeof packed)) <
	    CONSENT_HEAD + CONSENT_TAG_LEN || packed[0] != CONSENT_VERSION)
		return (-1);
	reflen = packed[13];
	if (reflen > CONSENT_REF_MAX ||
	    CONSENT_HEAD + reflen + CONSENT_TAG_LEN > (size_t)len)
		return (-1);
	if (consent_mac(key, appid, template_id, scene, packed,
	    (size_t)len - CONSENT_TAG_LEN, tag) != 0)
		return (-1);
	if (CRYPTO_memcmp(tag, packed + len - CONSENT_TAG_LEN,
	    CONSENT_TAG_LEN) != 0) {
		*why = "reserved does not match this appid, template_id and "
		    "scene, or was not signed here";
		return (-1);
	}
	/* Signed by us: the padding is ours too, but check it anyway. */
	for (i = CONSENT_HEAD + reflen; i < (size_t)len - CONSENT_TAG_LEN; i++)
		if (packed[i] != 0)
			return (-1);
	e = (uint32_t)packed[1] << 24 | (uint32_t)packed[2] << 16 |
	    (uint32_t)packed[3] << 8 | packed[4];
	if ((time_t)e < now) {
		*why = "the consent link has expired";
		return (-1);
	}
	for (i = 0; i < CONSENT_TAG_LEN; i++)
		snprintf(taghex + 2 * i, 3, "%02x", tag[i]);
	memcpy(ref, packed + CONSENT_HEAD, reflen);
	ref[reflen] = '\0';
	return (0);
}

/* FNV-1a over what a send matches on: appid, openid, template_id, scene. */
static uint32_t
consent_hash(const char *appid, const char *openid, const char *template_id,
    int scene)
{
	const char	*parts[3] = { appid, openid, template_id };
	uint32_t	 h = 2166136261u;
	size_t		 i;
	const char	*p;

	for (i = 0; i < 3; i++) {
		for (p = parts[i]; *p != '\0'; p++)
			h = (h ^ (unsigned char)*p) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	h = (h ^ (uint32_t)scene) * 16777619u;
	return (h);
}

/* Does c belong to appid, openid, template_id, scene? */
static int
consent_matches(const struct consent *c, const char *appid,
    const char *openid, const char *template_id, int scene)
{
	return (c->row.scene == scene && strcmp(c->row.appid, appid) == 0 &&
	    strcmp(c->row.openid, openid) == 0 &&
	    strcmp(c->row.template_id, template_id) == 0);
}

/* Queue c for the next write-behind. */
static void
consent_mark_dirty(struct consent *c)
{
	struct timeval	tv = { 0, CONSENT_FLUSH_MS * 1000 };

	if (!c->dirty) {
		c->dirty = 1;
		TAILQ_INSERT_TAIL(&consent_dirty, c, dirty_entry);
	}
	if (consent_flush_ev != NULL && !evtimer_pending(consent_flush_ev, NULL))
		evtimer_add(consent_flush_ev, &tv);
}

/* Take c out of memory (not the store). */
static void
consent_remove(struct consent *c)
{
	TAILQ_REMOVE(&consent_buckets[c->hash % CONSENT_BUCKETS], c, bucket);
	TAILQ_REMOVE(&consent_age, c, age);
	if (c->dirty)
		TAILQ_REMOVE(&consent_dirty, c, dirty_entry);
	consent_n--;
	explicit_bzero(c, sizeof *c);
	free(c);
}

/* Put a row in memory; NULL if consent_max are held. */
static struct consent *
consent_insert(const struct store_consent *row, enum consent_state st)
{
	struct consent	*c;

	if (consent_n >= (size_t)wx_conf->consent_max)
		return (NULL);
	c = xcalloc(1, sizeof *c);
	c->row = *row;
	c->state = st;
	snprintf(c->row.state, sizeof c->row.state, "%s",
	    consent_state_name(st));
	c->hash = consent_hash(row->appid, row->openid, row->template_id,
	    row->scene);
	TAILQ_INSERT_TAIL(&consent_buckets[c->hash % CONSENT_BUCKETS], c,
	    bucket);
	TAILQ_INSERT_TAIL(&consent_age, c, age);
	consent_n++;
	return (c);
}

/* Set c's state and queue the change for the store. */
static void
consent_set(struct consent *c, enum consent_state st)
{
	c->state = st;
	snprintf(c->row.state, sizeof c->row.state, "%s",
	    consent_state_name(st));
	c->row.spent_at = st == CONSENT_SPENT ? clock_now() : 0;
	consent_mark_dirty(c);
}

/* The consent of a link tag for a user, or NULL. */
static struct consent *
consent_find_tag(const char *appid, const char *openid,
    const char *template_id, int scene, const char *tag)
{
	struct consent	*c;
	uint32_t	 h = consent_hash(appid, openid, template_id, scene);

	TAILQ_FOREACH(c, &consent_buckets[h % CONSENT_BUCKETS], bucket) {
		if (c->hash == h && consent_matches(c, appid, openid,
		    template_id, scene) && strcmp(c->row.tag, tag) == 0)
			return (c);
	}
	return (NULL);
}

/*
 * Record a verified answer of the consent page (*granted: confirm or
 * cancel), at once in the store. 1 recorded, 0 already recorded (a reload:
 * *granted then says what the ledger holds), -1 and a static *why (the
 * ledger is full, the store failed). A link's answers after the first change
 * nothing, except a confirm after a cancel: WeChat then holds a consent, so
 * the ledger does too.
 */
int
consent_record(const char *appid, const char *openid, const char *template_id,
    int scene, const char *tag, const char *ref, int *granted,
    const char **why)
{
	struct store_consent	 row;
	struct consent		*c;

	if ((c = consent_find_tag(appid, openid, template_id, scene,
	    tag)) != NULL) {
		if (c->state != CONSENT_REFUSED || !*granted) {
			*granted = c->state != CONSENT_REFUSED;
			return (0);
		}
		c->state = CONSENT_GRANTED;
		snprintf(c->row.state, sizeof c->row.state, "%s",
		    consent_state_name(CONSENT_GRANTED));
		if (store_consent_put(&c->row) != 0) {
			consent_mark_dirty(c);	/* retried behind */
			*why = "the consent could not be stored";
			return (-1);
		}
		return (1);
	}
	memset(&row, 0, sizeof row);
	snprintf(row.appid, sizeof row.appid, "%s", appid);
	snprintf(row.openid, sizeof row.openid, "%s", openid);
	snprintf(row.template_id, sizeof row.template_id, "%s", template_id);
	snprintf(row.tag, sizeof row.tag, "%s", tag);
	snprintf(row.reference, sizeof row.reference, "%s", ref);
	row.scene = scene;
	row.recorded_at = clock_now();
	if ((c = consent_insert(&row, *granted ? CONSENT_GRANTED :
	    CONSENT_REFUSED)) == NULL) {
		*why = "the consent ledger is full (consent_max)";
		return (-1);
	}
	if (store_consent_put(&c->row) != 0) {
		consent_remove(c);
		*why = "the consent could not be stored";
		return (-1);
	}
	return (1);
}

/* Is a consent required for sends as c (its account or component says so)? */
int
consent_required(const struct cred *c)
{
	const struct account_conf	*a;
	const struct component_conf	*k;
	const char			*parent;

	if (cred_kind(c) == CRED_OFFICIAL) {
		a = config_find_account(wx_conf, cred_appid(c));
		return (a != NULL && a->consent_required);
	}
	if (cred_kind(c) == CRED_AUTHORIZER &&
	    (parent = authorizer_component_appid(c)) != NULL) {
		k = config_find_component(wx_conf, parent);
		return (k != NULL && k->consent_required);
	}
	return (0);
}

/*
 * Spend the oldest unspent consent of (appid, openid, template_id, scene),
 * in memory: 1 and its tag in tag (CONSENT_TAG_HEX + 1 bytes), or 0 if
 * none. The store hears of it within CONSENT_FLUSH_MS.
 */
int
consent_spend(const char *appid, const char *openid, const char *template_id,
    int scene, char *tag)
{
	struct consent	*c;
	uint32_t	 h = consent_hash(appid, openid, template_id, scene);

	*tag = '\0';
	TAILQ_FOREACH(c, &consent_buckets[h % CONSENT_BUCKETS], bucket) {
		if (c->hash == h && c->state == CONSENT_GRANTED &&
		    consent_matches(c, appid, openid, template_id, scene)) {
			consent_set(c, CONSENT_SPENT);
			snprintf(tag, CONSENT_TAG_HEX + 1, "%s", c->row.tag);
			return (1);
		}
	}
	return (0);
}

/* A send that spent tag never reached WeChat: the consent is unspent again. */
void
consent_give_back(const char *appid, const char *openid,
    const char *template_id, int scene, const char *tag)
{
	struct consent	*c;

	if (*tag == '\0')
		return;
	c = consent_find_tag(appid, openid, template_id, scene, tag);
	if (c != NULL && c->state == CONSENT_SPENT)
		consent_set(c, CONSENT_GRANTED);
}

/*
 * WeChat said 43101 (no unused consent): the consent the send spent stays
 * spent; if it spent none, the oldest matching one is spent now.
 */
void
consent_used_up(const char *appid, const char *openid,
    const char *template_id, int scene, const char *tag)
{
	char	 t[CONSENT_TAG_HEX + 1];

	if (*tag == '\0')
		(void)consent_spend(appid, openid, template_id, scene, t);
}

/*
 * A queued message holds the consent of tag (its outbox row says so, at
 * start): spent, whatever the store said; a crash within the write-behind
 * left it granted there.
 */
void
consent_hold(const char *appid, const char *openid, const char *template_id,
    int scene, const char *tag)
{
	struct consent	*c;

	if (*tag == '\0')
		return;
	c = consent_find_tag(appid, openid, template_id, scene, tag);
	if (c != NULL && c->state == CONSENT_GRANTED)
		consent_set(c, CONSENT_SPENT);
}

/* Visit appid's consents (of openid, template_id if not NULL), oldest first. */
void
consent_foreach(const char *appid, const char *openid,
    const char *template_id, void (*cb)(const struct store_consent *, void *),
    void *arg)
{
	struct consent	*c;

	TAILQ_FOREACH(c, &consent_age, age) {
		if (strcmp(c->row.appid, appid) != 0 ||
		    (openid != NULL && strcmp(c->row.openid, openid) != 0) ||
		    (template_id != NULL &&
		    strcmp(c->row.template_id, template_id) != 0))
			continue;
		cb(&c->row, arg);
	}
}

/* Delete everything about one user of appid, memory and store; count or -1. */
int
consent_forget(const char *appid, const char *openid)
{
	struct consent	*c, *next;
	int		 n = 0;

	TAILQ_FOREACH_SAFE(c, &consent_age, age, next) {
		if (strcmp(c->row.appid, appid) == 0 &&
		    strcmp(c->row.openid, openid) == 0) {
			consent_remove(c);
			n++;
		}
	}
	if (store_consent_forget(appid, openid) != 0)
		return (-1);
	return (n);
}

/* Count the consents in memory by state. */
void
consent_counts(uint64_t *counts)
{
	struct consent	*c;

	memset(counts, 0, CONSENT_NSTATES * sizeof counts[0]);
	TAILQ_FOREACH(c, &consent_age, age)
		counts[c->state]++;
}

/* qsort order of consents: appid, template_id, state. */
static int
consent_group_cmp(const void *a, const void *b)
{
	const struct consent	*x = *(struct consent *const *)a;
	const struct consent	*y = *(struct consent *const *)b;
	int			 r;

	if ((r = strcmp(x->row.appid, y->row.appid)) != 0 ||
	    (r = strcmp(x->row.template_id, y->row.template_id)) != 0)
		return (r);
	return ((int)x->state - (int)y->state);
}

/*
 * Per (appid, template_id, state) counts for metrics and stats: cb once per
 * group with its count, in that order. O(n log n) in the consents held.
 */
void
consent_groups(void (*cb)(const char *, const char *, enum consent_state,
    uint64_t, void *), void *arg)
{
	struct consent	**v, *c;
	size_t		  i, j, n = 0;

	if (consent_n == 0)
		return;
	v = xcalloc(consent_n, sizeof *v);
	TAILQ_FOREACH(c, &consent_age, age)
		v[n++] = c;
	qsort(v, n, sizeof *v, consent_group_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && consent_group_cmp(&v[i], &v[j]) == 0;
		    j++)
			;
		cb(v[i]->row.appid, v[i]->row.template_id, v[i]->state,
		    (uint64_t)(j - i), arg);
	}
	free(v);
}

/* Write the changed consents in one batch (kept dirty if it fails). */
void
consent_flush(void)
{
	struct consent	*c;
	int		 ok = 1;

	if (TAILQ_EMPTY(&consent_dirty) || store_batch_begin() == -1)
		return;
	TAILQ_FOREACH(c, &consent_dirty, dirty_entry) {
		if (store_consent_put(&c->row) != 0) {
			ok = 0;
			break;
		}
	}
	if (store_batch_end(ok) != 0)
		return;
	while ((c = TAILQ_FIRST(&consent_dirty)) != NULL) {
		TAILQ_REMOVE(&consent_dirty, c, dirty_entry);
		c->dirty = 0;
	}
}

/* The write-behind timer: flush, and again later if it failed. */
static void
consent_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	tv = { CONSENT_FLUSH_RETRY, 0 };

	(void)fd;
	(void)events;
	(void)arg;
	consent_flush();
	if (!TAILQ_EMPTY(&consent_dirty))
		evtimer_add(consent_flush_ev, &tv);
}

/* Drop consents older than consent_ttl, from memory and the store. */
void
consent_expire(void)
{
	struct consent	*c;
	time_t		 before = clock_now() - wx_conf->consent_ttl;

	while ((c = TAILQ_FIRST(&consent_age)) != NULL &&
	    c->row.recorded_at <= before)
		consent_remove(c);
	if (store_batch_begin() == 0)
		store_batch_end(store_consent_expire(before) == 0);
}

/* The expiry timer. */
static void
consent_expire_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	tv = { CONSENT_EXPIRE_EVERY, 0 };

	(void)fd;
	(void)events;
	(void)arg;
	consent_expire();
	evtimer_add(consent_expire_ev, &tv);
}

/* One stored consent back into memory. */
static int
consent_load_cb(const struct store_consent *row, void *arg)
{
	enum consent_state	st;

	(void)arg;
	if (strcmp(row->state, "granted") == 0)
		st = CONSENT_GRANTED;
	else if (strcmp(row->state, "refused") == 0)
		st = CONSENT_REFUSED;
	else if (strcmp(row->state, "spent") == 0)
		st = CONSENT_SPENT;
	else
		return (0);
	if (consent_insert(row, st) == NULL) {
		log_warnx("consent: more stored consents than consent_max "
		    "(%d): the newest stay on disk only", wx_conf->consent_max);
		return (1);
	}
	return (0);
}

/* Load the ledger and start its timers; 0 or -1. */
int
consent_init(void)
{
	struct timeval	tv = { CONSENT_EXPIRE_EVERY, 0 };
	size_t		i;

	for (i = 0; i < CONSENT_BUCKETS; i++)
		TAILQ_INIT(&consent_buckets[i]);
	if (store_consent_foreach(clock_now() - wx_conf->consent_ttl,
	    consent_load_cb, NULL) == -1)
		return (-1);
	consent_flush_ev = evtimer_new(wx_base, consent_flush_cb, NULL);
	consent_expire_ev = evtimer_new(wx_base, consent_expire_cb, NULL);
	evtimer_add(consent_expire_ev, &tv);
	return (0);
}

/* Write what is pending and free the ledger. */
void
consent_shutdown(void)
{
	struct consent	*c;

	consent_flush();
	if (consent_flush_ev != NULL)
		event_free(consent_flush_ev);
	if (consent_expire_ev != NULL)
		event_free(consent_expire_ev);
	consent_flush_ev = consent_expire_ev = NULL;
	while ((c = TAILQ_FIRST(&consent_age)) != NULL)
		consent_remove(c);
}

/* How many consents are in memory. */
size_t
consent_count(void)
{
	return (consent_n);
}
