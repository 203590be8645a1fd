/* fake-upstream.c: upstream.c replaced by a recorder the test answers. */
#ifndef FAKE_UPSTREAM_H
#define FAKE_UPSTREAM_H

struct fake_call {
	char	*method;
	char	*path;
	char	*query;
	char	*body;
};
size_t			 fake_pending(const char *);
struct upstream_call	*fake_first(const char *);
const struct fake_call	*fake_call(const struct upstream_call *);
void			 fake_answer(struct upstream_call *, const char *);
int			 fake_changed(void);
void			 fake_fail(struct upstream_call *, long, const char *);
int			 fake_answer_first(const char *, const char *);
int			 fake_token(const char *);
const char		*fake_body_str(const char *, const char *);
long			 fake_body_int(const char *, const char *);
int			 fake_body_true(const char *, const char *);
int			 fake_query_is(const char *, const char *);
void			 fake_daemon(struct config *, time_t, char *, size_t);
void			 fake_daemon_open(struct config *, time_t,
			    const char *);

#endif
