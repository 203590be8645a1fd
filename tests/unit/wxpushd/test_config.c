/*
 * Unit tests for config.c: files are written into a private directory,
 * loaded, and the result or the "file:line: message" errors are checked.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wxpushd.h"
#include "wxcrypt.h"
#include "tap.h"

#ifndef nitems
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

#define KEY_A	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define KEY_B	"ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlk9"
#define SECRET	"0123456789abcdef0123456789abcdef"

static char	 dir[256];		/* the private directory */
static char	 conf_path[PATH_MAX];	/* the file load_text writes */
static char	*errors;		/* what the last load wrote to stderr */

/* Write a file under dir with mode; returns its path (static). */
static const char *
put_file(const char *name, mode_t mode, const char *fmt, ...)
{
	static char	path[PATH_MAX];
	va_list		ap;
	FILE		*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	chmod(path, mode);
	return (path);
}

/* Load path with stderr captured into errors. */
static struct config *
load_path(const char *path, int *nerrors)
{
	struct config	*conf;
	char		 errpath[PATH_MAX];
	FILE		*f;
	long		 len;
	int		 fd, saved;

	snprintf(errpath, sizeof errpath, "%s/stderr", dir);
	fflush(stderr);
	if ((fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1) {
		perror(errpath);
		exit(1);
	}
	saved = dup(2);
	dup2(fd, 2);
	*nerrors = -1;
	conf = config_load(path, nerrors);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);

	free(errors);
	f = fopen(errpath, "r");
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	errors = calloc(1, (size_t)len + 1);
	if (fread(errors, 1, (size_t)len, f) != (size_t)len)
		errors[0] = '\0';
	fclose(f);
	return (conf);
}

/* Write text as the configuration file (mode 0600) and load it. */
static struct config *
load_text(const char *text, int *nerrors)
{
	snprintf(conf_path, sizeof conf_path, "%s", put_file("t.conf", 0600,
	    "%s", text));
	return (load_path(conf_path, nerrors));
}

/* Whether the captured errors hold "FILE:LINE:" and, if given, what. */
static int
has_error(int line, const char *what)
{
	char	 needle[PATH_MAX + 32];
	char	*at;

	snprintf(needle, sizeof needle, "%s:%d: ", conf_path, line);
	for (at = errors; (at = strstr(at, needle)) != NULL; at++) {
		if (what == NULL)
			return (1);
		/* what must be on the same line of output. */
		if (strstr(at, what) != NULL &&
		    strstr(at, what) < (strchr(at, '\n') != NULL ?
		    strchr(at, '\n') : at + strlen(at)))
			return (1);
	}
	return (0);
}

/* Expect text to fail with exactly one error, at line, mentioning what. */
static void
one_error(const char *name, const char *text, int line, const char *what)
{
	struct config	*conf;
	int		 n;

	conf = load_text(text, &n);
	ok(conf == NULL && n == 1 && has_error(line, what),
	    "%s: one error at line %d", name, line);
	if (conf != NULL || n != 1 || !has_error(line, what))
		diag("  nerrors %d, stderr:\n%s", n, errors);
	config_free(conf);
}

/* Expect text to load. */
static struct config *
loads(const char *name, const char *text)
{
	struct config	*conf;
	int		 n;

	conf = load_text(text, &n);
	ok(conf != NULL && n == 0, "%s: loads", name);
	if (conf == NULL)
		diag("  nerrors %d, stderr:\n%s", n, errors);
	return (conf);
}

/* A path under dir, for comparisons. */
static const char *
in_dir(const char *name)
{
	static char	path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return (path);
}

static void
test_full(void)
{
	struct config		*conf;
	struct account_conf	*acc;
	struct component_conf	*comp;
	unsigned char		 key[WXCRYPT_KEY_LEN];
	char			*text;

	put_file("a.secret", 0600, "%s\n", SECRET);
	put_file("b.secret", 0400, "%s", "second-secret");
	put_file("c.secret", 0640, "%s\n", "componentsecret");
	put_file("ca.pem", 0644, "%s", "not really a CA\n");

	xasprintf(&text,
	    "# a full configuration\n"
	    "socket = \"run/wxpushd.sock\"\n"
	    "socket_mode = \"0640\"\n"
	    "state_dir = \"state\"\n"
	    "api_base = \"http://127.0.0.1:8080/\"\n"
	    "ca_file = \"ca.pem\"\n"
	    "refresh_margin = 600\n"
	    "upstream_timeout = 5\n"
	    "send_timeout = 20\n"
	    "max_inflight = 8\n"
	    "queue_limit = 0\n"
	    "max_clients = 100\n"
	    "max_clients_per_uid = 10\n"
	    "idle_timeout = 0\n"
	    "drain_timeout = 3\n"
	    "max_request = 2048\n"
	    "log_level = \"debug\"\n"
	    "callback_listen = \"127.0.0.1:8089\"\n"
	    "metrics_listen = \"[::1]:9464\"\n"
	    "redis = \"redis://127.0.0.1:6379/2\"\n"
	    "user = \"root\"\n"
	    "group = \"root\"\n"
	    "account \"wx1234567890abcdef\" {\n"
	    "\tsecret_file = \"a.secret\"\n"
	    "\ttoken_api = \"classic\"\n"
	    "\tallow = { \"user:root\", \"uid:1001\",\n"
	    "\t    \"gid:0\" }\n"
	    "}\n"
	    "account \"wx_second-1\" {\n"
	    "\tsecret_file = \"%s\"\n"
	    "}\n"
	    "component \"wxcomponentappid0001\" {\n"
	    "\tsecret_file = \"c.secret\"\n"
	    "\ttoken = \"callbackToken1\"\n"
	    "\taes_key = \"" KEY_A "\"\n"
	    "\tprevious_aes_key = \"" KEY_B "\"\n"
	    "\tallow = { \"group:root\" }\n"
	    "}\n", in_dir("b.secret"));
	conf = loads("full", text);
	free(text);
	if (conf == NULL)
		return;

	is_str(conf->path, in_dir("t.conf"), "path is absolute");
	is_str(conf->socket, in_dir("run/wxpushd.sock"), "socket");
	is_int(conf->socket_mode, 0640, "socket_mode");
	is_str(conf->state_dir, in_dir("state"), "state_dir");
	is_str(conf->api_base, "http://127.0.0.1:8080", "api_base loses /");
	is_str(conf->ca_file, in_dir("ca.pem"), "ca_file");
	is_int(conf->refresh_margin, 600, "refresh_margin");
	is_int(conf->upstream_timeout, 5, "upstream_timeout");
	is_int(conf->send_timeout, 20, "send_timeout");
	is_int(conf->max_inflight, 8, "max_inflight");
	is_int(conf->queue_limit, 0, "queue_limit");
	is_int(conf->max_clients, 100, "max_clients");
	is_int(conf->max_clients_per_uid, 10, "max_clients_per_uid");
	is_int(conf->idle_timeout, 0, "idle_timeout");
	is_int(conf->drain_timeout, 3, "drain_timeout");
	is_int(conf->max_request, 2048, "max_request");
	is_int(conf->log_level, LOG_LEVEL_DEBUG, "log_level");
	is_str(conf->callback_listen, "127.0.0.1:8089", "callback_listen");
	is_str(conf->metrics_listen, "[::1]:9464", "metrics_listen");
	is_str(conf->redis, "redis://127.0.0.1:6379/2", "redis");
	is_str(conf->user, "root", "user");
	is_str(conf->group, "root", "group");

	acc = config_find_account(conf, "wx1234567890abcdef");
	ok(acc != NULL, "first account found");
	if (acc != NULL) {
		is_str(acc->secret, SECRET, "secret read, newline stripped");
		is_str(acc->secret_file, in_dir("a.secret"), "secret_file");
		is_int(acc->token_api, TOKEN_API_CLASSIC, "token_api");
		is_int(acc->allow.set, 1, "allow set");
		is_int(acc->allow.n, 3, "three rules");
		if (acc->allow.n == 3) {
			ok(acc->allow.rules[0].kind == ACL_UID &&
			    acc->allow.rules[0].id == 0, "user:root");
			ok(acc->allow.rules[1].kind == ACL_UID &&
			    acc->allow.rules[1].id == 1001, "uid:1001");
			ok(acc->allow.rules[2].kind == ACL_GID &&
			    acc->allow.rules[2].id == 0, "gid:0");
		}
	}
	acc = config_find_account(conf, "wx_second-1");
	ok(acc != NULL, "second account found");
	if (acc != NULL) {
		is_str(acc->secret, "second-secret", "secret without newline");
		is_str(acc->secret_file, in_dir("b.secret"), "absolute path");
		is_int(acc->token_api, TOKEN_API_STABLE, "token_api default");
		is_int(acc->allow.set, 0, "no allow list");
	}
	ok(config_find_account(conf, "wxcomponentappid0001") == NULL,
	    "a component is not an account");
	ok(config_find_account(conf, "nosuch") == NULL, "unknown account");

	comp = config_find_component(conf, "wxcomponentappid0001");
	ok(comp != NULL, "component found");
	if (comp != NULL) {
		is_str(comp->secret, "componentsecret", "component secret");
		is_str(comp->token, "callbackToken1", "token");
		wxcrypt_key_decode(KEY_A, key);
		ok(memcmp(comp->aes_key, key, sizeof key) == 0, "aes_key");
		ok(comp->aes_key[0] == 0x69 && comp->aes_key[31] == 0x51,
		    "aes_key bytes");
		ok(comp->has_previous_key, "has previous key");
		wxcrypt_key_decode(KEY_B, key);
		ok(memcmp(comp->previous_aes_key, key, sizeof key) == 0,
		    "previous_aes_key");
		is_int(comp->allow.set, 1, "component allow set");
		is_int(comp->allow.n, 1, "component allow rule");
	}
	config_free(conf);
}

static void
test_defaults(void)
{
	struct config	*conf;

	conf = loads("empty file", "");
	if (conf == NULL)
		return;
	is_str(conf->socket, WX_RUNSTATEDIR "/wxpushd/wxpushd.sock",
	    "default socket");
	is_int(conf->socket_mode, 0660, "default socket_mode");
	is_str(conf->state_dir, WX_LOCALSTATEDIR "/lib/wxpushd",
	    "default state_dir");
	is_str(conf->api_base, "https://api.weixin.qq.com", "default api_base");
	ok(conf->ca_file == NULL, "no ca_file");
	is_int(conf->refresh_margin, 300, "default refresh_margin");
	is_int(conf->authorizer_idle, 0, "default authorizer_idle: never idle");
	is_int(conf->upstream_timeout, 10, "default upstream_timeout");
	is_int(conf->send_timeout, 30, "default send_timeout");
	is_int(conf->max_inflight, 64, "default max_inflight");
	is_int(conf->queue_limit, 10000, "default queue_limit");
	is_int(conf->max_clients, 16384, "default max_clients");
	is_int(conf->max_clients_per_uid, 16384,
	    "default max_clients_per_uid is max_clients");
	is_int(conf->idle_timeout, 300, "default idle_timeout");
	is_int(conf->drain_timeout, 10, "default drain_timeout");
	is_int(conf->max_request, 65536, "default max_request");
	is_int(conf->log_level, LOG_LEVEL_INFO, "default log_level");
	ok(conf->callback_listen == NULL && conf->metrics_listen == NULL &&
	    conf->redis == NULL && conf->user == NULL && conf->group == NULL,
	    "optional keys unset");
	ok(TAILQ_EMPTY(&conf->accounts) && TAILQ_EMPTY(&conf->components),
	    "no sections");
	config_free(conf);

	conf = loads("max_clients alone", "max_clients = 50\n");
	if (conf != NULL)
		is_int(conf->max_clients_per_uid, 50, "per uid follows");
	config_free(conf);
}

static void
test_errors(void)
{
	struct config	*conf;
	int		 n;

	put_file("ok.secret", 0600, "%s\n", SECRET);
	put_file("open.secret", 0644, "%s\n", SECRET);
	put_file("gw.secret", 0620, "%s\n", SECRET);
	put_file("empty.secret", 0600, "%s", "\n");
	put_file("bin.secret", 0600, "%s", "abc\tdef\n");

	one_error("unknown key", "socket_mode = \"0660\"\n\nsockt = \"x\"\n",
	    3, "sockt");
	one_error("unknown key in a section",
	    "account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\ttoken = \"abc\"\n}\n", 3, "token");
	one_error("string for an integer", "\nrefresh_margin = \"abc\"\n", 2,
	    "refresh_margin");
	one_error("list for an integer", "max_inflight = { 1 }\n", 1, NULL);
	one_error("refresh_margin low", "refresh_margin = 9\n", 1,
	    "out of range");
	one_error("refresh_margin high", "refresh_margin = 3601\n", 1,
	    "10..3600");
	one_error("authorizer_idle high", "authorizer_idle = 2592001\n", 1,
	    "0..2592000");
	one_error("authorizer_idle negative", "authorizer_idle = -1\n", 1,
	    "authorizer_idle");
	one_error("upstream_timeout 0", "upstream_timeout = 0\n", 1,
	    "upstream_timeout");
	one_error("max_request low", "\n\nmax_request = 1023\n", 3,
	    "max_request");
	one_error("queue_limit negative", "queue_limit = -1\n", 1,
	    "queue_limit");
	one_error("idle_timeout high", "idle_timeout = 86401\n", 1,
	    "idle_timeout");
	one_error("max_clients_per_uid > max_clients",
	    "max_clients = 10\nmax_clients_per_uid = 11\n", 2,
	    "max_clients_per_uid");
	one_error("send_timeout < upstream_timeout",
	    "upstream_timeout = 40\n", 1, "send_timeout");
	one_error("huge integer", "max_inflight = 99999999999999999999\n", 1,
	    "not an integer");
	one_error("socket_mode 0999", "socket_mode = \"0999\"\n", 1,
	    "socket_mode");
	one_error("socket_mode 1777", "socket_mode = \"1777\"\n", 1,
	    "socket_mode");
	one_error("socket_mode word", "socket_mode = \"rw\"\n", 1,
	    "socket_mode");
	one_error("socket too long", "socket = \"/tmp/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n",
	    1, "longer");
	one_error("api_base ftp", "api_base = \"ftp://example.com\"\n", 1,
	    "https://");
	one_error("api_base path",
	    "api_base = \"https://api.weixin.qq.com/cgi-bin\"\n", 1, "no path");
	one_error("api_base no host", "api_base = \"https://\"\n", 1,
	    "no host");
	one_error("api_base bad port", "api_base = \"https://a.b:99999\"\n", 1,
	    "port");
	one_error("api_base user", "api_base = \"https://u@a.b\"\n", 1,
	    "api_base");
	one_error("http to a remote host",
	    "api_base = \"http://api.weixin.qq.com\"\n", 1, "loopback");
	one_error("http to a name that starts with localhost",
	    "api_base = \"http://localhost.example.com\"\n", 1, "loopback");
	one_error("port 65536", "api_base = \"https://a.b:65536\"\n", 1,
	    "port out of range");
	one_error("port 0", "callback_listen = \"127.0.0.1:0\"\n", 1,
	    "port out of range");
	one_error("http to a private address",
	    "api_base = \"http://10.0.0.1:8080\"\n", 1, "loopback");
	one_error("ca_file missing", "ca_file = \"nosuch.pem\"\n", 1,
	    "nosuch.pem");
	one_error("bad log_level", "log_level = \"loud\"\n", 1, "log_level");
	one_error("listen without port", "callback_listen = \"127.0.0.1\"\n",
	    1, "callback_listen");
	one_error("listen bad address", "metrics_listen = \"300.1.1.1:80\"\n",
	    1, "IPv4");
	one_error("redis scheme", "redis = \"http://127.0.0.1:6379\"\n", 1,
	    "redis");
	one_error("redis path", "redis = \"redis://127.0.0.1:6379/x\"\n", 1,
	    "database");
	one_error("redis password", "redis = \"redis://:pw@127.0.0.1\"\n", 1,
	    "password");
	/* Debian 12's hiredis has no TLS: refused rather than sent in clear. */
	one_error("rediss", "redis = \"rediss://cache.local\"\n", 1, "TLS");
	/* Sentinel: the sentinels and the master's name, never with redis. */
	conf = loads("sentinel", "redis_sentinels = \"127.0.0.1:26379, "
	    "[::1]:26380,s3.local:26381\"\nredis_master = \"mymaster/3\"\n");
	if (conf != NULL) {
		is_str(conf->redis_sentinels, "127.0.0.1:26379, [::1]:26380,"
		    "s3.local:26381", "redis_sentinels");
		is_str(conf->redis_master, "mymaster/3", "redis_master");
		ok(conf->redis == NULL, "no redis URL with Sentinel");
	}
	config_free(conf);
	one_error("redis and redis_sentinels",
	    "redis = \"redis://127.0.0.1\"\nredis_master = \"m\"\n"
	    "redis_sentinels = \"127.0.0.1:26379\"\n", 3, "exclusive");
	one_error("redis_sentinels then redis",
	    "redis_sentinels = \"127.0.0.1:26379\"\nredis_master = \"m\"\n"
	    "redis = \"redis://127.0.0.1\"\n", 3, "exclusive");
	one_error("sentinel without port",
	    "redis_sentinels = \"127.0.0.1:26379,127.0.0.2\"\n"
	    "redis_master = \"m\"\n", 1, "redis_sentinels");
	one_error("sentinel empty entry",
	    "redis_sentinels = \"127.0.0.1:26379,,127.0.0.2:1\"\n"
	    "redis_master = \"m\"\n", 1, "empty entry");
	one_error("sentinels without master",
	    "redis_sentinels = \"127.0.0.1:26379\"\n", 1, "needs redis_master");
	one_error("master without sentinels", "\nredis_master = \"m\"\n", 2,
	    "needs redis_sentinels");
	one_error("master bad name", "redis_sentinels = \"127.0.0.1:1\"\n"
	    "redis_master = \"my master\"\n", 2, "redis_master");
	one_error("master bad db", "redis_sentinels = \"127.0.0.1:1\"\n"
	    "redis_master = \"m/99999\"\n", 2, "NAME/DB");
	one_error("redis_master with redis", "redis = \"redis://127.0.0.1\"\n"
	    "redis_master = \"m\"\n", 2, "not redis");
	one_error("redis_password_file empty", "redis_password_file = \"\"\n",
	    1, "empty");
	one_error("redis_password_file mode",
	    "redis_password_file = \"open.secret\"\n", 1, "chmod");
	conf = loads("redis_password_file", "redis = \"redis://10.0.0.5/1\"\n"
	    "redis_password_file = \"ok.secret\"\n");
	if (conf != NULL)
		is_str(conf->redis_password, SECRET, "the Redis password is read");
	config_free(conf);
	one_error("unknown user", "user = \"nosuchuser-wx\"\n", 1, "no such");
	one_error("unknown group", "group = \"nosuchgroup-wx\"\n", 1,
	    "no such");

	one_error("bad appid", "\naccount \"wx!bad\" {\n"
	    "\tsecret_file = \"ok.secret\"\n}\n", 2, "appid");
	one_error("appid too long", "account \"wx1234567890123456789012345678"
	    "901234567890123456789012345678901234567890\" {\n"
	    "\tsecret_file = \"ok.secret\"\n}\n", 1, "appid");
	one_error("duplicate account",
	    "account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n}\n"
	    "account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n}\n", 4, "wx1");
	one_error("account and component",
	    "account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n}\n"
	    "component \"wx1\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\ttoken = \"abc\"\n\taes_key = \"" KEY_A "\"\n}\n", 4,
	    "already configured");
	one_error("missing secret_file",
	    "account \"wx1\" {\n\ttoken_api = \"stable\"\n}\n", 1,
	    "needs secret_file");
	one_error("empty section", "\naccount \"wx1\" { }\n", 2,
	    "needs secret_file");
	one_error("secret and secret_file",
	    "account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\tsecret = \"abc\"\n}\n", 1, "exclusive");
	one_error("secret file mode 0644",
	    "account \"wx1\" {\n\n\tsecret_file = \"open.secret\"\n}\n", 3,
	    "chmod 600");
	ok(strstr(errors, in_dir("open.secret")) != NULL,
	    "the message names the secret file");
	ok(strstr(errors, SECRET) == NULL, "the message holds no secret");
	one_error("secret file group-writable",
	    "account \"wx1\" {\n\tsecret_file = \"gw.secret\"\n}\n", 2,
	    "gw.secret");
	mkdir(in_dir("adir.secret"), 0700);
	one_error("secret file a directory",
	    "account \"wx1\" {\n\tsecret_file = \"adir.secret\"\n}\n", 2,
	    "not a regular file");
	one_error("secret file missing",
	    "account \"wx1\" {\n\tsecret_file = \"none.secret\"\n}\n", 2,
	    "No such file");
	one_error("secret file empty",
	    "account \"wx1\" {\n\tsecret_file = \"empty.secret\"\n}\n", 2,
	    "empty");
	one_error("secret file not text",
	    "account \"wx1\" {\n\tsecret_file = \"bin.secret\"\n}\n", 2,
	    "printable");
	one_error("bad token_api", "account \"wx1\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken_api = \"fast\"\n}\n", 3,
	    "stable or classic");
	one_error("bad consent", "account \"wx1\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\tconsent = \"always\"\n}\n", 3,
	    "required or recorded");
	put_file("short.key", 0600, "%s\n", "0123456789abcdef0123456789abcde");
	one_error("consent key shorter than 32", "consent_key_file = "
	    "\"short.key\"\n", 1, "shorter than 32");
	one_error("consent key others can read", "consent_key_file = "
	    "\"open.secret\"\n", 1, "chmod 600");
	one_error("consent_public_url not http", "consent_public_url = "
	    "\"ftp://shop.example/c\"\n", 1, "http(s) URL");
	one_error("consent_landing_url with a space", "consent_landing_url = "
	    "\"https://shop.example/a b\"\n", 1, "space");
	one_error("consent_ttl under an hour", "consent_ttl = 3599\n", 1,
	    "consent_ttl");
	conf = load_text("account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\tconsent = \"required\"\n}\n", &n);
	ok(conf == NULL && n == 1 && strstr(errors, "need consent_key_file") !=
	    NULL, "consent = required without consent_key_file is refused");
	config_free(conf);
	conf = load_text("consent_listen = \"127.0.0.1:8090\"\n", &n);
	ok(conf == NULL && n == 1 && strstr(errors, "need consent_key_file") !=
	    NULL, "consent_listen without consent_key_file is refused");
	config_free(conf);
	put_file("consent.key", 0600, "%s\n",
	    "0123456789abcdef0123456789abcdef");
	conf = load_text("consent_key_file = \"consent.key\"\n"
	    "consent_public_url = \"https://shop.example/wx/consent/\"\n"
	    "account \"wx1\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\tconsent = \"required\"\n}\n", &n);
	ok(conf != NULL && conf->consent_key != NULL &&
	    strcmp(conf->consent_key, "0123456789abcdef0123456789abcdef") == 0 &&
	    strcmp(conf->consent_public_url, "https://shop.example/wx/consent")
	    == 0 && conf->consent_ttl == 30 * 86400 &&
	    TAILQ_FIRST(&conf->accounts)->consent_required,
	    "consent_key_file, consent_public_url (no trailing /), consent "
	    "required and consent_ttl's default");
	config_free(conf);
	one_error("bad allow rule", "account \"wx1\" {\n"
	    "\tsecret_file = \"ok.secret\"\n"
	    "\tallow = { \"uid:1\",\n\t\t\"user:nosuchuser-wx\" }\n}\n", 4,
	    "nosuchuser-wx");
	one_error("garbage allow rule", "account \"wx1\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\tallow = \"everyone\"\n}\n", 3,
	    "everyone");
	one_error("bad aes_key", "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken = \"abc\"\n"
	    "\taes_key = \"tooshort\"\n}\n", 4, "aes_key");
	ok(strstr(errors, "tooshort") == NULL, "aes_key not echoed");
	one_error("bad previous_aes_key", "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken = \"abc\"\n"
	    "\taes_key = \"" KEY_A "\"\n"
	    "\tprevious_aes_key = \"" KEY_A "!\"\n}\n", 5, "previous_aes_key");
	one_error("appid of WX_APPID_MAX + 1", "account \"wx"
	    "12345678901234567890123456789012345678901234567890123456789012"
	    "3\" {\n\tsecret_file = \"ok.secret\"\n}\n", 1, "appid");
	one_error("token of 33", "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n"
	    "\ttoken = \"abcdefghijklmnopqrstuvwxyz0123456\"\n"
	    "\taes_key = \"" KEY_A "\"\n}\n", 3, "token");
	one_error("token too short", "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken = \"ab\"\n"
	    "\taes_key = \"" KEY_A "\"\n}\n", 3, "token");
	one_error("token with a dash", "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken = \"abc-def\"\n"
	    "\taes_key = \"" KEY_A "\"\n}\n", 3, "token");
	one_error("component without aes_key", "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken = \"abc\"\n}\n", 1,
	    "aes_key");
	one_error("syntax error", "socket = \"a\"\naccount {\n}\n", 2, NULL);
	one_error("unterminated list", "account \"wx1\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\tallow = { \"uid:1\",\n", 4,
	    NULL);

	/* An inline secret needs a private configuration file. */
	put_file("t.conf", 0644, "account \"wx1\" {\n\tsecret = \"%s\"\n}\n",
	    SECRET);
	snprintf(conf_path, sizeof conf_path, "%s", in_dir("t.conf"));
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && has_error(2, "chmod 600"),
	    "inline secret in a 0644 file refused");
	ok(strstr(errors, in_dir("t.conf")) != NULL &&
	    strstr(errors, SECRET) == NULL, "names the file, not the secret");
	config_free(conf);
	put_file("t.conf", 0644, "component \"wxc\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\ttoken = \"abc\"\n"
	    "\taes_key = \"" KEY_A "\"\n}\n");
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && has_error(3, "chmod 600"),
	    "inline token in a 0644 file refused");
	config_free(conf);
	conf = loads("inline secret in a 0600 file",
	    "account \"wx1\" {\n\tsecret = \"" SECRET "\"\n}\n");
	if (conf != NULL) {
		is_str(TAILQ_FIRST(&conf->accounts)->secret, SECRET,
		    "inline secret kept");
		ok(TAILQ_FIRST(&conf->accounts)->secret_file == NULL,
		    "no secret_file");
	}
	config_free(conf);

	/* All errors are reported, not just the first. */
	conf = load_text("refresh_margin = 1\nsocket_mode = \"9\"\n"
	    "account \"wx1\" {\n\tsecret_file = \"open.secret\"\n"
	    "\tallow = { \"user:nosuchuser-wx\" }\n}\n", &n);
	ok(conf == NULL && n == 4, "four errors counted");
	ok(has_error(1, "refresh_margin") && has_error(2, "socket_mode") &&
	    has_error(4, "open.secret") && has_error(5, "nosuchuser-wx"),
	    "four errors reported with their lines");
	if (n != 4)
		diag("%s", errors);
	config_free(conf);

	/* The file itself. */
	snprintf(conf_path, sizeof conf_path, "%s", in_dir("nosuch.conf"));
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && strstr(errors, "No such file") != NULL,
	    "missing file");
	conf = load_path(dir, &n);
	ok(conf == NULL && n == 1, "a directory is refused");
}

static void
test_accepted(void)
{
	struct config	*conf;

	conf = loads("http to localhost",
	    "api_base = \"http://localhost:80\"\n");
	config_free(conf);
	conf = loads("http to ::1", "api_base = \"http://[::1]:8080/\"\n");
	if (conf != NULL)
		is_str(conf->api_base, "http://[::1]:8080", "IPv6 api_base");
	config_free(conf);
	conf = loads("http to 127/8", "api_base = \"http://127.1.2.3\"\n");
	config_free(conf);
	conf = loads("https anywhere",
	    "api_base = \"https://10.1.1.1:8443\"\n");
	config_free(conf);
	conf = loads("log_level warn", "log_level = \"warn\"\n");
	if (conf != NULL)
		is_int(conf->log_level, LOG_LEVEL_WARN, "warn");
	config_free(conf);
	conf = loads("socket_mode 600", "socket_mode = \"600\"\n");
	if (conf != NULL)
		is_int(conf->socket_mode, 0600, "mode without a leading 0");
	config_free(conf);

	/* Every integer key at the top and at the bottom of its range. */
	conf = loads("integers at their maximum", "refresh_margin = 3600\n"
	    "upstream_timeout = 120\nsend_timeout = 600\nmax_inflight = 4096\n"
	    "queue_limit = 1000000\nmax_clients = 1000000\n"
	    "max_clients_per_uid = 1000000\nidle_timeout = 86400\n"
	    "drain_timeout = 600\nmax_request = 16777216\n"
	    "authorizer_idle = 2592000\n");
	if (conf != NULL) {
		ok(conf->authorizer_idle == 2592000 &&
		    conf->refresh_margin == 3600 && conf->upstream_timeout == 120 &&
		    conf->send_timeout == 600 && conf->max_inflight == 4096 &&
		    conf->queue_limit == 1000000 && conf->max_clients == 1000000 &&
		    conf->max_clients_per_uid == 1000000 &&
		    conf->idle_timeout == 86400 && conf->drain_timeout == 600 &&
		    conf->max_request == 16777216, "maximums kept");
	}
	config_free(conf);
	/* send_timeout may equal upstream_timeout, per uid equal max_clients. */
	conf = loads("integers at their minimum", "refresh_margin = 10\n"
	    "upstream_timeout = 1\nsend_timeout = 1\nmax_inflight = 1\n"
	    "queue_limit = 0\nmax_clients = 1\nmax_clients_per_uid = 1\n"
	    "idle_timeout = 0\ndrain_timeout = 0\nmax_request = 1024\n");
	if (conf != NULL) {
		ok(conf->refresh_margin == 10 && conf->upstream_timeout == 1 &&
		    conf->send_timeout == 1 && conf->max_inflight == 1 &&
		    conf->queue_limit == 0 && conf->max_clients == 1 &&
		    conf->max_clients_per_uid == 1 && conf->idle_timeout == 0 &&
		    conf->drain_timeout == 0 && conf->max_request == 1024,
		    "minimums kept");
	}
	config_free(conf);
	conf = loads("http to LOCALHOST", "api_base = \"http://LOCALHOST:8080\"\n"
	    "callback_listen = \"127.0.0.1:65535\"\n");
	config_free(conf);
	conf = loads("appid of WX_APPID_MAX, token of 32", "component \"wx"
	    "12345678901234567890123456789012345678901234567890123456789012"
	    "\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\ttoken = \"abcdefghijklmnopqrstuvwxyz012345\"\n"
	    "\taes_key = \"" KEY_A "\"\n}\n");
	config_free(conf);

	/* allow = {} is a list that admits root only; += appends. */
	conf = loads("allow lists", "account \"wx1\" {\n"
	    "\tsecret_file = \"ok.secret\"\n\tallow = {}\n}\n"
	    "account \"wx2\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\tallow = { \"uid:5\" }\n\tallow += { \"uid:6\" }\n}\n"
	    "account \"wx3\" {\n\tsecret_file = \"ok.secret\"\n"
	    "\tallow = { \"uid:5\" }\n\tallow = { \"uid:7\" }\n}\n");
	if (conf != NULL) {
		struct account_conf *a1, *a2, *a3;

		a1 = config_find_account(conf, "wx1");
		a2 = config_find_account(conf, "wx2");
		a3 = config_find_account(conf, "wx3");
		ok(a1->allow.set == 1 && a1->allow.n == 0, "allow = {}");
		ok(a2->allow.n == 2 && a2->allow.rules[1].id == 6, "allow +=");
		ok(a3->allow.n == 1 && a3->allow.rules[0].id == 7,
		    "a second allow = replaces");
	}
	config_free(conf);
}

static void
test_relative(void)
{
	struct config	*conf;
	char		 cwd[PATH_MAX], sub[PATH_MAX];
	int		 n;

	snprintf(sub, sizeof sub, "%s/sub", dir);
	mkdir(sub, 0700);
	put_file("sub/s.secret", 0600, "%s\n", SECRET);
	put_file("sub/x.conf", 0600, "socket = \"./w.sock\"\n"
	    "state_dir = \"../state\"\naccount \"wx1\" {\n"
	    "\tsecret_file = \"s.secret\"\n}\n");
	if (getcwd(cwd, sizeof cwd) == NULL || chdir(dir) != 0) {
		ok(0, "chdir");
		return;
	}
	conf = load_path("./sub/x.conf", &n);
	if (chdir(cwd) != 0)
		perror(cwd);
	ok(conf != NULL, "relative configuration path loads");
	if (conf == NULL) {
		diag("%s", errors);
		return;
	}
	is_str(conf->path, in_dir("sub/x.conf"), "path made absolute");
	is_str(conf->socket, in_dir("sub/w.sock"), "socket next to the file");
	is_str(conf->state_dir, in_dir("sub/../state"), "state_dir");
	is_str(TAILQ_FIRST(&conf->accounts)->secret_file,
	    in_dir("sub/s.secret"), "secret_file next to the file");
	config_free(conf);

	/* Errors name the file as it was given. */
	put_file("sub/y.conf", 0600, "bogus = 1\n");
	if (chdir(dir) == 0) {
		conf = load_path("sub/y.conf", &n);
		if (chdir(cwd) != 0)
			perror(cwd);
		ok(conf == NULL && strstr(errors, "sub/y.conf:1: ") != NULL,
		    "errors name the file as given");
	}
}

/*
 * libconfuse 3.3 miscounts lines after comments; config.c corrects it. Put
 * errors at known lines among comments of every form and check each line.
 */
static void
test_comment_lines(void)
{
	static const char *filler[] = {
		"# a comment\n",
		"## another # one\n",
		"// a C++ comment\n",
		"/* a C comment */\n",
		"/* a C comment\n   over\n   three lines */\n",
		"\n",
		"socket_mode = \"0660\" # trailing\n",
		"socket_mode = \"0660\" // trailing\n",
		"socket_mode = \"0660\" /* trailing */\n",
		"/* before */ socket_mode = \"0660\"\n",
		"socket = \"/run/a#b//c/*d*/\"\n",
		"socket = '/run/x#y'\n",
		"api_base = https://api.weixin.qq.com\n",
		"socket = \"/run/multi\\\nline\"\n",
	};
	struct config	*conf;
	char		 text[65536], *p;
	int		 want[64], nwant = 0, line = 1, i, j, n, all = 1;
	unsigned int	 seed = 12345;

	for (j = 0; j < 20; j++) {
		p = text;
		line = 1;
		nwant = 0;
		for (i = 0; i < 60; i++) {
			const char *f;

			seed = seed * 1103515245 + 12345;
			if ((seed >> 16) % 4 == 0 && nwant < 64) {
				/* An error right here. */
				want[nwant++] = line;
				f = "refresh_margin = 1\n";
			} else
				f = filler[(seed >> 16) % nitems(filler)];
			p += snprintf(p, text + sizeof text - p, "%s", f);
			for (; *f != '\0'; f++)
				line += (*f == '\n');
		}
		conf = load_text(text, &n);
		if (conf != NULL || n != nwant)
			all = 0;
		for (i = 0; i < nwant; i++) {
			if (!has_error(want[i], "refresh_margin"))
				all = 0;
		}
		if (!all) {
			char at[64 * 12] = "", *q = at;

			for (i = 0; i < nwant; i++)
				q += snprintf(q, at + sizeof at - q, " %d",
				    want[i]);
			diag("round %d: %d errors, want %d at:%s", j, n, nwant,
			    at);
			diag("%s", errors);
			config_free(conf);
			break;
		}
		config_free(conf);
	}
	ok(all, "error lines are right among comments");
}

/*
 * libconfuse ends silently at EOF inside a C comment, dropping the rest of the
 * file: that must be an error at the comment's line, and nothing else changes.
 */
static void
test_unterminated(void)
{
	struct config	*conf;
	int		 n;

	one_error("an unterminated comment", "socket_mode = \"0660\"\n"
	    "/* the rest is commented out\nmax_clients = 10\n", 2,
	    "never closed");
	one_error("an unterminated comment after a closed one",
	    "/* closed */\n# x /* not one\nmax_clients = 10 /* open\n\n", 3,
	    "never closed");
	one_error("an unclosed section", "max_clients = 10\naccount \"wx1\" {\n"
	    "  secret = \"s\"\n", 4, "end of the file");
	one_error("the end key is not a key of the file",
	    "wxpushd.end-of-file = 1\n", 1, "no such option");
	conf = load_text("/* a */ max_clients = 10 // c /* d\n/* e\n */\n", &n);
	ok(conf != NULL && n == 0 && conf->max_clients == 10,
	    "closed comments of every form still load");
	config_free(conf);
	conf = load_text("", &n);
	ok(conf != NULL && n == 0, "an empty file still loads");
	config_free(conf);
}

/*
 * Like sshd's StrictModes: the configuration file and secret files must not
 * be writable by group or others, nor owned by anyone but root or the
 * daemon's user (issue 13 item 6).
 */
static void
test_strict_modes(void)
{
	struct config	*conf;
	char		 sf[PATH_MAX], text[PATH_MAX + 128];
	int		 n;

	/* put_file's answer is static: keep a copy. */
	snprintf(sf, sizeof sf, "%s", put_file("strict.secret", 0600, "%s\n",
	    SECRET));
	snprintf(text, sizeof text, "account \"wx1\" {\n\tsecret_file = "
	    "\"%s\"\n}\n", sf);
	snprintf(conf_path, sizeof conf_path, "%s", put_file("t.conf", 0664,
	    "%s", text));
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && strstr(errors, "mode 0664") != NULL &&
	    strstr(errors, "chmod go-w") != NULL,
	    "a group-writable configuration file is refused, with the fix");
	config_free(conf);
	chmod(conf_path, 0646);
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && strstr(errors, "mode 0646") != NULL,
	    "a world-writable configuration file is refused");
	config_free(conf);
	chmod(conf_path, 0644);
	conf = load_path(conf_path, &n);
	ok(conf != NULL && n == 0, "0644 and owned by us: loads");
	config_free(conf);
	if (geteuid() != 0) {
		ok(1, "# SKIP owners need root");
		ok(1, "# SKIP owners need root");
		ok(1, "# SKIP owners need root");
		return;
	}
	if (chown(conf_path, 65534, 65534) != 0)
		perror("chown");
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && strstr(errors, "uid 65534") != NULL &&
	    strstr(errors, "chown root") != NULL,
	    "a configuration file owned by another user is refused");
	config_free(conf);
	if (chown(conf_path, 0, 0) != 0 || chown(sf, 65534, 65534) != 0)
		perror("chown");
	conf = load_path(conf_path, &n);
	ok(conf == NULL && n == 1 && has_error(2, "uid 65534") &&
	    strstr(errors, sf) != NULL,
	    "a secret file owned by another user is refused, at its line");
	if (conf != NULL || n != 1 || !has_error(2, "uid 65534"))
		printf("# %s", errors);
	config_free(conf);
	/* The daemon's user (user = ...) may own them. */
	snprintf(text + strlen(text), sizeof text - strlen(text),
	    "user = \"nobody\"\n");
	put_file("t.conf", 0644, "%s", text);
	conf = load_path(conf_path, &n);
	ok(conf != NULL && n == 0, "a secret file owned by the daemon's user loads");
	if (conf == NULL)
		printf("# %s", errors);
	config_free(conf);
}

/* The example configuration, once its paths are substituted, must load. */
static void
test_example(void)
{
	const char	*srcdir = getenv("WX_SRCDIR");
	char		 path[PATH_MAX], etc[PATH_MAX], *text, *out;
	const char	*var[] = { "@sysconfdir@", "@localstatedir@",
			    "@runstatedir@" };
	struct config	*conf;
	FILE		*f;
	size_t		 len, i, k, o;
	int		 n;

	snprintf(path, sizeof path, "%s/etc/wxpushd.conf.example.in",
	    srcdir != NULL ? srcdir : ".");
	if ((f = fopen(path, "r")) == NULL) {
		ok(1, "# skip example: %s not found (set WX_SRCDIR)", path);
		return;
	}
	text = calloc(1, 1 << 20);
	len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	text[len] = '\0';

	/* Substitute every placeholder with our directory. */
	out = calloc(1, 1 << 21);
	for (i = 0, o = 0; i < len;) {
		for (k = 0; k < nitems(var); k++) {
			if (strncmp(text + i, var[k], strlen(var[k])) == 0)
				break;
		}
		if (k < nitems(var)) {
			o += snprintf(out + o, (1 << 21) - o, "%s", dir);
			i += strlen(var[k]);
		} else
			out[o++] = text[i++];
	}
	ok(strchr(out, '@') == NULL, "no placeholder left");

	snprintf(etc, sizeof etc, "%s/wxpushd", dir);
	mkdir(etc, 0700);
	put_file("wxpushd/wx1234567890abcdef.secret", 0600, "%s\n", SECRET);
	snprintf(conf_path, sizeof conf_path, "%s", put_file(
	    "wxpushd/wxpushd.conf", 0644, "%s", out));
	conf = load_path(conf_path, &n);
	ok(conf != NULL && n == 0, "the example loads");
	if (conf == NULL)
		diag("%s", errors);
	else {
		ok(config_find_account(conf, "wx1234567890abcdef") != NULL,
		    "the example's account");
		ok(strncmp(conf->socket, dir, strlen(dir)) == 0,
		    "the example's socket is under the run directory");
	}
	config_free(conf);
	free(text);
	free(out);
}

int
main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_config.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	test_full();
	test_defaults();
	test_errors();
	test_accepted();
	test_relative();
	test_comment_lines();
	test_unterminated();
	test_strict_modes();
	test_example();
	free(errors);
	if (tap_failed == 0) {
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
	return (tap_done());
}
