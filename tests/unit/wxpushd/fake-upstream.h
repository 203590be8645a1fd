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
void			 fake_fail(struct upstream_call *, long, const char *);
void			 fake_daemon(struct config *, time_t, char *, size_t);

#endif
