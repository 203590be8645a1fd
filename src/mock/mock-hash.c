/*
 * A string-keyed hash table with chaining, for O(1) token, account and code
 * lookups. Keys are not copied: each key lives inside the value it maps to.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

#define MOCK_HASH_MIN	1024

struct mock_hash_entry {
	struct mock_hash_entry	*next;
	uint64_t		 hash;
	const char		*key;
	void			*value;
};

struct mock_hash {
	struct mock_hash_entry	**buckets;
	size_t			  nbuckets;	/* a power of two */
	size_t			  count;
	uint64_t		  seed;
};

/* FNV-1a with a random seed, then a final mix so the low bits spread. */
static uint64_t
mock_hash_key(struct mock_hash *h, const char *key)
{
	const unsigned char *p;
	uint64_t v = h->seed ^ 0xcbf29ce484222325ULL;

	for (p = (const unsigned char *)key; *p != '\0'; p++) {
		v ^= *p;
		v *= 0x100000001b3ULL;
	}
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdULL;
	v ^= v >> 33;
	v *= 0xc4ceb9fe1a85ec53ULL;
	v ^= v >> 33;
	return (v);
}

/* Create an empty table. */
struct mock_hash *
mock_hash_new(void)
{
	struct mock_hash *h;

	h = xcalloc(1, sizeof *h);
	h->nbuckets = MOCK_HASH_MIN;
	h->buckets = xcalloc(h->nbuckets, sizeof *h->buckets);
	if (RAND_bytes((unsigned char *)&h->seed, sizeof h->seed) != 1)
		fatalx("RAND_bytes failed");
	return (h);
}

/* Free the table and its entries; the values are the caller's. */
void
mock_hash_free(struct mock_hash *h)
{
	struct mock_hash_entry *e, *next;
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->nbuckets; i++) {
		for (e = h->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(h->buckets);
	free(h);
}

/* Double the bucket array once the load passes one entry per bucket. */
static void
mock_hash_grow(struct mock_hash *h)
{
	struct mock_hash_entry **nb, *e, *next;
	size_t i, n = h->nbuckets * 2;

	nb = xcalloc(n, sizeof *nb);
	for (i = 0; i < h->nbuckets; i++) {
		for (e = h->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(h->buckets);
	h->buckets = nb;
	h->nbuckets = n;
}

/* The value stored under key, or NULL. */
void *
mock_hash_find(struct mock_hash *h, const char *key)
{
	struct mock_hash_entry *e;
	uint64_t v = mock_hash_key(h, key);

	for (e = h->buckets[v & (h->nbuckets - 1)]; e != NULL; e = e->next) {
		if (e->hash == v && strcmp(e->key, key) == 0)
			return (e->value);
	}
	return (NULL);
}

/* Store value under key, which must not be present yet. */
void
mock_hash_insert(struct mock_hash *h, const char *key, void *value)
{
	struct mock_hash_entry *e;
	size_t b;

	if (h->count >= h->nbuckets)
		mock_hash_grow(h);
	e = xmalloc(sizeof *e);
	e->hash = mock_hash_key(h, key);
	e->key = key;
	e->value = value;
	b = e->hash & (h->nbuckets - 1);
	e->next = h->buckets[b];
	h->buckets[b] = e;
	h->count++;
}

/* Remove key; returns its value, or NULL if it was not there. */
void *
mock_hash_remove(struct mock_hash *h, const char *key)
{
	struct mock_hash_entry **ep, *e;
	uint64_t v = mock_hash_key(h, key);
	void *value;

	for (ep = &h->buckets[v & (h->nbuckets - 1)]; (e = *ep) != NULL;
	    ep = &e->next) {
		if (e->hash == v && strcmp(e->key, key) == 0) {
			*ep = e->next;
			value = e->value;
			free(e);
			h->count--;
			return (value);
		}
	}
	return (NULL);
}

/* How many entries the table holds. */
size_t
mock_hash_count(struct mock_hash *h)
{
	return (h->count);
}

/* Call cb on every value; cb must not add or remove entries. */
void
mock_hash_foreach(struct mock_hash *h, void (*cb)(void *, void *), void *arg)
{
	struct mock_hash_entry *e, *next;
	size_t i;

	for (i = 0; i < h->nbuckets; i++) {
		for (e = h->buckets[i]; e != NULL; e = next) {
			next = e->next;
			cb(e->value, arg);
		}
	}
}
