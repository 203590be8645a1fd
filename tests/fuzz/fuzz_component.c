/*
 * libFuzzer target for component events (ingress.c): the signature check, the
 * outer XML, the decryption and the inner XML, through ingress_event_open as
 * both the RPC method and the HTTP endpoint use it. The first byte, modulo 6,
 * says what the rest is:
 * 0, 1: msg_signature (40 bytes), then the POSTed body as it is;
 * 2, 3: the decrypted event, encrypted (3: with previous_aes_key), wrapped
 *    and signed here, so the inner XML is always reached;
 * 4, 5: the <Encrypt> text, wrapped and signed here, so the decryption's
 *    refusals are reached.
 * Timestamp and nonce are those of vector A in wechat-api.md.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"
#include "wxcrypt.h"

/* Vector A of wechat-api.md, and a second key for the rotation. */
#define FUZZ_COMPONENT_APPID	"wxb11529c136998cb6"
#define FUZZ_COMPONENT_TOKEN	"pamtest"
#define FUZZ_COMPONENT_KEY	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define FUZZ_COMPONENT_PREVKEY	"ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlk9"
#define FUZZ_COMPONENT_TS	"1409304348"
#define FUZZ_COMPONENT_NONCE	"xxxxxx"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether s[0..len) is printable ASCII without spaces. */
static int
fuzz_component_word(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (s[i] <= 0x20 || s[i] > 0x7e)
			return (0);
	}
	return (1);
}

/* Open body for cc with signature sig; ours: we encrypted and signed it. */
static void
fuzz_component_open(const struct component_conf *cc, const char *sig,
    const char *body, size_t len, int ours)
{
	struct ingress_event	 ev;
	const char		*field = NULL;
	char			*cause = NULL, appid[WX_APPID_MAX + 1];

	if (ingress_outer_appid(body, len, appid, sizeof appid, &cause) == 0) {
		if (cause != NULL || !valid_appid(appid, strlen(appid)))
			abort();
	} else if (cause == NULL)
		abort();
	free(cause);
	cause = NULL;

	if (ingress_event_open(cc, sig, FUZZ_COMPONENT_TS,
	    FUZZ_COMPONENT_NONCE, body, len, &ev, &field, &cause) == 0) {
		if (cause != NULL || ev.info_type[0] == '\0' ||
		    strlen(ev.info_type) > INGRESS_INFO_TYPE_MAX ||
		    (ev.secret != NULL && (ev.secretlen == 0 ||
		    ev.secretlen > WX_TOKEN_MAX ||
		    strlen(ev.secret) != ev.secretlen ||
		    !fuzz_component_word(ev.secret, ev.secretlen))) ||
		    (ev.authorizer_appid[0] != '\0' && !valid_appid(
		    ev.authorizer_appid, strlen(ev.authorizer_appid))))
			abort();
		ingress_event_clear(&ev);
		if (ev.secret != NULL)
			abort();
		return;
	}
	if (cause == NULL || field == NULL || ev.secret != NULL)
		abort();
	if (strcmp(field, "body") != 0 && strcmp(field, "msg_signature") != 0)
		abort();
	/* Our own ciphertext, signed here: only the event itself can fail. */
	if (ours && (strcmp(field, "body") != 0 ||
	    strncmp(cause, "the decrypted event", 19) != 0))
		abort();
	free(cause);
}

/* Wrap enc in an outer body, sign it, and open it. */
static void
fuzz_component_wrapped(const struct component_conf *cc, const char *enc,
    size_t enclen, int ours)
{
	char	*body, *encs, sig[WXCRYPT_SIG_LEN + 1];
	int	 n;

	encs = xmalloc(enclen + 1);	/* the data is not NUL-terminated */
	memcpy(encs, enc, enclen);
	encs[enclen] = '\0';
	n = xasprintf(&body, "<xml><ToUserName><![CDATA[%s]]></ToUserName>"
	    "<AppId><![CDATA[%s]]></AppId><Encrypt><![CDATA[%s]]></Encrypt>"
	    "</xml>", FUZZ_COMPONENT_APPID, FUZZ_COMPONENT_APPID, encs);
	wxcrypt_signature(FUZZ_COMPONENT_TOKEN, FUZZ_COMPONENT_TS,
	    FUZZ_COMPONENT_NONCE, encs, sig);
	fuzz_component_open(cc, sig, body, (size_t)n, ours);
	free(body);
	free(encs);
}

/* Decode the mode byte and run the rest through the chosen way in. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct component_conf	 cc;
	static int			 ready;
	static const unsigned char	 random16[16] = "0123456789abcdef";
	const unsigned char		*key;
	char				*ct, sig[WXCRYPT_SIG_LEN + 1];
	int				 mode;

	if (!ready) {
		cc.appid = xstrdup(FUZZ_COMPONENT_APPID);
		cc.token = xstrdup(FUZZ_COMPONENT_TOKEN);
		if (wxcrypt_key_decode(FUZZ_COMPONENT_KEY, cc.aes_key) != 0 ||
		    wxcrypt_key_decode(FUZZ_COMPONENT_PREVKEY,
		    cc.previous_aes_key) != 0)
			abort();
		cc.has_previous_key = 1;
		log_setlevel(LOG_LEVEL_WARN);
		ready = 1;
	}
	if (size < 1 || size > INGRESS_BODY_MAX)
		return (0);
	mode = data[0] % 6;
	data++;
	size--;
	key = (mode & 1) ? cc.previous_aes_key : cc.aes_key;
	switch (mode / 2) {
	case 0:
		if (size < WXCRYPT_SIG_LEN)
			return (0);
		memcpy(sig, data, WXCRYPT_SIG_LEN);
		sig[WXCRYPT_SIG_LEN] = '\0';
		fuzz_component_open(&cc, sig, (const char *)data +
		    WXCRYPT_SIG_LEN, size - WXCRYPT_SIG_LEN, 0);
		break;
	case 1:
		ct = wxcrypt_encrypt(key, FUZZ_COMPONENT_APPID,
		    (const char *)data, size, random16);
		if (ct == NULL)
			abort();
		fuzz_component_wrapped(&cc, ct, strlen(ct), 1);
		free(ct);
		break;
	case 2:
		fuzz_component_wrapped(&cc, (const char *)data, size, 0);
		break;
	}
	return (0);
}
