/*
 * Unit tests for opening component events (ingress.c): the signature, the
 * decryption with the current and previous keys, and the XML, against forged,
 * truncated, oversized, hostile and wrongly keyed bodies.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "wxpushd.h"
#include "wxcrypt.h"
#include "tap.h"

#define TEST_APPID	"wxcomponent0000001"
#define TEST_TOKEN	"callbackToken01"
#define TEST_KEY	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define TEST_OLD_KEY	"ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
#define TEST_TS		"1714037059"
#define TEST_NONCE	"486452656"

static struct component_conf	test_cc;

/* An outer body around enc, and its msg_signature. */
static char *
test_wrap(const char *appid, const char *enc, char *sig)
{
	char *body;

	wxcrypt_signature(TEST_TOKEN, TEST_TS, TEST_NONCE, enc, sig);
	xasprintf(&body, "<xml><AppId><![CDATA[%s]]></AppId>"
	    "<Encrypt><![CDATA[%s]]></Encrypt></xml>", appid, enc);
	return (body);
}

/* Encrypt xml with encoding_key for appid; wrap and sign it. */
static char *
test_event(const char *encoding_key, const char *appid, const char *xml,
    char *sig)
{
	unsigned char key[WXCRYPT_KEY_LEN];
	char *enc, *body;

	if (wxcrypt_key_decode(encoding_key, key) != 0)
		abort();
	enc = wxcrypt_encrypt(key, appid, xml, strlen(xml), NULL);
	body = test_wrap(TEST_APPID, enc, sig);
	free(enc);
	return (body);
}

/* Append s to buf of size bytes. */
static void
test_cat(char *buf, const char *s, size_t size)
{
	size_t n = strlen(buf);

	snprintf(buf + n, size - n, "%s", s);
}

static void
test_cpy(char *buf, const char *s, size_t size)
{
	snprintf(buf, size, "%s", s);
}

/* Open body; returns 0 or -1 and leaves the cause for the caller to check. */
static int
test_open(const char *body, size_t len, const char *sig,
    struct ingress_event *ev, const char **field, char **cause)
{
	return (ingress_event_open(&test_cc, sig, TEST_TS, TEST_NONCE, body,
	    len, ev, field, cause));
}

/* Expect body to be refused with a cause containing want (and field). */
static void
test_refused(const char *what, const char *body, size_t len, const char *sig,
    const char *want_field, const char *want)
{
	struct ingress_event ev;
	const char *field = NULL;
	char *cause = NULL;
	int r;

	r = test_open(body, len, sig, &ev, &field, &cause);
	ok(r == -1 && cause != NULL && strstr(cause, want) != NULL &&
	    field != NULL && strcmp(field, want_field) == 0 &&
	    ev.secret == NULL, "%s is refused (%s)", what,
	    cause != NULL ? cause : "accepted");
	free(cause);
	ingress_event_clear(&ev);
}

static const char *test_ticket_xml =
    "<xml><AppId><![CDATA[" TEST_APPID "]]></AppId>"
    "<CreateTime>1413192605</CreateTime>"
    "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
    "<ComponentVerifyTicket><![CDATA[ticket@@@abcDEF-123_x]]>"
    "</ComponentVerifyTicket></xml>";

static void
test_good(void)
{
	struct ingress_event ev;
	const char *field;
	char sig[WXCRYPT_SIG_LEN + 1], *body, *cause = NULL;
	int r;

	body = test_event(TEST_KEY, TEST_APPID, test_ticket_xml, sig);
	r = test_open(body, strlen(body), sig, &ev, &field, &cause);
	ok(r == 0, "a ticket event opens (%s)", cause ? cause : "ok");
	is_str(ev.info_type, "component_verify_ticket", "its InfoType");
	is_str(ev.secret, "ticket@@@abcDEF-123_x", "its ticket");
	is_str(ev.authorizer_appid, "", "no authorizer");
	ingress_event_clear(&ev);
	ok(ev.secret == NULL, "clearing frees the ticket");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><CreateTime>1</CreateTime><InfoType>authorized</InfoType>"
	    "<AuthorizerAppid>wxauthorizer000001</AuthorizerAppid>"
	    "<AuthorizationCode>queryauthcode@@@XYZ</AuthorizationCode>"
	    "<AuthorizationCodeExpiredTime>1413196205"
	    "</AuthorizationCodeExpiredTime><PreAuthCode>preauthcode@@@1"
	    "</PreAuthCode></xml>", sig);
	r = test_open(body, strlen(body), sig, &ev, &field, &cause);
	ok(r == 0 && strcmp(ev.info_type, "authorized") == 0 &&
	    strcmp(ev.authorizer_appid, "wxauthorizer000001") == 0 &&
	    strcmp(ev.secret, "queryauthcode@@@XYZ") == 0,
	    "an authorized event opens with its code and authorizer");
	ingress_event_clear(&ev);
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml>\n  <AppId>" TEST_APPID
	    "</AppId>\n  <CreateTime>1413192605</CreateTime>\n"
	    "  <InfoType>unauthorized</InfoType>\n  <AuthorizerAppid>"
	    "wxauthorizer000001</AuthorizerAppid>\n</xml>\n", sig);
	r = test_open(body, strlen(body), sig, &ev, &field, &cause);
	ok(r == 0 && strcmp(ev.info_type, "unauthorized") == 0 &&
	    ev.secret == NULL, "an unauthorized event opens (indented XML)");
	ok(ev.create_time == 1413192605, "with its CreateTime");
	ingress_event_clear(&ev);
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>notify_third_fasteregister</InfoType><info>"
	    "<name>x</name></info></xml>", sig);
	r = test_open(body, strlen(body), sig, &ev, &field, &cause);
	ok(r == 0 && strcmp(ev.info_type, "notify_third_fasteregister") == 0,
	    "an event of another InfoType opens (nested elements ignored)");
	ingress_event_clear(&ev);
	free(body);
}

static void
test_keys(void)
{
	struct ingress_event ev;
	const char *field;
	char sig[WXCRYPT_SIG_LEN + 1], *body, *cause = NULL;
	int r;

	body = test_event(TEST_OLD_KEY, TEST_APPID, test_ticket_xml, sig);
	test_refused("an event under an unknown key", body, strlen(body), sig,
	    "body", "does not decrypt with aes_key");
	test_cc.has_previous_key = 1;
	r = test_open(body, strlen(body), sig, &ev, &field, &cause);
	ok(r == 0 && strcmp(ev.secret, "ticket@@@abcDEF-123_x") == 0,
	    "previous_aes_key opens an event under the old key (%s)",
	    cause ? cause : "ok");
	ingress_event_clear(&ev);
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, test_ticket_xml, sig);
	r = test_open(body, strlen(body), sig, &ev, &field, &cause);
	ok(r == 0, "the current key still works with a previous one set");
	ingress_event_clear(&ev);
	free(body);
	test_cc.has_previous_key = 0;
}

static void
test_forged(void)
{
	char sig[WXCRYPT_SIG_LEN + 1], bad[WXCRYPT_SIG_LEN + 1], *body;

	body = test_event(TEST_KEY, TEST_APPID, test_ticket_xml, sig);
	memcpy(bad, sig, sizeof bad);
	bad[0] = bad[0] == 'a' ? 'b' : 'a';
	test_refused("a bad msg_signature", body, strlen(body), bad,
	    "msg_signature", "msg_signature does not match");
	bad[WXCRYPT_SIG_LEN - 1] = '\0';
	test_refused("a short msg_signature", body, strlen(body), bad,
	    "msg_signature", "msg_signature does not match");
	test_refused("an empty msg_signature", body, strlen(body), "",
	    "msg_signature", "msg_signature does not match");
	free(body);

	/* Signed with another token. */
	body = test_event(TEST_KEY, TEST_APPID, test_ticket_xml, sig);
	{
		char *enc = strstr(body, "<Encrypt><![CDATA[") + 18;
		char *end = strstr(enc, "]]>"), save = *end;

		*end = '\0';
		wxcrypt_signature("otherToken", TEST_TS, TEST_NONCE, enc, bad);
		*end = save;
	}
	test_refused("an event signed with another token", body, strlen(body),
	    bad, "msg_signature", "msg_signature does not match");
	free(body);
}

static void
test_appids(void)
{
	char sig[WXCRYPT_SIG_LEN + 1], *body, *xml;
	unsigned char key[WXCRYPT_KEY_LEN];
	char *enc;

	/* Inner AppId of another component. */
	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>wxother</AppId>"
	    "<InfoType>component_verify_ticket</InfoType>"
	    "<ComponentVerifyTicket>t</ComponentVerifyTicket></xml>", sig);
	test_refused("an inner AppId of another component", body, strlen(body),
	    sig, "body", "is not this component");
	free(body);

	/* Encrypted for another appid (the trailing appid). */
	body = test_event(TEST_KEY, "wxother", test_ticket_xml, sig);
	test_refused("a ciphertext for another appid", body, strlen(body), sig,
	    "body", "appid mismatch");
	free(body);

	/* Outer AppId of another component. */
	wxcrypt_key_decode(TEST_KEY, key);
	enc = wxcrypt_encrypt(key, TEST_APPID, test_ticket_xml,
	    strlen(test_ticket_xml), NULL);
	body = test_wrap("wxother", enc, sig);
	test_refused("an outer AppId of another component", body, strlen(body),
	    sig, "body", "<AppId> is not this component");
	free(body);
	free(enc);

	/* No inner AppId. */
	xml = "<xml><InfoType>component_verify_ticket</InfoType>"
	    "<ComponentVerifyTicket>t</ComponentVerifyTicket></xml>";
	body = test_event(TEST_KEY, TEST_APPID, xml, sig);
	test_refused("an event without AppId", body, strlen(body), sig, "body",
	    "has no <AppId>");
	free(body);
}

/* Flip ciphertext bits so that the last plaintext byte (the pad) becomes 0. */
static char *
test_bad_padding(char *sig)
{
	unsigned char key[WXCRYPT_KEY_LEN], ct[1024];
	char *enc, *body, b64[2048];
	size_t len, ctlen, ptlen;
	unsigned int pad;
	int n;

	wxcrypt_key_decode(TEST_KEY, key);
	enc = wxcrypt_encrypt(key, TEST_APPID, test_ticket_xml,
	    strlen(test_ticket_xml), NULL);
	len = strlen(enc);
	n = EVP_DecodeBlock(ct, (unsigned char *)enc, (int)len);
	ctlen = (size_t)n - (enc[len - 1] == '=') - (enc[len - 2] == '=');
	ptlen = 20 + strlen(test_ticket_xml) + strlen(TEST_APPID);
	pad = 32 - ptlen % 32;
	ct[ctlen - 17] ^= pad;	/* CBC: flips the same bit of the last block */
	EVP_EncodeBlock((unsigned char *)b64, ct, (int)ctlen);
	free(enc);
	body = test_wrap(TEST_APPID, b64, sig);
	return (body);
}

static void
test_crypto(void)
{
	char sig[WXCRYPT_SIG_LEN + 1], *body;

	body = test_bad_padding(sig);
	test_refused("bad padding (signed, so no oracle)", body, strlen(body),
	    sig, "body", "bad padding");
	free(body);

	body = test_wrap(TEST_APPID, "!!!!not*base64", sig);
	test_refused("bad base64", body, strlen(body), sig, "body",
	    "bad base64");
	free(body);

	body = test_wrap(TEST_APPID, "QUJD", sig);
	test_refused("a too short ciphertext", body, strlen(body), sig, "body",
	    "bad length");
	free(body);
}

static void
test_xml(void)
{
	char sig[WXCRYPT_SIG_LEN + 1], *body, *big, *xml;
	const char *bomb;
	size_t i;

	bomb = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY a \"aaaaaaaaaa\">"
	    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
	    "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
	    "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]>"
	    "<xml><AppId>&d;</AppId><Encrypt>x</Encrypt></xml>";
	test_refused("an entity bomb in the body", bomb, strlen(bomb), "x",
	    "body", "DOCTYPE is not allowed");

	body = test_event(TEST_KEY, TEST_APPID, "<!DOCTYPE xml ["
	    "<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;\">]>"
	    "<xml><AppId>" TEST_APPID "</AppId><InfoType>&b;</InfoType></xml>",
	    sig);
	test_refused("an entity bomb in the signed, encrypted event", body,
	    strlen(body), sig, "body", "DOCTYPE is not allowed");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<!DOCTYPE xml SYSTEM "
	    "\"file:///etc/passwd\"><xml><AppId>" TEST_APPID "</AppId></xml>",
	    sig);
	test_refused("an external DTD", body, strlen(body), sig, "body",
	    "DOCTYPE is not allowed");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>&ext;</InfoType></xml>", sig);
	test_refused("an undeclared entity", body, strlen(body), sig, "body",
	    "not well-formed XML");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, test_ticket_xml, sig);
	test_refused("a truncated body", body, strlen(body) / 2, sig, "body",
	    "not well-formed XML");
	test_refused("a body cut before </xml>", body, strlen(body) - 3, sig,
	    "body", "not well-formed XML");
	test_refused("an empty body", body, 0, sig, "body", "empty");
	free(body);

	xml = xstrdup(test_ticket_xml);
	xml[strlen(xml) - 20] = '\0';
	body = test_event(TEST_KEY, TEST_APPID, xml, sig);
	test_refused("a truncated encrypted event", body, strlen(body), sig,
	    "body", "the decrypted event: not well-formed XML");
	free(body);
	free(xml);

	big = xmalloc(INGRESS_BODY_MAX + 2);
	memset(big, 'A', INGRESS_BODY_MAX + 1);
	memcpy(big, "<xml><Encrypt>", 14);
	big[INGRESS_BODY_MAX + 1] = '\0';
	test_refused("an oversized body", big, INGRESS_BODY_MAX + 1, sig,
	    "body", "longer than");
	free(big);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>component_verify_ticket</InfoType><InfoType>x"
	    "</InfoType></xml>", sig);
	test_refused("a duplicate element", body, strlen(body), sig, "body",
	    "<InfoType> appears twice");
	free(body);

	xml = xmalloc(4096);
	test_cpy(xml, "<xml><AppId>" TEST_APPID "</AppId>", 4096);
	for (i = 0; i < 70; i++)
		test_cat(xml, "<x/>", 4096);
	test_cat(xml, "</xml>", 4096);
	body = test_event(TEST_KEY, TEST_APPID, xml, sig);
	test_refused("too many elements", body, strlen(body), sig, "body",
	    "too many elements");
	free(body);

	test_cpy(xml, "<xml>", 4096);
	for (i = 0; i < 10; i++)
		test_cat(xml, "<a>", 4096);
	for (i = 0; i < 10; i++)
		test_cat(xml, "</a>", 4096);
	test_cat(xml, "</xml>", 4096);
	body = test_event(TEST_KEY, TEST_APPID, xml, sig);
	test_refused("too deep nesting", body, strlen(body), sig, "body",
	    "nested too deep");
	free(body);

	test_cpy(xml, "<xml><AppId>" TEST_APPID "</AppId><InfoType>", 4096);
	for (i = 0; i < 70; i++)
		test_cat(xml, "x", 4096);
	test_cat(xml, "</InfoType></xml>", 4096);
	body = test_event(TEST_KEY, TEST_APPID, xml, sig);
	test_refused("a too long InfoType", body, strlen(body), sig, "body",
	    "<InfoType> is longer than 63 bytes");
	free(body);
	free(xml);

	body = test_event(TEST_KEY, TEST_APPID, "<root><AppId>" TEST_APPID
	    "</AppId></root>", sig);
	test_refused("a root other than <xml>", body, strlen(body), sig, "body",
	    "root element is not <xml>");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>authorized</InfoType><AuthorizerAppid>wxa"
	    "</AuthorizerAppid></xml>", sig);
	test_refused("authorized without a code", body, strlen(body), sig,
	    "body", "no valid <AuthorizationCode>");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>unauthorized</InfoType></xml>", sig);
	test_refused("unauthorized without an authorizer", body, strlen(body),
	    sig, "body", "no <AuthorizerAppid>");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>unauthorized</InfoType><AuthorizerAppid>wx a"
	    "</AuthorizerAppid></xml>", sig);
	test_refused("an AuthorizerAppid with a space", body, strlen(body),
	    sig, "body", "is not an appid");
	free(body);

	/* Authorization changes and tickets are applied in CreateTime order. */
	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>unauthorized</InfoType><AuthorizerAppid>wxa"
	    "</AuthorizerAppid></xml>", sig);
	test_refused("unauthorized without a CreateTime", body, strlen(body),
	    sig, "body", "no <CreateTime>");
	free(body);
	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>component_verify_ticket</InfoType>"
	    "<ComponentVerifyTicket>t</ComponentVerifyTicket></xml>", sig);
	test_refused("a ticket without a CreateTime", body, strlen(body),
	    sig, "body", "no <CreateTime>");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>component_verify_ticket</InfoType>"
	    "<ComponentVerifyTicket></ComponentVerifyTicket></xml>", sig);
	test_refused("an empty ticket", body, strlen(body), sig, "body",
	    "no valid <ComponentVerifyTicket>");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, "<xml><AppId>" TEST_APPID
	    "</AppId><InfoType>a b</InfoType></xml>", sig);
	test_refused("an InfoType that is not a word", body, strlen(body), sig,
	    "body", "<InfoType> is not a word");
	free(body);

	body = test_event(TEST_KEY, TEST_APPID, test_ticket_xml, sig);
	body = realloc(body, strlen(body) + 16);
	strcat(body, "<junk/>");
	test_refused("junk after the document", body, strlen(body), sig,
	    "body", "not well-formed XML");
	body[10] = '\0';
	test_refused("a NUL byte in the body", body, strlen(body + 11) + 11,
	    sig, "body", "not well-formed XML");
	free(body);

	body = xstrdup("<xml><AppId>" TEST_APPID "</AppId></xml>");
	test_refused("a body without Encrypt", body, strlen(body), sig, "body",
	    "has no <Encrypt>");
	free(body);
}

static void
test_outer(void)
{
	char appid[WX_APPID_MAX + 1], *cause = NULL;
	const char *b;

	b = "<xml><ToUserName>x</ToUserName><AppId><![CDATA[" TEST_APPID
	    "]]></AppId><Encrypt>x</Encrypt></xml>";
	ok(ingress_outer_appid(b, strlen(b), appid, sizeof appid,
	    &cause) == 0 && strcmp(appid, TEST_APPID) == 0,
	    "the outer AppId is found");
	b = "<xml><Encrypt>x</Encrypt></xml>";
	ok(ingress_outer_appid(b, strlen(b), appid, sizeof appid,
	    &cause) == -1 && strstr(cause, "no <AppId>") != NULL,
	    "a body without AppId is refused");
	free(cause);
	b = "<xml><AppId>wx&lt;1</AppId><Encrypt>x</Encrypt></xml>";
	ok(ingress_outer_appid(b, strlen(b), appid, sizeof appid,
	    &cause) == -1 && strstr(cause, "not an appid") != NULL,
	    "an AppId that is not an appid is refused");
	free(cause);
}

int
main(void)
{
	log_init("test_component", 0, LOG_LEVEL_WARN);
	test_cc.appid = xstrdup(TEST_APPID);
	test_cc.token = xstrdup(TEST_TOKEN);
	if (wxcrypt_key_decode(TEST_KEY, test_cc.aes_key) != 0 ||
	    wxcrypt_key_decode(TEST_OLD_KEY, test_cc.previous_aes_key) != 0)
		abort();

	test_good();
	test_keys();
	test_forged();
	test_appids();
	test_crypto();
	test_xml();
	test_outer();

	free(test_cc.appid);
	free(test_cc.token);
	return (tap_done());
}
