/*
 * The configuration file (docs/configuration.md). libconfuse parses it; a
 * callback checks each value as it is read, so every error carries the line
 * of the value, and builds a plain struct config. Errors are counted rather
 * than fatal, so one run shows them all.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <confuse.h>
#include <openssl/crypto.h>

#include "wxcrypt.h"
#include "wxpushd.h"

#ifndef nitems
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

#define CONFIG_FILE_MAX		(4 * 1024 * 1024)	/* bytes in the file */
#define CONFIG_SECRET_MAX	256	/* bytes in an AppSecret */
#define CONFIG_CONSENT_KEY_MIN	32	/* characters of consent_key_file */
#define CONFIG_CONSENT_URL_MAX	512	/* bytes of consent_*_url */
#define CONFIG_ALLOW_MAX	4096	/* rules in one allow list */
#define CONFIG_APIS_MAX		256	/* paths in one apis list */
#define CONFIG_TOKEN_MIN	3	/* WeChat's rule for the token */
#define CONFIG_TOKEN_MAX	32
#define CONFIG_HOST_MAX		253
#define CONFIG_URL_MAX		1024
#define CONFIG_REDIS_DB_MAX	65535
#define CONFIG_SENTINELS_MAX	16	/* redis_sentinels entries */
#define CONFIG_MASTER_NAME_MAX	64	/* redis_master's name */
#define CONFIG_ECHO		"%.80s"	/* how much of a bad value to quote */
/*
 * A key appended after the file's last line. libconfuse's lexer silently
 * ends at EOF inside a C comment (and drops the rest of the file): if this
 * key is not seen after a parse, the file ended inside a comment.
 */
#define CONFIG_END_KEY		"wxpushd.end-of-file"
#define CONFIG_END_NONCE	16	/* hex digits of its value, new per load */

/* An integer key: its range and where it goes in struct config. */
struct config_int {
	const char	*name;
	long long	 def;
	long long	 min;
	long long	 max;
	size_t		 off;
	int		 is_size;	/* a size_t field, not an int */
};

#define CONFIG_INT(n, d, lo, hi) \
	{ #n, d, lo, hi, offsetof(struct config, n), 0 }
static const struct config_int config_ints[] = {
	CONFIG_INT(refresh_margin, 300, 10, 3600),
	CONFIG_INT(authorizer_idle, 0, 0, 2592000),	/* 0: never idle */
	CONFIG_INT(upstream_timeout, 10, 1, 120),
	CONFIG_INT(send_timeout, 30, 1, 600),
	CONFIG_INT(max_inflight, 64, 1, 4096),
	CONFIG_INT(queue_limit, 10000, 0, 1000000),
	CONFIG_INT(max_clients, 16384, 1, 1000000),
	CONFIG_INT(max_clients_per_uid, 0, 1, 1000000), /* 0: max_clients */
	CONFIG_INT(idle_timeout, 300, 0, 86400),
	CONFIG_INT(drain_timeout, 10, 0, 600),
	CONFIG_INT(http_max_connections, 64, 1, 65536),
	CONFIG_INT(http_request_timeout, 10, 1, 600),
	CONFIG_INT(outbox_ttl, 86400, 60, 2592000),
	CONFIG_INT(outbox_limit, 1000000, 0, 100000000),
	CONFIG_INT(outbox_keep, 604800, 0, 31536000),
	CONFIG_INT(consent_ttl, 2592000, 3600, 31536000),
	CONFIG_INT(consent_max, 100000, 1, 10000000),
	{ "max_request", 65536, 1024, 16777216,
	    offsetof(struct config, max_request), 1 },
	{ "call_max_body", 65536, 2, 1048576,
	    offsetof(struct config, call_max_body), 1 },
	{ "call_max_answer", 65536, 1024, 1048576,
	    offsetof(struct config, call_max_answer), 1 },
};
#undef CONFIG_INT

/* A section being read: libconfuse calls back per key, then at its end. */
struct config_section {
	cfg_t			*sec;		/* identity only */
	int			 line;		/* where it starts */
	struct account_conf	*acc;		/* one of these two is set */
	struct component_conf	*comp;
	int			 has_secret_file;
	int			 has_secret;
	int			 has_token;
	int			 has_aes_key;
};

/* A secret file's owner, checked once the daemon's user is known. */
struct config_owner {
	char	*path;
	int	 line;
	uid_t	 uid;
};

/* The state of one config_load; libconfuse callbacks take no user pointer. */
struct config_parse {
	const char		*file;		/* as the caller named it */
	char			*dir;		/* its directory, absolute */
	cfg_t			*root;
	struct config		*conf;
	int			 nerrors;
	int			*linemap;	/* libconfuse line -> real */
	size_t			 nlinemap;
	int			 secret_line;	/* first inline secret or 0 */
	int			 open_comment;	/* line of an unclosed C comment, or 0 */
	int			 last_line;	/* the file's last line */
	char			 end_nonce[CONFIG_END_NONCE + 1];
	int			 end_seen;	/* the appended key was read */
	int			 end_reported;	/* errors past the end were */
	struct config_owner	*owners;	/* secret files, checked at the end */
	size_t			 nowners;
	int			 int_line[nitems(config_ints)];
	int			 redis_line;	/* where redis, redis_sentinels */
	int			 sentinels_line;	/* and redis_master were set */
	int			 master_line;
	struct config_section	 pend;
};
static struct config_parse	*config_p;

/* Lines libconfuse adds per one-line and per C comment; -1: not probed. */
static int	config_comment_extra[2] = { -1, -1 };
static int	config_probe_line;

static void	config_section_free(struct config_section *);

/* Report one error at line of the file being loaded, and count it. */
static void
config_report(struct config_parse *p, int line, const char *msg)
{
	int	level = log_getlevel();

	/*
	 * Past the file's last line is the appended end key, read inside an
	 * unclosed section, list or value: one error for all of that.
	 */
	if (p->last_line != 0 && line > p->last_line) {
		if (p->end_reported++)
			return;
		line = p->last_line;
		msg = "unexpected end of the file (a '{' without its '}', or a "
		    "value missing)";
	}
	/* A configuration error must be seen even at log_level error. */
	if (level < LOG_LEVEL_WARN)
		log_setlevel(LOG_LEVEL_WARN);
	if (line > 0)
		log_warnx("%s:%d: %s", p->file, line, msg);
	else
		log_warnx("%s: %s", p->file, msg);
	log_setlevel(level);
	p->nerrors++;
}

/* Map a line number as libconfuse counts it to the real one. */
static int
config_line(struct config_parse *p, int line)
{
	size_t	last;

	if (p->linemap == NULL || line < 1)
		return (line);
	if ((size_t)line < p->nlinemap)
		return (p->linemap[line]);
	/* Past the last token (an error at the end of the file). */
	last = p->nlinemap - 1;
	return (p->linemap[last] + (line - (int)last));
}

/* Report an error at a line already mapped. */
static void __attribute__((format(printf, 3, 4)))
config_error_at(struct config_parse *p, int line, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	config_report(p, line, msg);
}

/* Report an error at the line libconfuse is reading in cfg. */
static void __attribute__((format(printf, 2, 3)))
config_error(cfg_t *cfg, const char *fmt, ...)
{
	struct config_parse	*p = config_p;
	char			 msg[1024];
	va_list			 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	config_report(p, config_line(p, cfg->line), msg);
}

/* libconfuse's own errors (syntax, unknown keys) come here. */
static void
config_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	struct config_parse	*p = config_p;
	char			 msg[1024];

	vsnprintf(msg, sizeof msg, fmt, ap);
	/* libconfuse met the appended key where it was not expected. */
	if (p->last_line != 0 && strstr(msg, CONFIG_END_KEY) != NULL)
		config_report(p, p->last_line + 1, msg);
	else
		config_report(p, config_line(p, cfg->line), msg);
}

/* The appended end key: seen only if its value is this load's nonce. */
static int
config_cb_end(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_parse	*p = config_p;

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (strcmp(value, p->end_nonce) == 0)
		p->end_seen = 1;
	else
		config_error(cfg, "no such option '%s'", opt->name);
	return (0);
}

/* Remember the line libconfuse reports for the probe. */
static void
config_probe_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	(void)fmt;
	(void)ap;
	config_probe_line = cfg->line;
}

/* How many lines too many libconfuse counts after a comment of this form. */
static int
config_probe(const char *text)
{
	cfg_opt_t	 opts[] = { CFG_INT("k", 0, CFGF_NONE), CFG_END() };
	cfg_t		*cfg;

	if ((cfg = cfg_init(opts, CFGF_NONE)) == NULL)
		fatalx("cfg_init failed");
	cfg_set_error_function(cfg, config_probe_error);
	config_probe_line = 0;
	(void)cfg_parse_buf(cfg, text);
	cfg_free(cfg);
	/* text has its unknown key on line 2. */
	if (config_probe_line < 2 || config_probe_line > 12)
		return (0);
	return (config_probe_line - 2);
}

/* Record that libconfuse's line rep is the real line real. */
static void
config_linemap_set(struct config_parse *p, size_t rep, int real)
{
	size_t	i, n;

	if (rep >= p->nlinemap) {
		n = rep + 1 + 64;
		p->linemap = xreallocarray(p->linemap, n, sizeof *p->linemap);
		for (i = p->nlinemap; i < n; i++)
			p->linemap[i] = -1;
		p->nlinemap = n;
	}
	p->linemap[rep] = real;
}

/* Whether c may be part of an unquoted libconfuse string. */
static int
config_lex_word(int c)
{
	return (c != ' ' && c != '#' && c != '"' && c != '\'' && c != '\t' &&
	    c != '\n' && c != '\r' && c != '=' && c != '{' && c != '}' &&
	    c != '(' && c != ')' && c != '+' && c != ',' && c != '*');
}

/*
 * libconfuse 3.3 counts lines wrongly after comments: a '#' or '//' comment
 * adds two lines too many, a C comment one (config_probe measures it, so a
 * fixed libconfuse needs nothing). Replay just enough of its lexer (strings,
 * comments and newlines, never values) to map its line numbers back.
 */
static void
config_linemap_build(struct config_parse *p, const char *buf, size_t len)
{
	size_t		 i = 0, j, rep = 1;
	int		 real = 1, c, q;
	const char	*end;

	if (config_comment_extra[0] == -1) {
		config_comment_extra[0] = config_probe("# c\nx = 1\n");
		config_comment_extra[1] = config_probe("/* c */\nx = 1\n");
	}
	if (config_comment_extra[0] == 0 && config_comment_extra[1] == 0)
		return;

	config_linemap_set(p, rep, real);
	while (i < len) {
		c = (unsigned char)buf[i];
		if (c == '\n') {
			rep++;
			config_linemap_set(p, rep, ++real);
			i++;
		} else if (c == '#' || (c == '/' && i + 1 < len &&
		    buf[i + 1] == '/')) {
			/* '//' followed by a word character is a word. */
			for (j = i; j < len && buf[j] == '/'; j++)
				;
			if (c == '/' && j < len &&
			    config_lex_word((unsigned char)buf[j])) {
				while (j < len &&
				    config_lex_word((unsigned char)buf[j]))
					j++;
				i = j;
				continue;
			}
			while (i < len && buf[i] != '\n')
				i++;
			if (i < len) {
				i++;
				rep += 1 + config_comment_extra[0];
				config_linemap_set(p, rep, ++real);
			}
		} else if (c == '/' && i + 1 < len && buf[i + 1] == '*') {
			p->open_comment = real;	/* until its end is found */
			for (i += 2; i < len; i++) {
				if (buf[i] == '\n') {
					rep++;
					config_linemap_set(p, rep, ++real);
				} else if (buf[i] == '*' && i + 1 < len &&
				    buf[i + 1] == '/') {
					i += 2;
					rep += config_comment_extra[1];
					config_linemap_set(p, rep, real);
					p->open_comment = 0;
					break;
				}
			}
		} else if (c == '"' || c == '\'') {
			q = c;
			for (i++; i < len && buf[i] != q; i++) {
				if (buf[i] == '\n') {
					rep++;
					config_linemap_set(p, rep, ++real);
				} else if (buf[i] == '\\' && i + 1 < len) {
					if (buf[++i] == '\n') {
						rep++;
						config_linemap_set(p, rep,
						    ++real);
					}
				} else if (q == '"' && buf[i] == '$' &&
				    i + 1 < len && buf[i + 1] == '{' &&
				    (end = memchr(buf + i, '}', len - i)) !=
				    NULL) {
					/* ${VAR}: its newlines go uncounted. */
					for (; buf + i < end; i++)
						real += (buf[i] == '\n');
					config_linemap_set(p, rep, real);
				}
			}
			if (i < len)
				i++;
		} else if (c == '$' && i + 1 < len && buf[i + 1] == '{' &&
		    (end = memchr(buf + i, '}', len - i)) != NULL) {
			for (; buf + i <= end; i++)
				real += (buf[i] == '\n');
			config_linemap_set(p, rep, real);
		} else if (config_lex_word(c)) {
			while (i < len &&
			    config_lex_word((unsigned char)buf[i]))
				i++;
		} else
			i++;
	}
	/* Fill the numbers libconfuse skips with the line before them. */
	for (j = 1; j < p->nlinemap; j++) {
		if (p->linemap[j] == -1)
			p->linemap[j] = p->linemap[j - 1];
	}
	p->nlinemap = rep + 1;
}

/* Make a path from the configuration absolute, against the file's directory. */
static char *
config_path(struct config_parse *p, const char *path)
{
	char	*s;

	if (*path == '/')
		return (xstrdup(path));
	while (strncmp(path, "./", 2) == 0)
		path += 2;
	if (strcmp(p->dir, "/") == 0)
		xasprintf(&s, "/%s", path);
	else
		xasprintf(&s, "%s/%s", p->dir, path);
	return (s);
}

/* Whether s is 1 to max printable ASCII characters. */
static int
config_printable(const char *s, size_t max)
{
	size_t	i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max || s[i] < 0x20 || s[i] > 0x7e)
			return (0);
	}
	return (i > 0);
}

/*
 * Read a secret from path: refused if group can write it or others can access
 * it, must hold 1 to 256 printable ASCII bytes after one trailing newline is
 * taken off. Returns the secret and its owner in *owner (config_owner_check
 * judges it later), or NULL and an allocated *cause that names the file
 * (never its contents).
 */
static char *
config_read_secret(const char *path, uid_t *owner, char **cause)
{
	char		 buf[CONFIG_SECRET_MAX + 3];
	struct stat	 st;
	ssize_t		 n;
	size_t		 len = 0;
	char		*secret = NULL;
	int		 fd;

	*cause = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &st) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		xasprintf(cause, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 027) {
		xasprintf(cause, "%s: mode %04o lets others read it or group "
		    "write it: run chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	*owner = st.st_uid;
	while (len < sizeof buf - 1) {
		n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			xasprintf(cause, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len == 0)
		xasprintf(cause, "%s: empty", path);
	else if (len > CONFIG_SECRET_MAX || strlen(buf) != len)
		xasprintf(cause, "%s: longer than %d bytes or not text", path,
		    CONFIG_SECRET_MAX);
	else if (!config_printable(buf, CONFIG_SECRET_MAX))
		xasprintf(cause, "%s: not printable ASCII", path);
	else
		secret = xstrdup_secret(buf);
out:
	OPENSSL_cleanse(buf, sizeof buf);
	close(fd);
	return (secret);
}

/* Remember path's owner, to check once the daemon's user is known. */
static void
config_owner_add(struct config_parse *p, const char *path, int line,
    uid_t uid)
{
	p->owners = xreallocarray(p->owners, p->nowners + 1,
	    sizeof *p->owners);
	p->owners[p->nowners].path = xstrdup(path);
	p->owners[p->nowners].line = line;
	p->owners[p->nowners].uid = uid;
	p->nowners++;
}

/*
 * Whether uid may own the configuration and secret files: root, the user
 * the daemon runs as now, or the user it will run as (like sshd's
 * StrictModes: anyone else could change what the daemon trusts).
 */
static int
config_owner_ok(const struct config *conf, uid_t uid)
{
	struct passwd	*pw;

	if (uid == 0 || uid == geteuid())
		return (1);
	if (conf->user != NULL && (pw = getpwnam(conf->user)) != NULL &&
	    pw->pw_uid == uid)
		return (1);
	return (0);
}

/* An error for a file owned by someone the daemon must not trust. */
static void
config_owner_error(struct config_parse *p, int line, const char *what,
    const char *path, uid_t uid)
{
	struct passwd	*pw = getpwuid(uid);

	config_error_at(p, line, "%s%s is owned by %s%s(uid %u), not by root "
	    "or the daemon's user, who could change it: run chown root %s",
	    what, path, pw != NULL ? pw->pw_name : "", pw != NULL ? " " : "",
	    (unsigned)uid, path);
}

/* A value fit to quote in an error message. */
static const char *
config_echo(const char *s)
{
	return (config_printable(s, CONFIG_URL_MAX) ? s : "(not printable)");
}

/*
 * Check "host[:port]" in s[0..len): host is a name, a dotted IPv4 address or
 * a bracketed IPv6 one. Sets *loopback. Returns 0, or -1 and a static *cause.
 */
static int
config_hostport(const char *s, size_t len, int need_port, int *loopback,
    const char **cause)
{
	char			 host[CONFIG_HOST_MAX + 1];
	const char		*port = NULL, *rb;
	size_t			 hlen, i, plen = 0;
	struct in_addr		 a4;
	struct in6_addr		 a6;
	unsigned long		 v;
	int			 numeric = 1;

	*loopback = 0;
	if (len > 0 && s[0] == '[') {
		rb = memchr(s, ']', len);
		if (rb == NULL) {
			*cause = "missing ']' after the IPv6 address";
			return (-1);
		}
		hlen = rb - s - 1;
		if (hlen == 0 || hlen >= sizeof host) {
			*cause = "bad IPv6 address";
			return (-1);
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			*cause = "bad IPv6 address";
			return (-1);
		}
		*loopback = IN6_IS_ADDR_LOOPBACK(&a6);
		if ((size_t)(rb + 1 - s) < len) {
			if (rb[1] != ':') {
				*cause = "junk after the IPv6 address";
				return (-1);
			}
			port = rb + 2;
			plen = len - (size_t)(port - s);
		}
	} else {
		for (hlen = 0; hlen < len && s[hlen] != ':'; hlen++)
			;
		if (hlen < len) {
			port = s + hlen + 1;
			plen = len - hlen - 1;
		}
		if (hlen == 0) {
			*cause = "no host";
			return (-1);
		}
		if (hlen > CONFIG_HOST_MAX) {
			*cause = "host name too long";
			return (-1);
		}
		for (i = 0; i < hlen; i++) {
			if (!((s[i] >= 'a' && s[i] <= 'z') ||
			    (s[i] >= 'A' && s[i] <= 'Z') ||
			    (s[i] >= '0' && s[i] <= '9') ||
			    s[i] == '-' || s[i] == '.')) {
				*cause = "bad character in the host";
				return (-1);
			}
			if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '.')
				numeric = 0;
		}
		if (s[0] == '-' || s[0] == '.') {
			*cause = "bad host name";
			return (-1);
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (numeric) {
			if (inet_pton(AF_INET, host, &a4) != 1) {
				*cause = "bad IPv4 address";
				return (-1);
			}
			*loopback = ((ntohl(a4.s_addr) >> 24) == 127);
		} else
			*loopback = (strcasecmp(host, "localhost") == 0);
	}

	if (port == NULL) {
		if (need_port) {
			*cause = "no port (HOST:PORT)";
			return (-1);
		}
		return (0);
	}
	if (plen == 0 || plen > 5) {
		*cause = "bad port";
		return (-1);
	}
	for (i = 0; i < plen; i++) {
		if (port[i] < '0' || port[i] > '9') {
			*cause = "bad port";
			return (-1);
		}
	}
	v = strtoul(port, NULL, 10);
	if (v < 1 || v > 65535) {
		*cause = "port out of range 1..65535";
		return (-1);
	}
	return (0);
}

/* The section being read in cfg, created at its first key. */
static struct config_section *
config_section(cfg_t *cfg)
{
	struct config_parse	*p = config_p;
	struct config_section	*s = &p->pend;
	const char		*title = cfg_title(cfg);

	if (s->sec == cfg)
		return (s);
	config_section_free(s);
	s->sec = cfg;
	/* The root's line stays at the '{' until the section ends. */
	s->line = config_line(p, p->root->line);
	if (strcmp(cfg_name(cfg), "account") == 0) {
		s->acc = xcalloc(1, sizeof *s->acc);
		s->acc->appid = xstrdup(title != NULL ? title : "");
		s->acc->token_api = TOKEN_API_STABLE;
	} else {
		s->comp = xcalloc(1, sizeof *s->comp);
		xdontdump(s->comp, sizeof *s->comp);	/* AES keys */
		s->comp->appid = xstrdup(title != NULL ? title : "");
	}
	return (s);
}

/* Free an apis list. */
static void
config_apis_free(struct apis *apis)
{
	size_t	i;

	for (i = 0; i < apis->n; i++)
		free(apis->paths[i]);
	free(apis->paths);
	apis->paths = NULL;
	apis->n = 0;
}

/* Free one account. */
static void
config_account_free(struct account_conf *acc)
{
	free(acc->appid);
	freezero_str(acc->secret);
	free(acc->secret_file);
	acl_free(&acc->allow);
	config_apis_free(&acc->apis);
	free(acc);
}

/* Free one component, wiping its keys. */
static void
config_component_free(struct component_conf *comp)
{
	free(comp->appid);
	freezero_str(comp->secret);
	free(comp->secret_file);
	freezero_str(comp->token);
	acl_free(&comp->allow);
	config_apis_free(&comp->apis);
	freezero(comp, sizeof *comp);
}

/* Drop a section that will not be kept. */
static void
config_section_free(struct config_section *s)
{
	if (s->acc != NULL)
		config_account_free(s->acc);
	if (s->comp != NULL)
		config_component_free(s->comp);
	memset(s, 0, sizeof *s);
}

/* Keep the first line of an inline secret, to check the file's mode. */
static void
config_inline_secret(cfg_t *cfg)
{
	struct config_parse	*p = config_p;

	if (p->secret_line == 0)
		p->secret_line = config_line(p, cfg->line);
}

/* An integer key: a decimal number in its range. */
static int
config_cb_int(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_parse	*p = config_p;
	const struct config_int	*ci = NULL;
	long long		 v;
	char			*end;
	size_t			 i;

	*(long *)result = 0;
	if (value == NULL)
		return (0);
	for (i = 0; i < nitems(config_ints); i++) {
		if (strcmp(config_ints[i].name, opt->name) == 0) {
			ci = &config_ints[i];
			break;
		}
	}
	if (ci == NULL)
		fatalx("%s: no integer key %s", __func__, opt->name);
	p->int_line[i] = config_line(p, cfg->line);

	errno = 0;
	v = strtoll(value, &end, 10);
	if (*value == '\0' || *end != '\0' || errno == ERANGE ||
	    ((*value < '0' || *value > '9') && *value != '-')) {
		config_error(cfg, "%s: \"" CONFIG_ECHO "\" is not an integer",
		    ci->name, config_echo(value));
		return (0);
	}
	if (v < ci->min || v > ci->max) {
		config_error(cfg, "%s: %lld is out of range %lld..%lld",
		    ci->name, v, ci->min, ci->max);
		return (0);
	}
	*(long *)result = (long)v;
	if (ci->is_size)
		*(size_t *)((char *)p->conf + ci->off) = (size_t)v;
	else
		*(int *)((char *)p->conf + ci->off) = (int)v;
	return (0);
}

/* socket, state_dir, ca_file: paths, made absolute. */
static int
config_cb_path(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_parse	*p = config_p;
	struct config		*conf = p->conf;
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			*path, **field;

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (*value == '\0') {
		config_error(cfg, "%s: empty path", opt->name);
		return (0);
	}
	path = config_path(p, value);
	if (strcmp(opt->name, "socket") == 0) {
		field = &conf->socket;
		if (strlen(path) >= sizeof sun.sun_path) {
			config_error(cfg, "socket: %s is longer than %zu bytes",
			    path, sizeof sun.sun_path - 1);
		}
	} else if (strcmp(opt->name, "state_dir") == 0)
		field = &conf->state_dir;
	else {
		field = &conf->ca_file;
		if (stat(path, &st) == -1)
			config_error(cfg, "ca_file: %s: %s", path,
			    strerror(errno));
		else if (!S_ISREG(st.st_mode))
			config_error(cfg, "ca_file: %s: not a regular file",
			    path);
	}
	free(*field);
	*field = path;
	return (0);
}

/* socket_mode: an octal mode up to 0777. */
static int
config_cb_socket_mode(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	size_t		 i, len;
	unsigned long	 v;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	len = strlen(value);
	for (i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '7')
			break;
	}
	if (len == 0 || len > 4 || i != len ||
	    (v = strtoul(value, NULL, 8)) > 0777) {
		config_error(cfg, "socket_mode: \"" CONFIG_ECHO "\" is not an "
		    "octal mode from 0 to 0777 (like \"0660\")",
		    config_echo(value));
		return (0);
	}
	config_p->conf->socket_mode = (mode_t)v;
	return (0);
}

/* api_base: https://HOST[:PORT], or http:// to a loopback host; no path. */
static int
config_cb_api_base(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config		*conf = config_p->conf;
	const char		*rest, *slash, *cause;
	size_t			 len;
	int			 tls, loopback;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (strncasecmp(value, "https://", 8) == 0) {
		tls = 1;
		rest = value + 8;
	} else if (strncasecmp(value, "http://", 7) == 0) {
		tls = 0;
		rest = value + 7;
	} else {
		config_error(cfg, "api_base: \"" CONFIG_ECHO "\": must start "
		    "with https://", config_echo(value));
		return (0);
	}
	if (strlen(value) > CONFIG_URL_MAX) {
		config_error(cfg, "api_base: longer than %d bytes",
		    CONFIG_URL_MAX);
		return (0);
	}
	if ((slash = strchr(rest, '/')) != NULL) {
		if (slash[1] != '\0') {
			config_error(cfg, "api_base: \"" CONFIG_ECHO "\": only "
			    "scheme, host and port, no path",
			    config_echo(value));
			return (0);
		}
		len = slash - rest;
	} else
		len = strlen(rest);
	if (config_hostport(rest, len, 0, &loopback, &cause) != 0) {
		config_error(cfg, "api_base: \"" CONFIG_ECHO "\": %s",
		    config_echo(value), cause);
		return (0);
	}
	if (!tls && !loopback) {
		config_error(cfg, "api_base: \"" CONFIG_ECHO "\": http:// is "
		    "only allowed to a loopback host (127.0.0.0/8, ::1, "
		    "localhost)", config_echo(value));
		return (0);
	}
	free(conf->api_base);
	conf->api_base = xstrndup(value, (size_t)(rest - value) + len);
	return (0);
}

/* log_level: error, warn, info or debug. */
static int
config_cb_log_level(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	int	level;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if ((level = log_level_parse(value)) == -1) {
		config_error(cfg, "log_level: \"" CONFIG_ECHO "\": must be "
		    "error, warn, info or debug", config_echo(value));
		return (0);
	}
	config_p->conf->log_level = level;
	return (0);
}

/* callback_listen, metrics_listen, consent_listen: HOST:PORT. */
static int
config_cb_listen(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config	 *conf = config_p->conf;
	const char	 *cause;
	char		**field;
	int		  loopback;

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (config_hostport(value, strlen(value), 1, &loopback, &cause) != 0) {
		config_error(cfg, "%s: \"" CONFIG_ECHO "\": %s (expected "
		    "HOST:PORT)", opt->name, config_echo(value), cause);
		return (0);
	}
	if (strcmp(opt->name, "callback_listen") == 0)
		field = &conf->callback_listen;
	else if (strcmp(opt->name, "consent_listen") == 0)
		field = &conf->consent_listen;
	else
		field = &conf->metrics_listen;
	free(*field);
	*field = xstrdup(value);
	return (0);
}

/* redis: redis://HOST[:PORT][/DB] or rediss://... */
static int
config_cb_redis(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config	*conf = config_p->conf;
	const char	*rest, *slash, *cause = NULL;
	size_t		 i, len;
	int		 loopback;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (strncmp(value, "redis://", 8) == 0)
		rest = value + 8;
	else if (strncmp(value, "rediss://", 9) == 0) {
		/* Debian 12's hiredis (0.14) has no TLS. */
		config_error(cfg, "redis: \"" CONFIG_ECHO "\": rediss:// (TLS) "
		    "is not supported by this build's hiredis; use redis:// on a "
		    "private network or a TLS tunnel", config_echo(value));
		return (0);
	} else {
		config_error(cfg, "redis: \"" CONFIG_ECHO "\": must start with "
		    "redis:// or rediss://", config_echo(value));
		return (0);
	}
	len = strlen(rest);
	if ((slash = strchr(rest, '/')) != NULL) {
		len = slash - rest;
		/* An optional database number. */
		for (i = 1; slash[i] != '\0'; i++) {
			if (slash[i] < '0' || slash[i] > '9' || i > 5)
				break;
		}
		if (slash[i] != '\0' || (i > 1 &&
		    strtoul(slash + 1, NULL, 10) > CONFIG_REDIS_DB_MAX))
			cause = "the path must be a database number";
	}
	if (cause == NULL && memchr(rest, '@', len) != NULL)
		cause = "user names and passwords are not supported";
	if (cause == NULL &&
	    config_hostport(rest, len, 0, &loopback, &cause) == 0) {
		free(conf->redis);
		conf->redis = xstrdup(value);
		config_p->redis_line = config_line(config_p, cfg->line);
		return (0);
	}
	config_error(cfg, "redis: \"" CONFIG_ECHO "\": %s (expected "
	    "redis://HOST:PORT/DB)", config_echo(value), cause);
	return (0);
}

/* redis_sentinels: "HOST:PORT[, HOST:PORT...]", Sentinel's addresses. */
static int
config_cb_redis_sentinels(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config	*conf = config_p->conf;
	const char	*s, *e, *cause = NULL;
	size_t		 n = 0, len;
	int		 loopback;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	/* Set, even if wrong: one error, not a second "needs" one. */
	config_p->sentinels_line = config_line(config_p, cfg->line);
	for (s = value; cause == NULL; s = e + 1) {
		s += strspn(s, " \t");
		e = s + strcspn(s, ",");
		len = (size_t)(e - s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0)
			cause = "an empty entry";
		else if (++n > CONFIG_SENTINELS_MAX)
			cause = "too many sentinels (at most 16)";
		else
			config_hostport(s, len, 1, &loopback, &cause);
		if (*e == '\0')
			break;
	}
	if (cause != NULL) {
		config_error(cfg, "redis_sentinels: \"" CONFIG_ECHO "\": %s "
		    "(expected HOST:PORT, HOST:PORT, ...)", config_echo(value),
		    cause);
		return (0);
	}
	free(conf->redis_sentinels);
	conf->redis_sentinels = xstrdup(value);
	return (0);
}

/* redis_master: the name Sentinel monitors the master by, and /DB. */
static int
config_cb_redis_master(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config	*conf = config_p->conf;
	const char	*slash;
	size_t		 nlen, i;
	int		 ok;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	config_p->master_line = config_line(config_p, cfg->line);
	slash = strchr(value, '/');
	nlen = slash != NULL ? (size_t)(slash - value) : strlen(value);
	ok = nlen > 0 && nlen <= CONFIG_MASTER_NAME_MAX;
	for (i = 0; ok && i < nlen; i++)
		ok = (value[i] >= 'a' && value[i] <= 'z') ||
		    (value[i] >= 'A' && value[i] <= 'Z') ||
		    (value[i] >= '0' && value[i] <= '9') ||
		    value[i] == '-' || value[i] == '_' || value[i] == '.';
	if (ok && slash != NULL) {
		for (i = 1; slash[i] >= '0' && slash[i] <= '9' && i <= 5; i++)
			;
		ok = i > 1 && slash[i] == '\0' &&
		    strtoul(slash + 1, NULL, 10) <= CONFIG_REDIS_DB_MAX;
	}
	if (!ok) {
		config_error(cfg, "redis_master: \"" CONFIG_ECHO "\": expected "
		    "NAME or NAME/DB (a name of letters, digits, '-', '_', '.', "
		    "at most %d)", config_echo(value), CONFIG_MASTER_NAME_MAX);
		return (0);
	}
	free(conf->redis_master);
	conf->redis_master = xstrdup(value);
	return (0);
}

/* redis_password_file: Redis's AUTH password, read now, private like a secret. */
static int
config_cb_redis_password_file(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config	*conf = config_p->conf;
	char		*path, *cause;
	uid_t		 owner;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (*value == '\0') {
		config_error(cfg, "redis_password_file: empty path");
		return (0);
	}
	path = config_path(config_p, value);
	freezero_str(conf->redis_password);
	if ((conf->redis_password = config_read_secret(path, &owner,
	    &cause)) == NULL) {
		config_error(cfg, "redis_password_file: %s", cause);
		free(cause);
	} else
		config_owner_add(config_p, path, config_line(config_p,
		    cfg->line), owner);
	free(path);
	return (0);
}

/* metrics_token_file: the bearer token /metrics asks for, private like a secret. */
static int
config_cb_metrics_token_file(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config	*conf = config_p->conf;
	char		*path, *cause;
	uid_t		 owner;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (*value == '\0') {
		config_error(cfg, "metrics_token_file: empty path");
		return (0);
	}
	path = config_path(config_p, value);
	freezero_str(conf->metrics_token);
	if ((conf->metrics_token = config_read_secret(path, &owner,
	    &cause)) == NULL) {
		config_error(cfg, "metrics_token_file: %s", cause);
		free(cause);
	} else
		config_owner_add(config_p, path, config_line(config_p,
		    cfg->line), owner);
	free(path);
	return (0);
}

/* consent_key_file: the key of consent links' MACs, private like a secret. */
static int
config_cb_consent_key_file(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config	*conf = config_p->conf;
	char		*path, *cause;
	uid_t		 owner;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (*value == '\0') {
		config_error(cfg, "consent_key_file: empty path");
		return (0);
	}
	path = config_path(config_p, value);
	freezero_str(conf->consent_key);
	if ((conf->consent_key = config_read_secret(path, &owner,
	    &cause)) == NULL) {
		config_error(cfg, "consent_key_file: %s", cause);
		free(cause);
	} else if (strlen(conf->consent_key) < CONFIG_CONSENT_KEY_MIN) {
		config_error(cfg, "consent_key_file: %s: shorter than %d "
		    "characters (make one with: openssl rand -hex 32)", path,
		    CONFIG_CONSENT_KEY_MIN);
		freezero_str(conf->consent_key);
		conf->consent_key = NULL;
	} else
		config_owner_add(config_p, path, config_line(config_p,
		    cfg->line), owner);
	free(path);
	return (0);
}

/* consent_public_url, consent_landing_url: absolute http(s) URLs. */
static int
config_cb_consent_url(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config	 *conf = config_p->conf;
	char		**field;
	size_t		  i, len;

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	len = strlen(value);
	if ((strncmp(value, "https://", 8) != 0 &&
	    strncmp(value, "http://", 7) != 0) || len > CONFIG_CONSENT_URL_MAX ||
	    value[value[4] == 's' ? 8 : 7] == '\0' ||
	    value[value[4] == 's' ? 8 : 7] == '/') {
		config_error(cfg, "%s: \"" CONFIG_ECHO "\": must be an http(s) "
		    "URL with a host, at most %d bytes", opt->name,
		    config_echo(value), CONFIG_CONSENT_URL_MAX);
		return (0);
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)value[i] <= ' ' ||
		    (unsigned char)value[i] >= 0x7f || value[i] == '#') {
			config_error(cfg, "%s: \"" CONFIG_ECHO "\": a space, "
			    "control, # or non-ASCII byte", opt->name,
			    config_echo(value));
			return (0);
		}
	}
	if (strcmp(opt->name, "consent_public_url") == 0) {
		field = &conf->consent_public_url;
		while (len > 0 && value[len - 1] == '/')
			len--;
	} else
		field = &conf->consent_landing_url;
	free(*field);
	*field = xstrndup(value, len);
	return (0);
}

/* consent (in an account or component): required or recorded. */
static int
config_cb_consent(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config_section	*s;
	int			*field;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	field = s->acc != NULL ? &s->acc->consent_required :
	    &s->comp->consent_required;
	if (strcmp(value, "required") == 0)
		*field = 1;
	else if (strcmp(value, "recorded") == 0)
		*field = 0;
	else {
		config_error(cfg, "consent: \"" CONFIG_ECHO "\": must be "
		    "required or recorded", config_echo(value));
	}
	return (0);
}

/* metrics_authorizers: each (one series per authorizer) or aggregate. */
static int
config_cb_metrics_authorizers(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (strcmp(value, "each") == 0)
		config_p->conf->metrics_aggregate = 0;
	else if (strcmp(value, "aggregate") == 0)
		config_p->conf->metrics_aggregate = 1;
	else
		config_error(cfg, "metrics_authorizers: \"" CONFIG_ECHO "\": "
		    "must be each or aggregate", config_echo(value));
	return (0);
}

/* user, group: names that must exist. */
static int
config_cb_owner(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config	*conf = config_p->conf;
	int		 user = (strcmp(opt->name, "user") == 0);

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	if (user ? getpwnam(value) == NULL : getgrnam(value) == NULL) {
		config_error(cfg, "%s: \"" CONFIG_ECHO "\": no such %s",
		    opt->name, config_echo(value), opt->name);
		return (0);
	}
	if (user) {
		free(conf->user);
		conf->user = xstrdup(value);
	} else {
		free(conf->group);
		conf->group = xstrdup(value);
	}
	return (0);
}

/* secret_file: the AppSecret, read now from a file only we may read. */
static int
config_cb_secret_file(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config_section	 *s;
	char			**secret, **file, *cause;
	uid_t			  owner;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	s->has_secret_file = 1;
	secret = s->acc != NULL ? &s->acc->secret : &s->comp->secret;
	file = s->acc != NULL ? &s->acc->secret_file : &s->comp->secret_file;
	if (*value == '\0') {
		config_error(cfg, "secret_file: empty path");
		return (0);
	}
	free(*file);
	*file = config_path(config_p, value);
	freezero_str(*secret);
	if ((*secret = config_read_secret(*file, &owner, &cause)) == NULL) {
		config_error(cfg, "secret_file: %s", cause);
		free(cause);
	} else
		config_owner_add(config_p, *file, config_line(config_p,
		    cfg->line), owner);
	return (0);
}

/* secret: the AppSecret inline; the file must then be private. */
static int
config_cb_secret(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_section	 *s;
	char			**secret;

	(void)opt;
	/* Keep no copy in libconfuse, which frees without wiping. */
	*(const char **)result = "";
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	s->has_secret = 1;
	config_inline_secret(cfg);
	if (!config_printable(value, CONFIG_SECRET_MAX)) {
		config_error(cfg, "secret: must be 1 to %d printable ASCII "
		    "characters", CONFIG_SECRET_MAX);
		return (0);
	}
	secret = s->acc != NULL ? &s->acc->secret : &s->comp->secret;
	freezero_str(*secret);
	*secret = xstrdup_secret(value);
	return (0);
}

/* token_api: stable or classic. */
static int
config_cb_token_api(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	struct config_section	*s;

	(void)opt;
	*(const char **)result = value;
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	if (strcmp(value, "stable") == 0)
		s->acc->token_api = TOKEN_API_STABLE;
	else if (strcmp(value, "classic") == 0)
		s->acc->token_api = TOKEN_API_CLASSIC;
	else {
		config_error(cfg, "token_api: \"" CONFIG_ECHO "\": must be "
		    "stable or classic", config_echo(value));
	}
	return (0);
}

/* allow: one rule of the list; a new list (=) starts again. */
static int
config_cb_allow(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_section	*s;
	struct acl		*acl;
	struct acl_rule		 rule;
	char			*cause;

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	acl = s->acc != NULL ? &s->acc->allow : &s->comp->allow;
	/* libconfuse has already counted this value. */
	if (opt->nvalues <= 1)
		acl->n = 0;
	if (acl_rule_parse(value, &rule, &cause) != 0) {
		config_error(cfg, "%s", cause);
		free(cause);
		return (0);
	}
	if (acl->n >= CONFIG_ALLOW_MAX) {
		config_error(cfg, "allow: more than %d rules",
		    CONFIG_ALLOW_MAX);
		return (0);
	}
	acl->rules = xreallocarray(acl->rules, acl->n + 1, sizeof *acl->rules);
	acl->rules[acl->n++] = rule;
	return (0);
}

/*
 * apis: one path of the list call may use (exact, or a prefix ending in '*');
 * a path whose answer is a credential is refused whatever the list says.
 */
static int
config_cb_apis(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_section	*s;
	struct apis		*apis;
	const char		*why;
	size_t			 len;

	*(const char **)result = value;
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	apis = s->acc != NULL ? &s->acc->apis : &s->comp->apis;
	/* libconfuse has already counted this value. */
	if (opt->nvalues <= 1)
		config_apis_free(apis);
	len = strlen(value);
	if (!wxapi_path_check(value, len, 1, &why)) {
		if (config_printable(value, WXAPI_PATH_MAX))
			config_error(cfg, "apis: \"" CONFIG_ECHO "\": %s",
			    config_echo(value), why);
		else
			config_error(cfg, "apis: %s", why);
		return (0);
	}
	if (wxapi_path_secret(value, len)) {
		config_error(cfg, "apis: \"%s\" %s credentials (tokens, "
		    "tickets, codes) and can never be allowed", value,
		    value[len - 1] == '*' ? "covers a path that returns" :
		    "returns");
		return (0);
	}
	if (apis->n >= CONFIG_APIS_MAX) {
		config_error(cfg, "apis: more than %d paths", CONFIG_APIS_MAX);
		return (0);
	}
	apis->paths = xreallocarray(apis->paths, apis->n + 1,
	    sizeof *apis->paths);
	apis->paths[apis->n++] = xstrdup(value);
	return (0);
}

/* token: the component's message-check token, 3 to 32 letters or digits. */
static int
config_cb_token(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_section	*s;
	size_t			 i, len;

	(void)opt;
	*(const char **)result = "";
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	s->has_token = 1;
	config_inline_secret(cfg);
	len = strlen(value);
	for (i = 0; i < len; i++) {
		if (!((value[i] >= 'a' && value[i] <= 'z') ||
		    (value[i] >= 'A' && value[i] <= 'Z') ||
		    (value[i] >= '0' && value[i] <= '9')))
			break;
	}
	if (i != len || len < CONFIG_TOKEN_MIN || len > CONFIG_TOKEN_MAX) {
		config_error(cfg, "token: must be %d to %d letters or digits",
		    CONFIG_TOKEN_MIN, CONFIG_TOKEN_MAX);
		return (0);
	}
	freezero_str(s->comp->token);
	s->comp->token = xstrdup_secret(value);
	return (0);
}

/* aes_key, previous_aes_key: a 43-character EncodingAESKey. */
static int
config_cb_aes_key(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct config_section	*s;
	unsigned char		 key[WXCRYPT_KEY_LEN];
	int			 previous;

	*(const char **)result = "";
	if (value == NULL)
		return (0);
	s = config_section(cfg);
	previous = (strcmp(opt->name, "previous_aes_key") == 0);
	if (!previous)
		s->has_aes_key = 1;
	config_inline_secret(cfg);
	if (wxcrypt_key_decode(value, key) != 0) {
		config_error(cfg, "%s: not an EncodingAESKey (43 letters or "
		    "digits)", opt->name);
		OPENSSL_cleanse(key, sizeof key);
		return (0);
	}
	if (previous) {
		memcpy(s->comp->previous_aes_key, key, sizeof key);
		s->comp->has_previous_key = 1;
	} else
		memcpy(s->comp->aes_key, key, sizeof key);
	OPENSSL_cleanse(key, sizeof key);
	return (0);
}

/* The end of an account or component section: check it as a whole, keep it. */
static int
config_cb_section(cfg_t *cfg, cfg_opt_t *opt)
{
	struct config_parse	*p = config_p;
	struct config		*conf = p->conf;
	struct config_section	*s;
	cfg_t			*sec;
	cfg_opt_t		*allow;
	struct acl		*acl;
	const char		*kind, *appid;

	(void)cfg;
	sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	s = config_section(sec);
	kind = s->acc != NULL ? "account" : "component";
	appid = s->acc != NULL ? s->acc->appid : s->comp->appid;

	if (!valid_appid_str(appid)) {
		if (config_printable(appid, WX_APPID_MAX * 2)) {
			config_error_at(p, s->line, "%s \"" CONFIG_ECHO "\": "
			    "an appid is 1 to %d letters, digits, '_' or '-'",
			    kind, appid, WX_APPID_MAX);
		} else {
			config_error_at(p, s->line, "%s: an appid is 1 to %d "
			    "letters, digits, '_' or '-'", kind, WX_APPID_MAX);
		}
		config_section_free(s);
		return (0);
	}
	if (config_find_account(conf, appid) != NULL ||
	    config_find_component(conf, appid) != NULL) {
		config_error_at(p, s->line, "%s \"%s\": appid already "
		    "configured as %s", kind, appid,
		    config_find_account(conf, appid) != NULL ?
		    "an account" : "a component");
		config_section_free(s);
		return (0);
	}

	if (!s->has_secret_file && !s->has_secret) {
		config_error_at(p, s->line, "%s \"%s\": needs secret_file (or "
		    "secret)", kind, appid);
	} else if (s->has_secret_file && s->has_secret) {
		config_error_at(p, s->line, "%s \"%s\": secret_file and secret "
		    "are exclusive", kind, appid);
	}
	if (s->comp != NULL && !s->has_token) {
		config_error_at(p, s->line, "component \"%s\": needs token",
		    appid);
	}
	if (s->comp != NULL && !s->has_aes_key) {
		config_error_at(p, s->line, "component \"%s\": needs aes_key",
		    appid);
	}

	acl = s->acc != NULL ? &s->acc->allow : &s->comp->allow;
	allow = cfg_getopt(sec, "allow");
	if (allow != NULL && (allow->flags & CFGF_MODIFIED)) {
		acl->set = 1;
		/* allow = {}: nobody but root. */
		if (cfg_opt_size(allow) == 0)
			acl->n = 0;
	}

	if (s->acc != NULL)
		TAILQ_INSERT_TAIL(&conf->accounts, s->acc, entry);
	else
		TAILQ_INSERT_TAIL(&conf->components, s->comp, entry);
	memset(s, 0, sizeof *s);
	return (0);
}

/* Fill conf with the defaults. */
static void
config_defaults(struct config *conf)
{
	size_t	i;

	TAILQ_INIT(&conf->accounts);
	TAILQ_INIT(&conf->components);
	conf->socket = xstrdup(WX_RUNSTATEDIR "/wxpushd/wxpushd.sock");
	conf->socket_mode = 0660;
	conf->state_dir = xstrdup(WX_LOCALSTATEDIR "/lib/wxpushd");
	conf->api_base = xstrdup("https://api.weixin.qq.com");
	conf->log_level = LOG_LEVEL_INFO;
	for (i = 0; i < nitems(config_ints); i++) {
		if (config_ints[i].is_size) {
			*(size_t *)((char *)conf + config_ints[i].off) =
			    (size_t)config_ints[i].def;
		} else {
			*(int *)((char *)conf + config_ints[i].off) =
			    (int)config_ints[i].def;
		}
	}
}

/* The line of integer key name, or 0 if the file does not set it. */
static int
config_int_line(struct config_parse *p, const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(config_ints); i++) {
		if (strcmp(config_ints[i].name, name) == 0)
			return (p->int_line[i]);
	}
	return (0);
}

/* Checks between keys, once the whole file is read. */
static void
config_check(struct config_parse *p, const struct stat *st)
{
	struct config	*conf = p->conf;
	int		 line, uline, pline;
	size_t		 i;

	line = config_int_line(p, "send_timeout");
	uline = config_int_line(p, "upstream_timeout");
	if (conf->send_timeout < conf->upstream_timeout) {
		config_error_at(p, line > uline ? line : uline,
		    "send_timeout (%d) must be at least upstream_timeout (%d)",
		    conf->send_timeout, conf->upstream_timeout);
	}

	pline = config_int_line(p, "max_clients_per_uid");
	line = config_int_line(p, "max_clients");
	if (conf->max_clients_per_uid == 0)
		conf->max_clients_per_uid = conf->max_clients;
	else if (conf->max_clients_per_uid > conf->max_clients) {
		config_error_at(p, pline > line ? pline : line,
		    "max_clients_per_uid (%d) must be at most max_clients (%d)",
		    conf->max_clients_per_uid, conf->max_clients);
	}

	/* consent = required, or an endpoint, without a key to verify links. */
	if (conf->consent_key == NULL) {
		struct account_conf	*a;
		struct component_conf	*k;
		int			 need = conf->consent_listen != NULL;

		TAILQ_FOREACH(a, &conf->accounts, entry)
			need |= a->consent_required;
		TAILQ_FOREACH(k, &conf->components, entry)
			need |= k->consent_required;
		if (need)
			config_error_at(p, 0, "consent = required and "
			    "consent_listen need consent_key_file (make one "
			    "with: openssl rand -hex 32)");
	}
	/* One Redis: named directly, or found through Sentinel. */
	if (conf->redis != NULL && conf->redis_sentinels != NULL)
		config_error_at(p, p->redis_line > p->sentinels_line ?
		    p->redis_line : p->sentinels_line, "redis and "
		    "redis_sentinels are exclusive: name one Redis, or the "
		    "sentinels that know the master");
	else if (conf->redis != NULL && conf->redis_master != NULL)
		config_error_at(p, p->master_line, "redis_master is for "
		    "redis_sentinels, not redis");
	else if (conf->redis_sentinels != NULL && p->master_line == 0)
		config_error_at(p, p->sentinels_line, "redis_sentinels needs "
		    "redis_master (the name the sentinels monitor)");
	else if (conf->redis_master != NULL && p->sentinels_line == 0)
		config_error_at(p, p->master_line, "redis_master needs "
		    "redis_sentinels");

	/* Whoever can change the file can add themselves to allow lists. */
	if (st->st_mode & 022) {
		config_error_at(p, 0, "%s is mode %04o, writable by group or "
		    "others, who could change what the daemon trusts: run "
		    "chmod go-w %s", p->file, (unsigned)(st->st_mode & 07777),
		    p->file);
	}
	if (!config_owner_ok(conf, st->st_uid))
		config_owner_error(p, 0, "", p->file, st->st_uid);
	for (i = 0; i < p->nowners; i++) {
		if (!config_owner_ok(conf, p->owners[i].uid))
			config_owner_error(p, p->owners[i].line,
			    "secret file ", p->owners[i].path,
			    p->owners[i].uid);
	}

	if (p->secret_line != 0 && (st->st_mode & 027)) {
		config_error_at(p, p->secret_line, "%s holds a secret but its "
		    "mode %04o lets others read it or group write it: run "
		    "chmod 600 %s (or move the secret to a secret_file)",
		    p->file, (unsigned)(st->st_mode & 07777), p->file);
	}
}

/* Read the whole file into a buffer the caller wipes; -1 with errno. */
static int
config_read_file(const char *path, struct stat *st, char **bufp, size_t *lenp)
{
	char	*buf;
	size_t	 len = 0, size;
	ssize_t	 n;
	int	 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return (-1);
	if (fstat(fd, st) == -1)
		goto fail;
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (st->st_size > CONFIG_FILE_MAX) {
		errno = EFBIG;
		goto fail;
	}
	size = (size_t)st->st_size + 1;
	buf = xmalloc(size);
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			freezero(buf, size);
			errno = saved;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	*bufp = buf;
	*lenp = len;
	return (0);

fail:
	saved = errno;
	close(fd);
	errno = saved;
	return (-1);
}

/* The absolute name of path, without resolving symbolic links. */
static char *
config_abspath(const char *path)
{
	char	 cwd[PATH_MAX], *s;

	if (*path == '/')
		return (xstrdup(path));
	if (getcwd(cwd, sizeof cwd) == NULL)
		return (NULL);
	while (strncmp(path, "./", 2) == 0)
		path += 2;
	xasprintf(&s, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
	return (s);
}

/*
 * Load the configuration file at path. Every problem is logged as
 * "file:line: message" and counted in *nerrors; then the result is NULL.
 * Not reentrant (libconfuse is not either).
 */
struct config *
config_load(const char *path, int *nerrors)
{
	cfg_opt_t	 account_opts[] = {
		CFG_STR_CB("secret_file", NULL, CFGF_NODEFAULT,
		    config_cb_secret_file),
		CFG_STR_CB("secret", NULL, CFGF_NODEFAULT, config_cb_secret),
		CFG_STR_CB("token_api", NULL, CFGF_NODEFAULT,
		    config_cb_token_api),
		CFG_STR_LIST_CB("allow", NULL, CFGF_NODEFAULT, config_cb_allow),
		CFG_STR_LIST_CB("apis", NULL, CFGF_NODEFAULT, config_cb_apis),
		CFG_STR_CB("consent", NULL, CFGF_NODEFAULT, config_cb_consent),
		CFG_END()
	};
	cfg_opt_t	 component_opts[] = {
		CFG_STR_CB("secret_file", NULL, CFGF_NODEFAULT,
		    config_cb_secret_file),
		CFG_STR_CB("secret", NULL, CFGF_NODEFAULT, config_cb_secret),
		CFG_STR_CB("token", NULL, CFGF_NODEFAULT, config_cb_token),
		CFG_STR_CB("aes_key", NULL, CFGF_NODEFAULT, config_cb_aes_key),
		CFG_STR_CB("previous_aes_key", NULL, CFGF_NODEFAULT,
		    config_cb_aes_key),
		CFG_STR_LIST_CB("allow", NULL, CFGF_NODEFAULT, config_cb_allow),
		CFG_STR_LIST_CB("apis", NULL, CFGF_NODEFAULT, config_cb_apis),
		CFG_STR_CB("consent", NULL, CFGF_NODEFAULT, config_cb_consent),
		CFG_END()
	};
	cfg_opt_t	 opts[] = {
		CFG_STR_CB("socket", NULL, CFGF_NODEFAULT, config_cb_path),
		CFG_STR_CB("socket_mode", NULL, CFGF_NODEFAULT,
		    config_cb_socket_mode),
		CFG_STR_CB("state_dir", NULL, CFGF_NODEFAULT, config_cb_path),
		CFG_STR_CB("api_base", NULL, CFGF_NODEFAULT,
		    config_cb_api_base),
		CFG_STR_CB("ca_file", NULL, CFGF_NODEFAULT, config_cb_path),
		CFG_INT_CB("refresh_margin", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("authorizer_idle", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("upstream_timeout", 0, CFGF_NODEFAULT,
		    config_cb_int),
		CFG_INT_CB("send_timeout", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("max_inflight", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("queue_limit", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("max_clients", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("max_clients_per_uid", 0, CFGF_NODEFAULT,
		    config_cb_int),
		CFG_INT_CB("idle_timeout", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("drain_timeout", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("http_max_connections", 0, CFGF_NODEFAULT,
		    config_cb_int),
		CFG_INT_CB("http_request_timeout", 0, CFGF_NODEFAULT,
		    config_cb_int),
		CFG_INT_CB("outbox_ttl", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("outbox_limit", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("outbox_keep", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("max_request", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("call_max_body", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("call_max_answer", 0, CFGF_NODEFAULT,
		    config_cb_int),
		CFG_STR_CB("log_level", NULL, CFGF_NODEFAULT,
		    config_cb_log_level),
		CFG_STR_CB("callback_listen", NULL, CFGF_NODEFAULT,
		    config_cb_listen),
		CFG_STR_CB("metrics_listen", NULL, CFGF_NODEFAULT,
		    config_cb_listen),
		CFG_STR_CB("metrics_token_file", NULL, CFGF_NODEFAULT,
		    config_cb_metrics_token_file),
		CFG_STR_CB("consent_listen", NULL, CFGF_NODEFAULT,
		    config_cb_listen),
		CFG_STR_CB("consent_key_file", NULL, CFGF_NODEFAULT,
		    config_cb_consent_key_file),
		CFG_STR_CB("consent_public_url", NULL, CFGF_NODEFAULT,
		    config_cb_consent_url),
		CFG_STR_CB("consent_landing_url", NULL, CFGF_NODEFAULT,
		    config_cb_consent_url),
		CFG_INT_CB("consent_ttl", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_INT_CB("consent_max", 0, CFGF_NODEFAULT, config_cb_int),
		CFG_STR_CB("metrics_authorizers", NULL, CFGF_NODEFAULT,
		    config_cb_metrics_authorizers),
		CFG_STR_CB("redis", NULL, CFGF_NODEFAULT, config_cb_redis),
		CFG_STR_CB("redis_password_file", NULL, CFGF_NODEFAULT,
		    config_cb_redis_password_file),
		CFG_STR_CB("redis_sentinels", NULL, CFGF_NODEFAULT,
		    config_cb_redis_sentinels),
		CFG_STR_CB("redis_master", NULL, CFGF_NODEFAULT,
		    config_cb_redis_master),
		CFG_STR_CB("user", NULL, CFGF_NODEFAULT, config_cb_owner),
		CFG_STR_CB("group", NULL, CFGF_NODEFAULT, config_cb_owner),
		CFG_SEC("account", account_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_SEC("component", component_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_STR_CB(CONFIG_END_KEY, NULL, CFGF_NODEFAULT, config_cb_end),
		CFG_END()
	};
	struct config_parse	 parse, *p = &parse;
	struct config		*conf;
	struct stat		 st;
	char			*buf = NULL, *slash, *whole, *tail;
	unsigned char		 nonce[CONFIG_END_NONCE / 2];
	size_t			 len = 0, wlen, i;
	FILE			*fp;
	cfg_t			*cfg;
	int			 rc;

	memset(p, 0, sizeof *p);
	p->file = path;
	conf = p->conf = xcalloc(1, sizeof *conf);
	config_defaults(conf);

	if ((conf->path = config_abspath(path)) == NULL ||
	    config_read_file(path, &st, &buf, &len) == -1) {
		log_warnx("%s: %s", path, errno == EINVAL ?
		    "not a regular file" : strerror(errno));
		config_free(conf);
		if (nerrors != NULL)
			*nerrors = 1;
		return (NULL);
	}
	slash = strrchr(conf->path, '/');
	p->dir = xstrndup(conf->path, slash == conf->path ? 1 :
	    (size_t)(slash - conf->path));

	config_p = p;
	config_linemap_build(p, buf, len);
	if ((cfg = cfg_init(opts, CFGF_NONE)) == NULL)
		fatalx("cfg_init failed");
	p->root = cfg;
	cfg_set_error_function(cfg, config_cfg_error);
	cfg_set_validate_func(cfg, "account", config_cb_section);
	cfg_set_validate_func(cfg, "component", config_cb_section);
	free(cfg->filename);
	cfg->filename = xstrdup(path);

	/* The file, then the end key on a line of its own. */
	if (getrandom(nonce, sizeof nonce, 0) != sizeof nonce)
		fatal("getrandom");
	for (i = 0; i < sizeof nonce; i++)
		snprintf(p->end_nonce + 2 * i, 3, "%02x", nonce[i]);
	for (i = 0, p->last_line = 1; i < len; i++)
		p->last_line += (buf[i] == '\n');
	xasprintf(&tail, "\n%s = %s\n", CONFIG_END_KEY, p->end_nonce);
	wlen = len + strlen(tail);
	whole = xmalloc(wlen + 1);
	memcpy(whole, buf, len);	/* a NUL in the file goes through too */
	memcpy(whole + len, tail, strlen(tail) + 1);
	free(tail);
	if ((fp = fmemopen(whole, wlen, "r")) == NULL)
		fatal("fmemopen");
	rc = cfg_parse_fp(cfg, fp);
	fclose(fp);
	freezero(whole, wlen + 1);
	/* After a syntax error the rest is unread: no checks on a part. */
	if (rc != CFG_SUCCESS) {
		if (p->nerrors == 0)
			config_error_at(p, 0, "cannot parse the file");
	} else if (!p->end_seen) {
		/* libconfuse ended inside a comment: the rest was dropped. */
		if (p->open_comment != 0)
			config_error_at(p, p->open_comment, "a '/*' comment "
			    "that is never closed with '*/': everything after "
			    "it would be ignored");
		else
			config_error_at(p, 0, "the file ends inside a '/*' "
			    "comment that is never closed with '*/'");
	} else
		config_check(p, &st);

	cfg_free(cfg);
	config_section_free(&p->pend);
	freezero(buf, len + 1);
	free(p->linemap);
	free(p->dir);
	for (i = 0; i < p->nowners; i++)
		free(p->owners[i].path);
	free(p->owners);
	config_p = NULL;

	if (nerrors != NULL)
		*nerrors = p->nerrors;
	if (p->nerrors != 0) {
		config_free(conf);
		return (NULL);
	}
	return (conf);
}

/* Free a configuration, wiping its secrets. */
void
config_free(struct config *conf)
{
	struct account_conf	*acc;
	struct component_conf	*comp;

	if (conf == NULL)
		return;
	while ((acc = TAILQ_FIRST(&conf->accounts)) != NULL) {
		TAILQ_REMOVE(&conf->accounts, acc, entry);
		config_account_free(acc);
	}
	while ((comp = TAILQ_FIRST(&conf->components)) != NULL) {
		TAILQ_REMOVE(&conf->components, comp, entry);
		config_component_free(comp);
	}
	free(conf->path);
	free(conf->socket);
	free(conf->state_dir);
	free(conf->api_base);
	free(conf->ca_file);
	free(conf->callback_listen);
	free(conf->consent_listen);
	free(conf->consent_public_url);
	free(conf->consent_landing_url);
	freezero_str(conf->consent_key);
	free(conf->metrics_listen);
	freezero_str(conf->metrics_token);
	free(conf->redis);
	free(conf->redis_sentinels);
	free(conf->redis_master);
	freezero_str(conf->redis_password);
	free(conf->user);
	free(conf->group);
	free(conf);
}

/* The official account with this appid, or NULL. */
struct account_conf *
config_find_account(struct config *conf, const char *appid)
{
	struct account_conf	*acc;

	TAILQ_FOREACH(acc, &conf->accounts, entry) {
		if (strcmp(acc->appid, appid) == 0)
			return (acc);
	}
	return (NULL);
}

/* The third-party platform with this appid, or NULL. */
struct component_conf *
config_find_component(struct config *conf, const char *appid)
{
	struct component_conf	*comp;

	TAILQ_FOREACH(comp, &conf->components, entry) {
		if (strcmp(comp->appid, appid) == 0)
			return (comp);
	}
	return (NULL);
}

/*
 * The entry of apis that allows path[0..len) (exact, or a prefix pattern), or
 * NULL: the entry names the path in metrics, so their number stays bounded.
 */
const char *
config_apis_match(const struct apis *apis, const char *path, size_t len)
{
	const char	*p;
	size_t		 i, n;

	for (i = 0; i < apis->n; i++) {
		p = apis->paths[i];
		n = strlen(p);
		if (p[n - 1] == '*') {
			if (len >= n - 1 && memcmp(path, p, n - 1) == 0)
				return (p);
		} else if (len == n && memcmp(path, p, n) == 0)
			return (p);
	}
	return (NULL);
}
