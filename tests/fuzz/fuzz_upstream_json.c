/*
 * libFuzzer target for WeChat's answers: the input is an HTTP 200 body, parsed
 * as upstream.c does, then read as a token endpoint's reply (cred.c) and as
 * a send's reply (send.c).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wxpushd.h"

#define FUZZ_JSON_MAX	(1024 * 1024)	/* upstream.c's body cap */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Read r as each token endpoint's reply; a token must be fit for a URL. */
static void
fuzz_upstream_token(const struct upstream_reply *r)
{
	static const char	*fields[] = { "access_token",
	    "component_access_token", "authorizer_access_token" };
	const char		*token, *why;
	int			 expires_in;
	long			 errcode;
	size_t			 i, j, len;
	unsigned char		 c;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		token = why = NULL;
		expires_in = 0;
		errcode = -12345;
		if (cred_parse_token(r, fields[i], &token, &expires_in,
		    &errcode, &why) != 0) {
			if (why == NULL || token != NULL)
				abort();
			if (errcode != 0 && (!r->ok || strcmp(why,
			    "WeChat refused") != 0))
				abort();
			continue;
		}
		if (token == NULL || errcode != 0 || expires_in < 10 ||
		    expires_in > 7 * 86400)
			abort();
		/* Whole (no NUL inside), bounded, and safe in a query string. */
		len = strlen(token);
		if (len == 0 || len > WX_TOKEN_MAX || len != json_string_length(
		    json_object_get(r->json, fields[i])))
			abort();
		for (j = 0; j < len; j++) {
			c = (unsigned char)token[j];
			if (c <= 0x20 || c >= 0x7f || c == '&' || c == '#')
				abort();
		}
	}
}

/* Read r as the answer to a send. */
static void
fuzz_upstream_send(const struct upstream_reply *r)
{
	char	 errmsg[256];
	long	 errcode;
	size_t	 len, i, cont;
	int	 rc;

	memset(errmsg, 'x', sizeof errmsg);
	rc = wxapi_reply_parse(r->json, &errcode, errmsg, sizeof errmsg);
	len = strnlen(errmsg, sizeof errmsg);
	if (len == sizeof errmsg)
		abort();
	if (rc == -1 && errcode != 0)
		abort();
	/* A cut errmsg still ends on a whole UTF-8 character. */
	for (i = len; i > 0; i--) {
		if (((unsigned char)errmsg[i - 1] & 0xc0) != 0x80)
			break;
	}
	if (i > 0) {
		cont = len - i;
		if (((unsigned char)errmsg[i - 1] & 0xe0) == 0xc0 && cont != 1)
			abort();
		if (((unsigned char)errmsg[i - 1] & 0xf0) == 0xe0 && cont != 2)
			abort();
		if (((unsigned char)errmsg[i - 1] & 0xf8) == 0xf0 && cont != 3)
			abort();
		if ((unsigned char)errmsg[i - 1] < 0x80 && cont != 0)
			abort();
	} else if (len != 0)
		abort();
}

/* Parse the input as upstream.c parses a 200 body, then interpret it. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct upstream_reply	 r;
	json_error_t		 jerr;
	json_t			*json;

	if (size > FUZZ_JSON_MAX)
		return (0);
	memset(&r, 0, sizeof r);
	r.http_status = 200;
	json = json_loadb(size != 0 ? (const char *)data : "", size,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (json == NULL)
		r.error = "bad json";
	else if (!json_is_object(json))
		r.error = "json not an object";
	else {
		r.ok = 1;
		r.json = json;
	}
	fuzz_upstream_token(&r);
	if (r.ok)
		fuzz_upstream_send(&r);
	json_decref(json);
	return (0);
}
