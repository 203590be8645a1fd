/* Unit tests for wxcrypt.c: WeChat's test vectors, round trips and hostile ciphertexts. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "wxcrypt.h"
#include "xmalloc.h"

#include "tap.h"

/* Vector A (wechat-api.md section 4). */
#define A_KEY	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define A_TOKEN	"pamtest"
#define A_APPID	"wxb11529c136998cb6"
#define A_RAND	"aaaabbbbccccdddd"
#define A_MSG	"\xe6\x88\x91\xe6\x98\xaf\xe4\xb8\xad\xe6\x96\x87" "abcd123"
#define A_CT	"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
#define A_TS	"1409304348"
#define A_NONCE	"xxxxxx"
#define A_SIG	"82c962d39941aa48552f90ef55aa323dc620cc10"

/* Vector C: the URL check signature. */
#define C_SIG	"899cf89e464efb63f54ddac96b0a0a235f53aa78"

static unsigned char key[WXCRYPT_KEY_LEN];

/* Decrypt a NUL-terminated ciphertext with the vector A key and appid; returns the cause or NULL. */
static const char *
test_decrypt(const char *b64, size_t len, const char *appid, char **out,
    size_t *outlen)
{
	const char	*cause = NULL;

	if (wxcrypt_decrypt(key, b64, len, appid, out, outlen, &cause) == 0)
		return (NULL);
	if (*out != NULL)
		return ("out not NULL on failure");
	return (cause != NULL ? cause : "no cause");
}

/* Encrypt a crafted plaintext (a multiple of 16) with raw AES-256-CBC, as base64. */
static char *
test_craft(const unsigned char *pt, size_t len)
{
	EVP_CIPHER_CTX	*ctx;
	unsigned char	*ct;
	char		*b64;
	int		 n1, n2;

	ctx = EVP_CIPHER_CTX_new();
	ct = xmalloc(len + 16);
	if (ctx == NULL ||
	    !EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, key) ||
	    !EVP_CIPHER_CTX_set_padding(ctx, 0) ||
	    !EVP_EncryptUpdate(ctx, ct, &n1, pt, (int)len) ||
	    !EVP_EncryptFinal_ex(ctx, ct + n1, &n2) ||
	    (size_t)(n1 + n2) != len) {
		printf("Bail out! EVP encryption failed\n");
		exit(1);
	}
	EVP_CIPHER_CTX_free(ctx);
	b64 = xmalloc((len + 2) / 3 * 4 + 1);
	EVP_EncodeBlock((unsigned char *)b64, ct, (int)len);
	free(ct);
	return (b64);
}

/* Fill a plaintext: random(16) + msg_len + msg + appid, then the given pad bytes. */
static size_t
test_plain(unsigned char *pt, uint32_t msglen, const char *msg, size_t msgsz,
    const char *appid, unsigned int padval, size_t padlen)
{
	size_t	n = 0, idlen = strlen(appid);

	memcpy(pt, A_RAND, 16);
	n = 16;
	pt[n++] = msglen >> 24;
	pt[n++] = msglen >> 16;
	pt[n++] = msglen >> 8;
	pt[n++] = msglen;
	memcpy(pt + n, msg, msgsz);
	n += msgsz;
	memcpy(pt + n, appid, idlen);
	n += idlen;
	memset(pt + n, padval, padlen);
	return (n + padlen);
}

/*
 * Decode vector A's ciphertext, change one byte, encode it again. raw has room
 * for the 66 bytes EVP_DecodeBlock writes: it counts the two '=' as zero bytes.
 */
static char *
test_flip(size_t pos, unsigned char mask)
{
	unsigned char	 raw[66];
	char		*b64;

	if (EVP_DecodeBlock(raw, (const unsigned char *)A_CT,
	    (int)strlen(A_CT)) != 66) {
		printf("Bail out! cannot decode vector A\n");
		exit(1);
	}
	raw[pos] ^= mask;
	b64 = xmalloc(89);
	EVP_EncodeBlock((unsigned char *)b64, raw, 64);
	return (b64);
}

/* Vectors A and C, both ways. */
static void
test_vectors(void)
{
	char		 sig[WXCRYPT_SIG_LEN + 1], *ct, *out = NULL;
	size_t		 outlen = 0;
	const char	*cause;

	is_int(wxcrypt_key_decode(A_KEY, key), 0, "vector A: key decodes");
	ok(key[0] == 0x69 && key[1] == 0xb7 && key[2] == 0x1d,
	    "vector A: key bytes");

	ct = wxcrypt_encrypt(key, A_APPID, A_MSG, strlen(A_MSG),
	    (const unsigned char *)A_RAND);
	is_str(ct, A_CT, "vector A: encrypt with the fixed random");
	free(ct);

	cause = test_decrypt(A_CT, strlen(A_CT), A_APPID, &out, &outlen);
	ok(cause == NULL, "vector A: decrypts (%s)", cause ? cause : "ok");
	is_int(outlen, 19, "vector A: 19 bytes");
	is_str(out, A_MSG, "vector A: plaintext");
	free(out);

	wxcrypt_signature(A_TOKEN, A_TS, A_NONCE, A_CT, sig);
	is_str(sig, A_SIG, "vector A: msg_signature");
	wxcrypt_signature(A_CT, A_NONCE, A_TOKEN, A_TS, sig);
	is_str(sig, A_SIG, "vector A: signature does not depend on order");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT, A_SIG), 1,
	    "vector A: signature_ok");

	wxcrypt_signature("AAAAA", "1714037059", "486452656", NULL, sig);
	is_str(sig, C_SIG, "vector C: URL signature");
	is_int(wxcrypt_signature_ok("AAAAA", "1714037059", "486452656", NULL,
	    C_SIG), 1, "vector C: signature_ok");
}

/* Encrypt and decrypt messages of many sizes, with CSPRNG randomness. */
static void
test_roundtrip(void)
{
	char		 msg[101], *big, *ct, *ct2, *out;
	const char	*cause;
	size_t		 n, outlen, bigsz = 64 * 1024;
	int		 good = 1;

	for (n = 0; n < sizeof msg; n++)
		msg[n] = 'a' + n % 26;
	for (n = 0; n <= 100; n++) {
		out = NULL;
		if ((ct = wxcrypt_encrypt(key, A_APPID, msg, n, NULL)) == NULL) {
			good = 0;
			break;
		}
		cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
		if (cause != NULL || outlen != n || memcmp(out, msg, n) != 0 ||
		    out[n] != '\0') {
			diag("size %zu: %s", n, cause ? cause : "differs");
			good = 0;
		}
		free(out);
		free(ct);
	}
	ok(good, "round trips of 0..100 bytes");

	ct = wxcrypt_encrypt(key, A_APPID, "x", 1, NULL);
	ct2 = wxcrypt_encrypt(key, A_APPID, "x", 1, NULL);
	ok(ct != NULL && ct2 != NULL && strcmp(ct, ct2) != 0,
	    "CSPRNG random differs between messages");
	free(ct);
	free(ct2);

	/* Binary content with NULs survives. */
	big = xmalloc(bigsz);
	for (n = 0; n < bigsz; n++)
		big[n] = (char)(n * 7);
	ct = wxcrypt_encrypt(key, A_APPID, big, bigsz, NULL);
	ok(ct != NULL, "64 KiB encrypts");
	out = NULL;
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	ok(cause == NULL && outlen == bigsz && memcmp(out, big, bigsz) == 0,
	    "64 KiB round trip");
	free(out);
	free(ct);
	free(big);
}

/* The largest ciphertext accepted is WXCRYPT_MAX_B64 characters. */
static void
test_limit(void)
{
	char		*msg, *ct, *out = NULL;
	const char	*cause;
	size_t		 msglen, outlen;

	/* 786432 ciphertext bytes, a multiple of 32: full pad block of 32. */
	msglen = WXCRYPT_MAX_B64 / 4 * 3 - 32 - 20 - strlen(A_APPID);
	msg = xcalloc(1, msglen + 32);
	ct = wxcrypt_encrypt(key, A_APPID, msg, msglen, NULL);
	is_int(strlen(ct), WXCRYPT_MAX_B64, "limit: exactly WXCRYPT_MAX_B64");
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	ok(cause == NULL && outlen == msglen, "limit: accepted");
	free(out);
	free(ct);

	/* 32 more bytes make the next multiple of 32. */
	ct = wxcrypt_encrypt(key, A_APPID, msg, msglen + 32, NULL);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad length", "limit: one more is refused");
	free(ct);
	free(msg);
}

/* Wrong appids and flipped ciphertext bytes never decrypt. */
static void
test_tamper(void)
{
	static const char	*appids[] = { "wxb11529c136998cb7",
				    "wxb11529c136998cb", "wxb11529c136998cb66",
				    "", "WXB11529C136998CB6" };
	char			*ct, *out = NULL;
	const char		*cause;
	size_t			 i, outlen;
	int			 good;

	for (i = 0; i < sizeof appids / sizeof appids[0]; i++) {
		cause = test_decrypt(A_CT, strlen(A_CT), appids[i], &out,
		    &outlen);
		is_str(cause, "appid mismatch", "wrong appid '%s'", appids[i]);
	}

	/* The last block: the whole plaintext block turns to noise. */
	good = 1;
	for (i = 48; i < 64; i++) {
		ct = test_flip(i, 0x01);
		cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
		if (cause == NULL || (strcmp(cause, "bad padding") != 0 &&
		    strcmp(cause, "appid mismatch") != 0)) {
			diag("byte %zu: %s", i, cause ? cause : "success");
			good = 0;
		}
		free(out);
		out = NULL;
		free(ct);
	}
	ok(good, "a byte flipped in the last block never decrypts");

	/* The block before: exactly one plaintext byte of the last block changes. */
	good = 1;
	for (i = 32; i < 48; i++) {
		ct = test_flip(i, 0x80);
		cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
		if (cause == NULL) {
			diag("byte %zu: success", i);
			good = 0;
		}
		free(out);
		out = NULL;
		free(ct);
	}
	ok(good, "a byte flipped in the block before never decrypts");
}

/* Base64 that is not strictly standard is refused. */
static void
test_base64(void)
{
	static const char	*bad[] = {
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg",
		"jn1L23DB-6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
		"jn1L23DB_6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOf==g",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVO=g==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7K=IfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOf===",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7K IfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7K\nIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOf\t==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVO\xe9==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==\n",
		" jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
		"jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg====",
		"====",
		"@@@@",
	};
	char		 nul[] = A_CT;
	char		*out = NULL;
	const char	*cause;
	size_t		 i, outlen;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = test_decrypt(bad[i], strlen(bad[i]), A_APPID, &out,
		    &outlen);
		is_str(cause, "bad base64", "bad base64 %zu", i);
	}

	nul[10] = '\0';
	cause = test_decrypt(nul, sizeof nul - 1, A_APPID, &out, &outlen);
	is_str(cause, "bad base64", "embedded NUL");

	/* Only b64len counts: a longer buffer is cut where asked. */
	cause = test_decrypt(A_CT "AAAA", strlen(A_CT), A_APPID, &out, &outlen);
	ok(cause == NULL, "b64len bounds the input");
	free(out);
}

/* Ciphertext lengths other than a multiple of 16, at least 32. */
static void
test_lengths(void)
{
	unsigned char	 pt[64];
	char		*big, *ct, *out = NULL;
	const char	*cause;
	size_t		 outlen, n;

	cause = test_decrypt("", 0, A_APPID, &out, &outlen);
	is_str(cause, "bad length", "empty");

	/* 16 bytes: one AES block, too short. */
	cause = test_decrypt("jn1L23DB+6ELqJ+6bruv2w==", 24, A_APPID, &out,
	    &outlen);
	is_str(cause, "bad length", "16 bytes is too short");

	/* 33 and 63 bytes: not a multiple of 16. */
	cause = test_decrypt(A_CT, 44, A_APPID, &out, &outlen);
	is_str(cause, "bad length", "33 bytes");
	cause = test_decrypt("jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVO",
	    84, A_APPID, &out, &outlen);
	is_str(cause, "bad length", "63 bytes");

	/* Room for both lengths below, though wxcrypt refuses before reading. */
	big = xmalloc(WXCRYPT_MAX_B64 + 5);
	memset(big, 'A', WXCRYPT_MAX_B64 + 4);
	big[WXCRYPT_MAX_B64 + 4] = '\0';
	cause = test_decrypt(big, WXCRYPT_MAX_B64 + 1, A_APPID, &out, &outlen);
	is_str(cause, "bad length", "over WXCRYPT_MAX_B64");
	cause = test_decrypt(big, WXCRYPT_MAX_B64 + 4, A_APPID, &out, &outlen);
	is_str(cause, "bad length", "over WXCRYPT_MAX_B64, a multiple of 4");
	free(big);

	/* 48 bytes is a multiple of 16 but not 32: accepted if well formed. */
	n = test_plain(pt, 2, "hi", 2, A_APPID, 8, 8);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	ok(n == 48 && cause == NULL && outlen == 2 && strcmp(out, "hi") == 0,
	    "48 bytes with pad 8 decrypts");
	free(out);
	out = NULL;
	free(ct);
}

/* Deliberately broken PKCS#7 padding and message lengths. */
static void
test_padding(void)
{
	unsigned char	 pt[96];
	char		*ct, *out = NULL;
	const char	*cause;
	size_t		 outlen, n, i;

	/* Pad 0: the last byte is 0. */
	n = test_plain(pt, 19, A_MSG, 19, A_APPID, 0, 7);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad padding", "pad 0");
	free(ct);

	/* Pad 33: one more than the scheme's block. */
	n = test_plain(pt, 9, "abcdefghi", 9, A_APPID, 33, 33);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	ok(n == 80, "pad 33 plaintext is 80 bytes");
	is_str(cause, "bad padding", "pad 33");
	free(ct);

	/* Pad 255. */
	n = test_plain(pt, 19, A_MSG, 19, A_APPID, 255, 7);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad padding", "pad 255");
	free(ct);

	/* Pad 7 but one pad byte differs. */
	n = test_plain(pt, 19, A_MSG, 19, A_APPID, 7, 7);
	pt[n - 5] = 6;
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad padding", "unequal pad bytes");
	free(ct);

	/* Each pad byte is checked, the first (farthest from the end) too. */
	for (i = 1; i <= 7; i++) {
		n = test_plain(pt, 19, A_MSG, 19, A_APPID, 7, 7);
		pt[n - i] = 6;
		ct = test_craft(pt, n);
		cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
		is_str(cause, "bad padding", "pad 7 with byte %zu of 7 wrong",
		    8 - i);
		free(ct);
	}

	/* The crafted plaintext itself is right: vector A again. */
	n = test_plain(pt, 19, A_MSG, 19, A_APPID, 7, 7);
	ct = test_craft(pt, n);
	is_str(ct, A_CT, "crafted plaintext reproduces vector A");
	free(ct);

	/* Pad 32: the whole last 32 bytes, leaving nothing for the header. */
	memset(pt, 32, 32);
	ct = test_craft(pt, 32);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad message length", "pad 32 of 32 bytes");
	free(ct);

	/* msg_len larger than the plaintext. */
	n = test_plain(pt, 1000, A_MSG, 19, A_APPID, 7, 7);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad message length", "msg_len 1000 in 64 bytes");
	free(ct);

	n = test_plain(pt, 0xffffffffU, A_MSG, 19, A_APPID, 7, 7);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "bad message length", "msg_len 0xffffffff");
	free(ct);

	/* msg_len one too large eats the appid's first byte. */
	n = test_plain(pt, 20, A_MSG, 19, A_APPID, 7, 7);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "appid mismatch", "msg_len 20 for 19 bytes");
	free(ct);

	/* msg_len 37 takes all but nothing: appid is empty. */
	n = test_plain(pt, 37, A_MSG, 19, A_APPID, 7, 7);
	ct = test_craft(pt, n);
	cause = test_decrypt(ct, strlen(ct), A_APPID, &out, &outlen);
	is_str(cause, "appid mismatch", "msg_len 37, no appid left");
	cause = test_decrypt(ct, strlen(ct), "", &out, &outlen);
	ok(cause == NULL && outlen == 37, "msg_len 37 with an empty appid");
	free(out);
	free(ct);
}

/* EncodingAESKey must be 43 characters of [A-Za-z0-9]. */
static void
test_key(void)
{
	static const char	*bad[] = {
		"",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG=",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF=",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF+",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF/",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF-",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF_",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF ",
		" abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDE\xc3\xa9",
		"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n",
	};
	unsigned char	 k[WXCRYPT_KEY_LEN], k2[WXCRYPT_KEY_LEN];
	size_t		 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		is_int(wxcrypt_key_decode(bad[i], k), -1, "bad key %zu", i);
	is_int(wxcrypt_key_decode(NULL, k), -1, "NULL key");

	/* The two bits past the key in the last character are ignored. */
	is_int(wxcrypt_key_decode("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFE",
	    k2), 0, "key ending in E");
	ok(memcmp(k2, key, sizeof key) == 0, "E and G give the same key");
	is_int(wxcrypt_key_decode("0000000000000000000000000000000000000000000",
	    k2), 0, "all-zero key");
	ok(k2[0] == 0xd3 && k2[1] == 0x4d && k2[2] == 0x34 && k2[31] == 0x4d,
	    "'0' characters decode to d3 4d 34...");
}

/* signature_ok refuses anything but the exact lowercase signature. */
static void
test_signature_ok(void)
{
	char	sig[WXCRYPT_SIG_LEN + 2];

	memcpy(sig, A_SIG, sizeof A_SIG);
	sig[0] = 'a';
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT, sig), 0,
	    "first character wrong");
	memcpy(sig, A_SIG, sizeof A_SIG);
	sig[39] = '1';
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT, sig), 0,
	    "last character wrong");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT,
	    "82C962D39941AA48552F90EF55AA323DC620CC10"), 0, "uppercase");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT,
	    "82c962d39941aa48552f90ef55aa323dc620cc1"), 0, "short");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT,
	    A_SIG "0"), 0, "long");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT, ""), 0,
	    "empty");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, A_CT, NULL), 0,
	    "NULL");
	is_int(wxcrypt_signature_ok(A_TOKEN, A_TS, A_NONCE, NULL, A_SIG), 0,
	    "msg_signature is not the URL signature");
	is_int(wxcrypt_signature_ok(A_TOKEN, "1409304349", A_NONCE, A_CT,
	    A_SIG), 0, "other timestamp");
	/* A property of the scheme: an empty piece adds nothing to the hash. */
	is_int(wxcrypt_signature_ok("AAAAA", "1714037059", "486452656", "",
	    C_SIG), 1, "empty encrypt hashes like NULL");
}

int
main(void)
{
	test_vectors();
	test_roundtrip();
	test_limit();
	test_tamper();
	test_base64();
	test_lengths();
	test_padding();
	test_key();
	test_signature_ok();
	return (tap_done());
}
