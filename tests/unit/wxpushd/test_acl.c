/* Unit tests for acl.c: allow rules, decisions, and peer credentials. */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wxpushd.h"
#include "tap.h"

/* Parse a rule that must be valid. */
static void
rule_ok(const char *s, enum acl_kind kind, uint32_t id)
{
	struct acl_rule	 rule;
	char		*cause = (char *)"unset";
	int		 r;

	memset(&rule, 0xff, sizeof rule);
	r = acl_rule_parse(s, &rule, &cause);
	ok(r == 0 && rule.kind == kind && rule.id == id && cause == NULL,
	    "%s parses", s);
	if (r != 0)
		diag("  cause: %s", cause);
	free(r != 0 ? cause : NULL);
}

/* Parse a rule that must be refused with a cause mentioning what. */
static void
rule_bad(const char *s, const char *what)
{
	struct acl_rule	 rule;
	char		*cause = NULL;
	int		 r;

	r = acl_rule_parse(s, &rule, &cause);
	ok(r == -1 && cause != NULL && strstr(cause, what) != NULL,
	    "\"%s\" refused", s);
	if (cause != NULL && strstr(cause, what) == NULL)
		diag("  cause: %s", cause);
	free(cause);
}

static void
test_rules(void)
{
	rule_ok("user:root", ACL_UID, 0);
	rule_ok("group:root", ACL_GID, 0);
	rule_ok("uid:1001", ACL_UID, 1001);
	rule_ok("gid:0", ACL_GID, 0);
	rule_ok("uid:4294967294", ACL_UID, 4294967294U);
	rule_bad("user:nosuchuser-wx", "nosuchuser-wx");
	rule_bad("group:nosuchgroup-wx", "no such group");
	rule_bad("everyone", "expected user:NAME");
	rule_bad("", "expected");
	rule_bad("User:root", "expected");
	rule_bad("user:", "empty user name");
	rule_bad("group:", "empty group name");
	rule_bad("uid:", "uid must be");
	rule_bad("uid:abc", "uid must be");
	rule_bad("uid:-1", "uid must be");
	rule_bad("uid:+5", "uid must be");
	rule_bad("uid:4294967295", "uid must be");
	rule_bad("gid:99999999999", "gid must be");
	rule_bad("gid:1 ", "gid must be");
}

static void
test_allows(void)
{
	struct acl_rule	 rules[] = { { ACL_UID, 1001 }, { ACL_GID, 2000 } };
	struct acl	 acl = { 1, 2, rules };
	struct acl	 none = { 0, 0, NULL };
	struct acl	 empty = { 1, 0, NULL };
	gid_t		 g1[] = { 10, 2000, 4000 }, g2[] = { 10, 20, 30 };
	struct peer	 p;

	memset(&p, 0, sizeof p);
	p.uid = 1001;
	p.gid = 3000;
	ok(acl_allows(&acl, &p), "uid rule matches");
	p.uid = 5000;
	p.gid = 2000;
	ok(acl_allows(&acl, &p), "gid rule matches the primary group");
	p.gid = 3000;
	p.groups = g1;
	p.ngroups = 3;
	ok(acl_allows(&acl, &p), "gid rule matches a supplementary group");
	p.groups = g2;
	ok(!acl_allows(&acl, &p), "no rule matches");
	p.groups = NULL;
	p.ngroups = 0;
	ok(!acl_allows(&acl, &p), "no rule matches without groups");
	p.uid = 0;
	ok(acl_allows(&acl, &p), "root is always allowed");
	ok(acl_allows(&empty, &p), "root passes an empty list");
	p.uid = 1001;
	ok(!acl_allows(&empty, &p), "an empty list admits nobody else");

	/* No allow list: root and our own user only. */
	p.uid = 0;
	ok(acl_allows(&none, &p), "no list: root");
	p.uid = geteuid();
	ok(acl_allows(&none, &p), "no list: our own uid");
	p.uid = geteuid() == 12345 ? 12346 : 12345;
	p.gid = 0;
	p.groups = g1;
	p.ngroups = 3;
	ok(!acl_allows(&none, &p), "no list: anyone else is refused");
}

static void
test_peer(void)
{
	struct peer	 p;
	gid_t		 mine[256];
	int		 sv[2], n, i, found = 1;
	size_t		 j;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		ok(0, "socketpair");
		return;
	}
	ok(peer_load(sv[0], &p) == 0, "peer_load on a socketpair");
	is_int(p.uid, getuid(), "peer uid");
	is_int(p.gid, getgid(), "peer gid");
	is_int(p.pid, getpid(), "peer pid");

	n = getgroups(256, mine);
	for (i = 0; i < n; i++) {
		int here = 0;

		for (j = 0; j < p.ngroups; j++)
			here |= (p.groups[j] == mine[i]);
		found &= here;
	}
	ok(n < 0 || found, "supplementary groups are the process's");
	for (j = 1; j < p.ngroups; j++) {
		if (p.groups[j - 1] > p.groups[j])
			found = 0;
	}
	ok(found, "groups are sorted");
	peer_free(&p);
	ok(p.groups == NULL && p.ngroups == 0, "peer_free");
	close(sv[0]);
	close(sv[1]);

	ok(peer_load(-1, &p) == -1, "peer_load on a bad fd fails");
}

/* As root: a peer with more groups than the first buffer holds. */
static void
test_peer_many_groups(void)
{
	gid_t		 groups[300];
	struct peer	 p;
	struct acl_rule	 rule = { ACL_GID, 50250 };
	struct acl	 acl = { 1, 1, &rule };
	pid_t		 pid;
	int		 sv[2], status, i;

	if (geteuid() != 0) {
		ok(1, "# skip many groups: not root");
		return;
	}
	if ((pid = fork()) == -1) {
		ok(0, "fork");
		return;
	}
	if (pid == 0) {
		/* Reversed, to check the sort. */
		for (i = 0; i < 300; i++)
			groups[i] = 50299 - i;
		if (setgroups(300, groups) == -1)
			_exit(2);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
		    peer_load(sv[0], &p) == -1)
			_exit(3);
		if (p.ngroups != 300 || p.groups[0] != 50000 ||
		    p.groups[299] != 50299)
			_exit(4);
		p.uid = 4242;
		if (!acl_allows(&acl, &p))
			_exit(5);
		peer_free(&p);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		status = -1;
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "300 supplementary groups read and matched");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		diag("  child status %d", status);
}

static void
test_free(void)
{
	struct acl	acl;

	acl.set = 1;
	acl.n = 2;
	acl.rules = xcalloc(2, sizeof *acl.rules);
	acl_free(&acl);
	ok(acl.set == 0 && acl.n == 0 && acl.rules == NULL, "acl_free");
}

int
main(void)
{
	test_rules();
	test_allows();
	test_peer();
	test_peer_many_groups();
	test_free();
	return (tap_done());
}
