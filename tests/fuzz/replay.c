/*
 * Replays a fuzz target's seed corpus without libFuzzer (Knot DNS style), so
 * every `make check` runs each corpus file through the real code. The corpus is
 * $WX_SRCDIR/tests/fuzz/<program>.in/, or the directories given as arguments.
 * Prints TAP: one line per file; a crash fails the test by itself.
 */
#include "config.h"

#include <sys/stat.h>

#include <dirent.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
/* Optional, as with libFuzzer: called once before the first input. */
int	LLVMFuzzerInitialize(int *, char ***) __attribute__((weak));

static int
replay_file(const char *path, int n)
{
	FILE *f;
	struct stat st;
	uint8_t *buf;
	size_t len;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) == -1) {
		printf("not ok %d - %s: cannot read\n", n, path);
		if (f != NULL)
			fclose(f);
		return (1);
	}
	len = (size_t)st.st_size;
	buf = malloc(len == 0 ? 1 : len);
	if (buf == NULL || fread(buf, 1, len, f) != len) {
		printf("not ok %d - %s: cannot read\n", n, path);
		free(buf);
		fclose(f);
		return (1);
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok %d - %s\n", n, path);
	fflush(stdout);
	return (0);
}

static int
replay_dir(const char *dir, int *n)
{
	struct dirent **names;
	char path[4096];
	int i, count, failed = 0;

	if ((count = scandir(dir, &names, NULL, alphasort)) == -1) {
		printf("not ok %d - corpus %s: cannot open\n", ++*n, dir);
		return (1);
	}
	for (i = 0; i < count; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
			failed += replay_file(path, ++*n);
		}
		free(names[i]);
	}
	free(names);
	return (failed);
}

int
main(int argc, char **argv)
{
	const char *src = getenv("WX_SRCDIR");
	char dir[4096], *prog;
	int i, n = 0, failed = 0;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			failed += replay_dir(argv[i], &n);
	} else {
		prog = basename(argv[0]);
		if (strncmp(prog, "lt-", 3) == 0)
			prog += 3;
		snprintf(dir, sizeof dir, "%s/tests/fuzz/%s.in", src ? src : ".",
		    prog);
		failed += replay_dir(dir, &n);
	}
	printf("1..%d\n", n);
	return (failed != 0);
}
