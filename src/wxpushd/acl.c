/* Access control: allow rules, and the kernel's credentials of a peer. */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wxpushd.h"

#define ACL_LOOKUP_BUF_MAX	(1024 * 1024)	/* getpwnam_r buffer cap */
#define ACL_ID_DIGITS_MAX	10		/* 4294967294 */
#define PEER_GROUPS_FIRST	64		/* most peers have fewer */
#define PEER_GROUPS_MAX		65536		/* NGROUPS_MAX on Linux */

/* Look up a user or group name: 1 and *id if found, 0 if not, -1 on error. */
static int
acl_lookup(enum acl_kind kind, const char *name, uint32_t *id)
{
	struct passwd	 pw, *pwp = NULL;
	struct group	 gr, *grp = NULL;
	char		*buf;
	size_t		 len;
	long		 n;
	int		 error, found;

	n = sysconf(kind == ACL_UID ? _SC_GETPW_R_SIZE_MAX :
	    _SC_GETGR_R_SIZE_MAX);
	len = (n > 0 && n < ACL_LOOKUP_BUF_MAX) ? (size_t)n : 4096;
	for (;;) {
		buf = xmalloc(len);
		if (kind == ACL_UID) {
			error = getpwnam_r(name, &pw, buf, len, &pwp);
			found = (error == 0 && pwp != NULL);
			if (found)
				*id = pwp->pw_uid;
		} else {
			error = getgrnam_r(name, &gr, buf, len, &grp);
			found = (error == 0 && grp != NULL);
			if (found)
				*id = grp->gr_gid;
		}
		free(buf);
		/* Groups with many members need a bigger buffer. */
		if (error != ERANGE || len >= ACL_LOOKUP_BUF_MAX)
			break;
		len *= 2;
	}
	if (found)
		return (1);
	/* Some NSS modules say "not found" with an errno. */
	if (error == 0 || error == ENOENT || error == ESRCH ||
	    error == EBADF || error == EPERM)
		return (0);
	errno = error;
	return (-1);
}

/* Parse a decimal uid or gid; -1 if it is not one. */
static int
acl_parse_id(const char *s, uint32_t *id)
{
	unsigned long long	 v;
	size_t			 i, len;

	len = strlen(s);
	if (len == 0 || len > ACL_ID_DIGITS_MAX)
		return (-1);
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
	}
	v = strtoull(s, NULL, 10);
	/* (uid_t)-1 means "no id" to the kernel: never a real one. */
	if (v >= UINT32_MAX)
		return (-1);
	*id = (uint32_t)v;
	return (0);
}

/*
 * Parse one allow rule: "user:NAME", "group:NAME", "uid:N" or "gid:N". Names
 * are resolved now, so a typo is an error at load rather than a silent deny.
 * Returns 0, or -1 and an allocated *cause.
 */
int
acl_rule_parse(const char *s, struct acl_rule *rule, char **cause)
{
	const char	*what, *arg;
	int		 r;

	*cause = NULL;
	if (strncmp(s, "user:", 5) == 0) {
		rule->kind = ACL_UID;
		what = "user";
		arg = s + 5;
	} else if (strncmp(s, "group:", 6) == 0) {
		rule->kind = ACL_GID;
		what = "group";
		arg = s + 6;
	} else if (strncmp(s, "uid:", 4) == 0 || strncmp(s, "gid:", 4) == 0) {
		rule->kind = (s[0] == 'u') ? ACL_UID : ACL_GID;
		if (acl_parse_id(s + 4, &rule->id) != 0) {
			xasprintf(cause, "bad allow rule \"%.64s\": %s must be "
			    "a number from 0 to 4294967294", s,
			    s[0] == 'u' ? "uid" : "gid");
			return (-1);
		}
		return (0);
	} else {
		xasprintf(cause, "bad allow rule \"%.64s\": expected "
		    "user:NAME, group:NAME, uid:N or gid:N", s);
		return (-1);
	}

	if (*arg == '\0') {
		xasprintf(cause, "bad allow rule \"%.64s\": empty %s name", s,
		    what);
		return (-1);
	}
	r = acl_lookup(rule->kind, arg, &rule->id);
	if (r == 1)
		return (0);
	if (r == 0)
		xasprintf(cause, "allow rule \"%.64s\": no such %s", s, what);
	else
		xasprintf(cause, "allow rule \"%.64s\": looking up the %s: %s",
		    s, what, strerror(errno));
	return (-1);
}

/* Compare two gids for qsort and bsearch. */
static int
acl_gid_cmp(const void *a, const void *b)
{
	gid_t	x = *(const gid_t *)a, y = *(const gid_t *)b;

	return (x < y ? -1 : x > y);
}

/* Whether the peer is in group gid, as primary or supplementary group. */
static int
acl_in_group(const struct peer *peer, gid_t gid)
{
	if (peer->gid == gid)
		return (1);
	if (peer->ngroups == 0)
		return (0);
	return (bsearch(&gid, peer->groups, peer->ngroups, sizeof gid,
	    acl_gid_cmp) != NULL);
}

/*
 * Whether peer may use something guarded by acl. Root always may: it can read
 * the secrets anyway. Without an allow list, only the daemon's own user may
 * as well; with one, any rule matching the uid, the primary gid or one of the
 * supplementary groups admits the peer.
 */
int
acl_allows(const struct acl *acl, const struct peer *peer)
{
	size_t	i;

	if (peer->uid == 0)
		return (1);
	if (!acl->set)
		return (peer->uid == geteuid());
	for (i = 0; i < acl->n; i++) {
		switch (acl->rules[i].kind) {
		case ACL_UID:
			if ((uint32_t)peer->uid == acl->rules[i].id)
				return (1);
			break;
		case ACL_GID:
			if (acl_in_group(peer, (gid_t)acl->rules[i].id))
				return (1);
			break;
		}
	}
	return (0);
}

/* Free the rules of an allow list and make it empty (not set). */
void
acl_free(struct acl *acl)
{
	free(acl->rules);
	acl->rules = NULL;
	acl->n = 0;
	acl->set = 0;
}

/*
 * Read the supplementary groups of the peer with SO_PEERGROUPS (Linux 4.13),
 * sorted for acl_in_group. A kernel without it leaves the peer with none.
 */
static int
peer_load_groups(int fd, struct peer *peer)
{
#ifdef SO_PEERGROUPS
	static int	 warned;
	gid_t		*groups = NULL;
	size_t		 n = PEER_GROUPS_FIRST;
	socklen_t	 len;

	for (;;) {
		groups = xreallocarray(groups, n, sizeof *groups);
		len = n * sizeof *groups;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups,
		    &len) == 0)
			break;
		if (errno == ERANGE && len / sizeof *groups > n &&
		    len / sizeof *groups <= PEER_GROUPS_MAX) {
			/* The kernel said how much room it needs. */
			n = len / sizeof *groups;
			continue;
		}
		free(groups);
		if (errno == ENOPROTOOPT) {
			if (!warned) {
				log_debug("SO_PEERGROUPS is not supported: "
				    "allow rules see primary groups only");
				warned = 1;
			}
			return (0);
		}
		if (errno == ERANGE)
			errno = E2BIG;
		return (-1);
	}
	peer->ngroups = len / sizeof *groups;
	if (peer->ngroups == 0) {
		free(groups);
		return (0);
	}
	qsort(groups, peer->ngroups, sizeof *groups, acl_gid_cmp);
	peer->groups = groups;
#else
	(void)fd;
	(void)peer;
	log_debug("SO_PEERGROUPS is not available: allow rules see primary "
	    "groups only");
#endif
	return (0);
}

/*
 * Fill peer from the kernel's credentials of the process at the other end of
 * the Unix socket fd (as of connect()). Returns 0, or -1 with errno.
 */
int
peer_load(int fd, struct peer *peer)
{
	struct ucred	uc;
	socklen_t	len = sizeof uc;

	memset(peer, 0, sizeof *peer);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1)
		return (-1);
	if (len != sizeof uc) {
		errno = EINVAL;
		return (-1);
	}
	peer->uid = uc.uid;
	peer->gid = uc.gid;
	peer->pid = uc.pid;
	if (peer_load_groups(fd, peer) != 0) {
		peer_free(peer);
		return (-1);
	}
	return (0);
}

/* Free what peer_load allocated. */
void
peer_free(struct peer *peer)
{
	free(peer->groups);
	peer->groups = NULL;
	peer->ngroups = 0;
}
