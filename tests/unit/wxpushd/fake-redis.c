/*
 * A fake redis.c for unit tests: always connected, commands counted rather
 * than sent, and answered when the test says (fake_redis_answer), so that a
 * test sees how many a writer keeps unanswered. Linked before the library,
 * it replaces redis.c.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include "wxpushd.h"
#include "fake-redis.h"

const struct redis_handlers	*fake_redis_handlers;
int				 fake_redis_pending;	/* unanswered */
int				 fake_redis_max;	/* most ever unanswered */
long				 fake_redis_puts;	/* authorizer puts */

void
redis_init(const struct config *conf)
{
	(void)conf;
}

void
redis_shutdown(void)
{
}

void
redis_set_handlers(const struct redis_handlers *h)
{
	fake_redis_handlers = h;
}

const char *
redis_mode(void)
{
	return ("fake");
}

int
redis_connected(void)
{
	return (1);
}

int
redis_pending_count(void)
{
	return (fake_redis_pending);
}

static void
fake_redis_sent(void)
{
	if (++fake_redis_pending > fake_redis_max)
		fake_redis_max = fake_redis_pending;
}

void
redis_ticket_put(const char *appid, const char *ticket, time_t at)
{
	(void)appid;
	(void)ticket;
	(void)at;
	fake_redis_sent();
}

void
redis_ticket_get(const char *appid)
{
	(void)appid;
	fake_redis_sent();
}

void
redis_authorizer_put(const char *component, const char *appid,
    const char *refresh_token, int revoked, time_t at)
{
	(void)component;
	(void)appid;
	(void)refresh_token;
	(void)revoked;
	(void)at;
	fake_redis_puts++;
	fake_redis_sent();
}

int
redis_authorizer_get(const char *appid)
{
	(void)appid;
	return (-1);	/* as if Redis had none: the list is walked */
}

int
redis_claim(const char *key, const char *val, long ttl_ms, redis_claim_cb cb,
    void *arg)
{
	(void)key;
	(void)val;
	(void)ttl_ms;
	(void)cb;
	(void)arg;
	return (-1);
}

void
redis_settle(const char *key, const char *claim, const char *val, time_t at)
{
	(void)key;
	(void)claim;
	(void)val;
	(void)at;
}

void
redis_unclaim(const char *key, const char *claim)
{
	(void)key;
	(void)claim;
}

/* Redis answers up to n of the commands sent. */
void
fake_redis_answer(int n)
{
	fake_redis_pending -= n < fake_redis_pending ? n : fake_redis_pending;
}
