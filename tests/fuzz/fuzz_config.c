/*
 * libFuzzer target for config.c: the input is a configuration file, written
 * to a private directory and loaded with config_load, as wxpushd -n does.
 */
#include "config.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wxpushd.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	fuzz_config_dir[] = "/tmp/fuzz_config.XXXXXX";
static char	fuzz_config_path[sizeof fuzz_config_dir + 32];

/* Remove the file and its directory at exit. */
static void
fuzz_config_cleanup(void)
{
	unlink(fuzz_config_path);
	rmdir(fuzz_config_dir);
}

/* Make the directory once; send the log (every error is logged) nowhere. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE	*null;

	(void)argc;
	(void)argv;
	if (mkdtemp(fuzz_config_dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(fuzz_config_path, sizeof fuzz_config_path,
	    "%s/wxpushd.conf", fuzz_config_dir);
	atexit(fuzz_config_cleanup);
	/*
	 * log.c writes to the stderr stream: point it at /dev/null but keep
	 * descriptor 2 for the sanitizers' and libFuzzer's reports.
	 */
	if ((null = fopen("/dev/null", "w")) == NULL) {
		perror("/dev/null");
		abort();
	}
	stderr = null;
	log_setlevel(LOG_LEVEL_ERR);
	return (0);
}

/* Write the input as the file (mode 0600) and load it. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config		*conf;
	struct account_conf	*acc;
	struct component_conf	*comp;
	size_t			 off;
	ssize_t			 n;
	int			 fd, nerrors = -1;

	fd = open(fuzz_config_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd == -1)
		abort();
	for (off = 0; off < size; off += (size_t)n) {
		if ((n = write(fd, data + off, size - off)) <= 0)
			abort();
	}
	close(fd);

	conf = config_load(fuzz_config_path, &nerrors);
	if ((conf == NULL) != (nerrors > 0) || nerrors < 0)
		abort();
	if (conf != NULL) {
		/* What the daemon relies on in a loaded configuration. */
		if (conf->path == NULL || conf->socket == NULL ||
		    conf->state_dir == NULL || conf->api_base == NULL ||
		    conf->socket[0] != '/' || conf->state_dir[0] != '/' ||
		    conf->max_clients_per_uid < 1 ||
		    conf->max_clients_per_uid > conf->max_clients ||
		    conf->send_timeout < conf->upstream_timeout)
			abort();
		TAILQ_FOREACH(acc, &conf->accounts, entry) {
			if (acc->secret == NULL || acc->secret[0] == '\0' ||
			    config_find_account(conf, acc->appid) != acc ||
			    config_find_component(conf, acc->appid) != NULL)
				abort();
		}
		TAILQ_FOREACH(comp, &conf->components, entry) {
			if (comp->secret == NULL || comp->token == NULL ||
			    config_find_component(conf, comp->appid) != comp ||
			    config_find_account(conf, comp->appid) != NULL)
				abort();
		}
		config_free(conf);
	}
	return (0);
}
