/* The daemon's few globals, here rather than beside main() so tests can link them. */
#include "config.h"

#include <event2/event.h>

#include "wxpushd.h"

struct event_base	*wx_base;
struct config		*wx_conf;
time_t			 wx_start_time;
int			 wx_stopping;

/*
 * The loop: three priorities, and after each callback of the bulk one the
 * loop looks at its sockets again (libevent would otherwise run every
 * bulk slice queued, one after the other, before reading anything).
 */
struct event_base *
wx_base_new(void)
{
	struct event_config *cfg;
	struct event_base *base;

	if ((cfg = event_config_new()) == NULL)
		return (NULL);
	if (event_config_set_max_dispatch_interval(cfg, NULL, 1,
	    WX_PRIO_BULK) == -1) {
		event_config_free(cfg);
		return (NULL);
	}
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base != NULL &&
	    event_base_priority_init(base, WX_PRIORITIES) == -1) {
		event_base_free(base);
		return (NULL);
	}
	return (base);
}
