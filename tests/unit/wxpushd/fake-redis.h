/* fake-redis.c: redis.c replaced by counters (see there). */
#ifndef WX_FAKE_REDIS_H
#define WX_FAKE_REDIS_H

extern const struct redis_handlers	*fake_redis_handlers;
extern int				 fake_redis_pending;
extern int				 fake_redis_max;
extern long				 fake_redis_puts;
void	fake_redis_answer(int);

#endif
