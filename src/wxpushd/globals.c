/* The daemon's few globals, here rather than beside main() so tests can link them. */
#include "config.h"

#include "wxpushd.h"

struct event_base	*wx_base;
struct config		*wx_conf;
time_t			 wx_start_time;
int			 wx_stopping;
