/*
 * The values of a subscribe message's data, checked by their name's type
 * prefix (thing1, number01, character_string2...) as WeChat's documentation
 * defines each type (docs/protocol.md, "Data value types", has the table and
 * its source). A value WeChat would refuse with 47003 is refused before the
 * call. Names without a known prefix get only message.c's generic check.
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"


#define MV_NUM_CAP	100000000L	/* mv_num's values stop growing here */

enum mv_type { MV_THING, MV_NUMBER, MV_LETTER, MV_SYMBOL, MV_STRING,
	MV_TIME, MV_DATE, MV_AMOUNT, MV_PHONE, MV_CAR, MV_NAME, MV_PHRASE,
	MV_ENUM, MV_GENERIC };

static const struct {
	const char	*prefix;
	enum mv_type	 type;
} mv_types[] = {
	{ "thing", MV_THING }, { "number", MV_NUMBER },
	{ "letter", MV_LETTER }, { "symbol", MV_SYMBOL },
	{ "character_string", MV_STRING }, { "time", MV_TIME },
	{ "date", MV_DATE }, { "amount", MV_AMOUNT },
	{ "phone_number", MV_PHONE }, { "car_number", MV_CAR },
	{ "name", MV_NAME }, { "phrase", MV_PHRASE }, { "enum", MV_ENUM },
};

/* The type of a data name: its letters and underscores before the digits. */
static enum mv_type
message_value_type(const char *name, size_t len)
{
	size_t	i, n = len;

	while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9')
		n--;
	for (i = 0; i < sizeof mv_types / sizeof mv_types[0]; i++) {
		if (strlen(mv_types[i].prefix) == n &&
		    memcmp(mv_types[i].prefix, name, n) == 0)
			return (mv_types[i].type);
	}
	return (MV_GENERIC);
}

/* Decode validated UTF-8 s[0..n) into cp[], at most max; the count. */
static size_t
message_value_decode(const char *s, size_t n, uint32_t *cp, size_t max)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, k = 0, len, j;
	uint32_t		 c;

	while (i < n && k < max) {
		if (p[i] < 0x80) {
			c = p[i];
			len = 1;
		} else if (p[i] < 0xe0) {
			c = p[i] & 0x1f;
			len = 2;
		} else if (p[i] < 0xf0) {
			c = p[i] & 0x0f;
			len = 3;
		} else {
			c = p[i] & 0x07;
			len = 4;
		}
		for (j = 1; j < len; j++)
			c = (c << 6) | (p[i + j] & 0x3f);
		cp[k++] = c;
		i += len;
	}
	return (k);
}

/* A Chinese character (汉字): the CJK unified and compatibility ideographs. */
static int
mv_han(uint32_t c)
{
	return ((c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
	    (c >= 0x20000 && c <= 0x3134f) || (c >= 0xf900 && c <= 0xfaff));
}

static int
mv_digit(uint32_t c)
{
	return (c >= '0' && c <= '9');
}

static int
mv_letter(uint32_t c)
{
	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
}

/* A symbol: not a Chinese character, a Latin letter, a digit or a space. */
static int
mv_symbol(uint32_t c)
{
	return (!mv_han(c) && !mv_letter(c) && !mv_digit(c) && c != ' ');
}

/*
 * Read min..max digits at cp[*i]; their value (held at MV_NUM_CAP once past
 * it: callers only compare with small bounds), or -1.
 */
static long
mv_num(const uint32_t *cp, size_t n, size_t *i, size_t min, size_t max)
{
	size_t	k = 0;
	long	v = 0;

	while (*i < n && mv_digit(cp[*i]) && k < max) {
		if (v < MV_NUM_CAP)
			v = v * 10 + (long)(cp[*i] - '0');
		(*i)++;
		k++;
	}
	if (k < min || (*i < n && mv_digit(cp[*i])))
		return (-1);
	return (v);
}

/* A time of day at cp[*i]: H:MM or H:MM:SS, 24-hour; 0 or -1. */
static int
mv_clock(const uint32_t *cp, size_t n, size_t *i)
{
	long	h, m, sec;

	if ((h = mv_num(cp, n, i, 1, 2)) < 0 || h > 23 || *i >= n ||
	    cp[*i] != ':')
		return (-1);
	(*i)++;
	if ((m = mv_num(cp, n, i, 2, 2)) < 0 || m > 59)
		return (-1);
	if (*i < n && cp[*i] == ':') {
		(*i)++;
		if ((sec = mv_num(cp, n, i, 2, 2)) < 0 || sec > 59)
			return (-1);
	}
	return (0);
}

/*
 * A date at cp[*i]: y年m月d日, y年m月, m月d日, or joined by one of - / .:
 * y-m-d, y-m, m-d (y has 4 digits). 0 or -1.
 */
static int
mv_calendar(const uint32_t *cp, size_t n, size_t *i)
{
	size_t	 start = *i, k;
	long	 a, b, c;
	uint32_t sep;

	if ((a = mv_num(cp, n, i, 1, 4)) < 0)
		return (-1);
	k = *i - start;			/* digits of the first number */
	if (*i < n && cp[*i] == 0x5e74) {		/* 年 */
		(*i)++;
		if (k != 4 || (b = mv_num(cp, n, i, 1, 2)) < 1 || b > 12 ||
		    *i >= n || cp[*i] != 0x6708)		/* 月 */
			return (-1);
		(*i)++;
		if (*i < n && mv_digit(cp[*i])) {
			if ((c = mv_num(cp, n, i, 1, 2)) < 1 || c > 31 ||
			    *i >= n || cp[*i] != 0x65e5)	/* 日 */
				return (-1);
			(*i)++;
		}
		return (0);
	}
	if (*i < n && cp[*i] == 0x6708) {		/* m月d日 */
		(*i)++;
		if (k > 2 || a < 1 || a > 12 ||
		    (c = mv_num(cp, n, i, 1, 2)) < 1 || c > 31 || *i >= n ||
		    cp[*i] != 0x65e5)
			return (-1);
		(*i)++;
		return (0);
	}
	if (*i >= n || (cp[*i] != '-' && cp[*i] != '/' && cp[*i] != '.'))
		return (-1);
	sep = cp[(*i)++];
	if ((b = mv_num(cp, n, i, 1, 2)) < 0)
		return (-1);
	if (k != 4)			/* m-d */
		return (k <= 2 && a >= 1 && a <= 12 && b >= 1 && b <= 31 ?
		    0 : -1);
	if (b < 1 || b > 12)
		return (-1);
	if (*i < n && cp[*i] == sep) {	/* y-m-d */
		(*i)++;
		if ((c = mv_num(cp, n, i, 1, 2)) < 1 || c > 31)
			return (-1);
	}
	return (0);
}

/*
 * One point in time at cp[*i]: a date, a time, or a date, spaces and a time.
 * need is what the type requires (MV_TIME: a time; MV_DATE: a date), or
 * MV_GENERIC for either. 0 or -1.
 */
static int
mv_point(const uint32_t *cp, size_t n, size_t *i, enum mv_type need)
{
	size_t	save = *i;
	int	date = 0;

	if (mv_calendar(cp, n, i) == 0)
		date = 1;
	else
		*i = save;
	if (date) {
		save = *i;
		if (*i < n && cp[*i] == ' ') {
			while (*i < n && cp[*i] == ' ')
				(*i)++;
			if (mv_clock(cp, n, i) == 0)
				return (0);
		}
		*i = save;
		return (need == MV_TIME ? -1 : 0);
	}
	if (need == MV_DATE)
		return (-1);
	return (mv_clock(cp, n, i));
}

/* A time or date value: a point, or two joined by ~ (a period). */
static int
mv_when(const uint32_t *cp, size_t n, enum mv_type need)
{
	size_t	i = 0;

	if (mv_point(cp, n, &i, need) != 0)
		return (-1);
	if (i == n)
		return (0);
	while (i < n && cp[i] == ' ')
		i++;
	if (i >= n || cp[i] != '~')
		return (-1);
	i++;
	while (i < n && cp[i] == ' ')
		i++;
	if (mv_point(cp, n, &i, MV_GENERIC) != 0)
		return (-1);
	return (i == n ? 0 : -1);
}

/* An amount: an optional currency symbol, 1..10 digits, decimals, 元. */
static int
mv_amount(const uint32_t *cp, size_t n)
{
	size_t	i = 0;

	if (n > 0 && n > i && mv_symbol(cp[0]) && cp[0] != '.' &&
	    cp[0] != '-' && cp[0] != '+')
		i++;
	if (mv_num(cp, n, &i, 1, 10) < 0)
		return (-1);
	if (i < n && cp[i] == '.') {
		i++;
		if (mv_num(cp, n, &i, 1, 10) < 0)
			return (-1);
	}
	if (i < n && cp[i] == 0x5143)			/* 元 */
		i++;
	return (i == n ? 0 : -1);
}

/* A number: digits, with decimals if any. */
static int
mv_number(const uint32_t *cp, size_t n)
{
	size_t	i = 0;

	if (mv_num(cp, n, &i, 1, 32) < 0)
		return (-1);
	if (i < n && cp[i] == '.') {
		i++;
		if (mv_num(cp, n, &i, 1, 32) < 0)
			return (-1);
	}
	return (i == n ? 0 : -1);
}

/*
 * Why value s[0..n) (UTF-8 that message.c checked: not empty, no control
 * characters, at most MESSAGE_VALUE_MAX code points) breaks the rule of data
 * name[0..len)'s type prefix, or NULL if it does not. A leaf: it calls no other
 * file, and message.c turns the reason into the error.
 */
const char *
message_value_check(const char *name, size_t len, const char *s, size_t n)
{
	uint32_t	 cp[MESSAGE_VALUE_MAX];
	size_t		 i, han = 0;
	enum mv_type	 t = message_value_type(name, len);
	const char	*what = NULL;

	n = message_value_decode(s, n, cp, MESSAGE_VALUE_MAX);
	for (i = 0; i < n; i++)
		han += mv_han(cp[i]);

	switch (t) {
	case MV_THING:
		if (n > 20)
			what = "a thing is at most 20 characters";
		break;
	case MV_NUMBER:
		if (n > 32 || mv_number(cp, n) != 0)
			what = "a number is at most 32 digits, with decimals "
			    "if any";
		break;
	case MV_LETTER:
		for (i = 0; i < n && mv_letter(cp[i]); i++)
			/* nothing */;
		if (n > 32 || i < n)
			what = "a letter value is at most 32 letters A-Z a-z";
		break;
	case MV_SYMBOL:
		for (i = 0; i < n && mv_symbol(cp[i]); i++)
			/* nothing */;
		if (n > 5 || i < n)
			what = "a symbol value is at most 5 symbols (no "
			    "letters, digits, Chinese characters or spaces)";
		break;
	case MV_STRING:
		if (n > 32 || han > 0)
			what = "a character_string is at most 32 digits, "
			    "letters or symbols";
		break;
	case MV_TIME:
		if (mv_when(cp, n, MV_TIME) != 0)
			what = "a time is a 24-hour time such as 15:01 or "
			    "15:01:59, optionally after a date, or two joined "
			    "by ~";
		break;
	case MV_DATE:
		if (mv_when(cp, n, MV_DATE) != 0)
			what = "a date is y-m-d, y-m or m-d (joined by - / "
			    "or .) or the same with the characters for year, "
			    "month and day, optionally with a 24-hour time, or "
			    "two joined by ~";
		break;
	case MV_AMOUNT:
		if (mv_amount(cp, n) != 0)
			what = "an amount is a currency symbol, at most 10 "
			    "digits, decimals if any, and optionally the "
			    "character for yuan";
		break;
	case MV_PHONE:
		for (i = 0; i < n && !mv_han(cp[i]) && !mv_letter(cp[i]); i++)
			/* nothing */;
		if (n > 17 || i < n)
			what = "a phone_number is at most 17 digits and "
			    "symbols";
		break;
	case MV_CAR:
		for (i = 0; i < n; i++) {
			if (mv_letter(cp[i]) || mv_digit(cp[i]))
				continue;
			if (mv_han(cp[i]) && (i == 0 || i == n - 1))
				continue;
			break;
		}
		if (n > 8 || i < n)
			what = "a car_number is at most 8 characters: letters "
			    "and digits, Chinese characters only first and "
			    "last";
		break;
	case MV_NAME:
		for (i = 0; i < n && !mv_digit(cp[i]); i++)
			/* nothing */;
		if (i < n || (han > 0 && n > 10) || n > 20)
			what = "a name is at most 10 characters if it has a "
			    "Chinese character, else at most 20 letters or "
			    "symbols";
		break;
	case MV_PHRASE:
		if (n > 5 || han != n)
			what = "a phrase is at most 5 Chinese characters";
		break;
	case MV_ENUM:
	case MV_GENERIC:
		break;
	}
	return (what);
}
