/*
 * The syntax of what WeChat and our peers hand us, checked in one place:
 * identifiers (appids, openids, template ids), scenes, tokens (which go into
 * URL queries), and printable words.
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"

/* How many bytes of s[0..len) from the start are A-Z a-z 0-9 _ -. */
size_t
valid_id_span(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_' || s[i] == '-'))
			break;
	}
	return (i);
}

/*
 * Whether s[0..len) is an identifier (an openid, a template id, a
 * reference): 1..max bytes of A-Z a-z 0-9 _ -.
 */
int
valid_id(const char *s, size_t len, size_t max)
{
	return (s != NULL && len != 0 && len <= max &&
	    valid_id_span(s, len) == len);
}

/* Whether s[0..len) is an appid: an identifier of 1..WX_APPID_MAX bytes. */
int
valid_appid(const char *s, size_t len)
{
	return (valid_id(s, len, WX_APPID_MAX));
}

/* A scene written as digits: its value 0..WX_SCENE_MAX, or -1. */
int
valid_scene(const char *s, size_t len)
{
	size_t	i;
	int	v = 0;

	if (s == NULL || len == 0 || len > WX_SCENE_DIGITS)
		return (-1);
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	return (v <= WX_SCENE_MAX ? v : -1);
}

/* Whether s[0..len) is 1..max bytes of printable ASCII without spaces. */
int
valid_word(const char *s, size_t len, size_t max)
{
	size_t i;

	if (s == NULL || len == 0 || len > max)
		return (0);
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e)
			return (0);
	}
	return (1);
}

/*
 * Whether s[0..len) can be a token, ticket, refresh token or code: a word of
 * at most WX_TOKEN_MAX bytes that can go into a URL query as it is (no '&'
 * or '#', which would end or split it).
 */
int
valid_token(const char *s, size_t len)
{
	if (!valid_word(s, len, WX_TOKEN_MAX))
		return (0);
	return (memchr(s, '&', len) == NULL && memchr(s, '#', len) == NULL);
}

/* valid_token for a C string (NULL is not a token). */
int
valid_token_str(const char *s)
{
	return (s != NULL && valid_token(s, strlen(s)));
}

/* valid_appid for a C string. */
int
valid_appid_str(const char *s)
{
	return (s != NULL && valid_appid(s, strlen(s)));
}
