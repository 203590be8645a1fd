/* harness.c: what the daemon's unit tests do the same way. */
#ifndef HARNESS_H
#define HARNESS_H

typedef void	(*harness_method)(struct request *, const msgpack_object *);

void		 harness_store_open(const char *);
void		 harness_rmtree(const char *);
void		 harness_client(struct client *, struct event_base *);
void		 harness_request(struct client *, harness_method,
		    msgpack_sbuffer *);
void		 harness_pack_subscribe(msgpack_packer *, const char *,
		    const char *, const char *, int, const char *);
void		 harness_subscribe(struct client *, harness_method,
		    const char *, const char *, const char *, int);
int		 harness_reply(struct client *, char *, size_t);
int		 harness_run_until(int (*)(void), int);
void		 harness_tick(void);
void		 harness_run_for(int);
void		 harness_account(struct config *, struct account_conf *,
		    const char *);
void		 harness_consent_core(struct config *, struct account_conf *,
		    struct client *, const char *);
void		 harness_component(struct config *, struct component_conf *,
		    const char *, time_t);
void		 harness_authorizer(const char *, const char *, const char *,
		    int, time_t, time_t);
const char	*harness_stored_rt(const char *, int *);
void		 harness_consent_state(const char *, const char *, const char *,
		    char *);
int		 harness_child(void (*)(void *, int), void *, void *, size_t);

#endif
