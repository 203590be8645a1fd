/* WXBizMsgCrypt: AES-256-CBC event encryption and SHA-1 signatures (wechat-api.md section 4). */
#include "config.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "wxcrypt.h"
#include "xmalloc.h"

#define WXCRYPT_RANDOM_LEN	16	/* random prefix of every plaintext */
#define WXCRYPT_HEADER_LEN	20	/* random prefix plus the 4-byte message length */
#define WXCRYPT_BLOCK		32	/* the scheme pads to 32, not to the AES block */
#define WXCRYPT_AES_BLOCK	16
#define WXCRYPT_KEY_CHARS	43
/* Encryption is bounded so every length fits the int that EVP takes. */
#define WXCRYPT_MAX_PLAIN	(INT_MAX / 4)

/* Whether c belongs to the standard base64 alphabet (without '='). */
static int
wxcrypt_b64_char(unsigned char c)
{
	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/');
}

/*
 * Decode strict base64 (standard alphabet, '=' padding, no whitespace) into a
 * new buffer; EVP_DecodeBlock counts the padding as zero bytes, so they are
 * taken off here. Returns the decoded length or -1.
 */
static int
wxcrypt_b64_decode(const char *b64, size_t len, unsigned char **out)
{
	unsigned char	*buf;
	size_t		 i, npad = 0;
	int		 n;

	*out = NULL;
	if (len == 0 || len % 4 != 0 || len > INT_MAX / 2)
		return (-1);
	if (b64[len - 1] == '=') {
		npad = 1;
		if (b64[len - 2] == '=')
			npad = 2;
	}
	for (i = 0; i < len - npad; i++) {
		if (!wxcrypt_b64_char((unsigned char)b64[i]))
			return (-1);
	}

	buf = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	if (n < 0 || (size_t)n != len / 4 * 3) {
		free(buf);
		return (-1);
	}
	*out = buf;
	return (n - (int)npad);
}

/* Whether c may appear in an EncodingAESKey. */
static int
wxcrypt_key_char(unsigned char c)
{
	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'));
}

/* Decode a 43-character EncodingAESKey into the 32-byte AES key; 0 or -1. */
int
wxcrypt_key_decode(const char *encoding_aes_key, unsigned char *key)
{
	char		 b64[WXCRYPT_KEY_CHARS + 1];
	unsigned char	*buf;
	size_t		 i;
	int		 n;

	if (encoding_aes_key == NULL)
		return (-1);
	for (i = 0; i < WXCRYPT_KEY_CHARS; i++) {
		if (!wxcrypt_key_char((unsigned char)encoding_aes_key[i]))
			return (-1);
	}
	if (encoding_aes_key[WXCRYPT_KEY_CHARS] != '\0')
		return (-1);

	/*
	 * WeChat generates the 43 characters at random, so the last one may
	 * carry two bits beyond the key; like the SDKs, ignore them.
	 */
	memcpy(b64, encoding_aes_key, WXCRYPT_KEY_CHARS);
	b64[WXCRYPT_KEY_CHARS] = '=';
	n = wxcrypt_b64_decode(b64, sizeof b64, &buf);
	OPENSSL_cleanse(b64, sizeof b64);
	if (n != WXCRYPT_KEY_LEN) {
		if (buf != NULL)
			freezero(buf, sizeof b64 / 4 * 3 + 1);
		return (-1);
	}
	memcpy(key, buf, WXCRYPT_KEY_LEN);
	freezero(buf, sizeof b64 / 4 * 3 + 1);
	return (0);
}

/* SHA-1 of the sorted concatenation of the non-NULL pieces, as lowercase hex. */
void
wxcrypt_signature(const char *token, const char *timestamp, const char *nonce,
    const char *encrypt, char *out)
{
	static const char	 hex[] = "0123456789abcdef";
	const char		*v[4], *t;
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen = 0;
	EVP_MD_CTX		*ctx;
	size_t			 i, j, n = 0;
	int			 good;

	v[n++] = token;
	v[n++] = timestamp;
	v[n++] = nonce;
	if (encrypt != NULL)
		v[n++] = encrypt;
	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			t = v[j - 1];
			v[j - 1] = v[j];
			v[j] = t;
		}
	}

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("%s: EVP_MD_CTX_new", __func__);
	good = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	for (i = 0; good && i < n; i++)
		good = EVP_DigestUpdate(ctx, v[i], strlen(v[i]));
	if (good)
		good = EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);

	/* Fail closed: an empty signature never matches a received one. */
	if (!good || mdlen * 2 != WXCRYPT_SIG_LEN) {
		log_warnx("%s: SHA-1 failed", __func__);
		out[0] = '\0';
		return;
	}
	for (i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[WXCRYPT_SIG_LEN] = '\0';
}

/* Constant-time check of a received signature against the expected one; 1 if equal. */
int
wxcrypt_signature_ok(const char *token, const char *timestamp,
    const char *nonce, const char *encrypt, const char *received)
{
	char	expected[WXCRYPT_SIG_LEN + 1];

	if (token == NULL || timestamp == NULL || nonce == NULL ||
	    received == NULL)
		return (0);
	/* The length is public; only the contents need constant time. */
	if (strnlen(received, WXCRYPT_SIG_LEN + 1) != WXCRYPT_SIG_LEN)
		return (0);
	wxcrypt_signature(token, timestamp, nonce, encrypt, expected);
	if (strlen(expected) != WXCRYPT_SIG_LEN)
		return (0);
	return (CRYPTO_memcmp(expected, received, WXCRYPT_SIG_LEN) == 0);
}

/* Run AES-256-CBC without EVP padding over len bytes (a multiple of 16); 0 or -1. */
static int
wxcrypt_aes(int enc, const unsigned char *key, const unsigned char *in,
    size_t len, unsigned char *out)
{
	EVP_CIPHER_CTX	*ctx;
	int		 n1 = 0, n2 = 0, good;

	if (len % WXCRYPT_AES_BLOCK != 0 || len > INT_MAX)
		return (-1);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		fatalx("%s: EVP_CIPHER_CTX_new", __func__);
	/* The IV is the first 16 bytes of the key, as the scheme says. */
	good = EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, key, enc) &&
	    EVP_CIPHER_CTX_set_padding(ctx, 0) &&
	    EVP_CipherUpdate(ctx, out, &n1, in, (int)len) &&
	    EVP_CipherFinal_ex(ctx, out + n1, &n2);
	EVP_CIPHER_CTX_free(ctx);
	if (!good || (size_t)n1 + (size_t)n2 != len)
		return (-1);
	return (0);
}

/* Decrypt a base64 ciphertext with key and check the trailing appid. */
int
wxcrypt_decrypt(const unsigned char *key, const char *b64, size_t b64len,
    const char *appid, char **out, size_t *outlen, const char **cause)
{
	unsigned char	*ct = NULL, *pt = NULL;
	const char	*why;
	size_t		 ctlen = 0, ptlen, msglen, idlen, i;
	unsigned int	 pad, bad;
	int		 n;

	*out = NULL;
	*outlen = 0;

	if (b64len == 0 || b64len > WXCRYPT_MAX_B64) {
		why = "bad length";
		goto fail;
	}
	if ((n = wxcrypt_b64_decode(b64, b64len, &ct)) < 0) {
		why = "bad base64";
		goto fail;
	}
	ctlen = n;
	if (ctlen < WXCRYPT_BLOCK || ctlen % WXCRYPT_AES_BLOCK != 0) {
		why = "bad length";
		goto fail;
	}

	/* Room for an extra block, as EVP's documentation asks. */
	pt = xmalloc(ctlen + WXCRYPT_AES_BLOCK);
	if (wxcrypt_aes(0, key, ct, ctlen, pt) != 0) {
		why = "decryption failed";
		goto fail;
	}

	/* PKCS#7 to 32 bytes: pad is 1..32 and every pad byte equals it. */
	pad = pt[ctlen - 1];
	if (pad < 1 || pad > WXCRYPT_BLOCK) {
		why = "bad padding";
		goto fail;
	}
	bad = 0;
	for (i = ctlen - pad; i < ctlen; i++)
		bad |= pt[i] ^ pad;
	if (bad != 0) {
		why = "bad padding";
		goto fail;
	}
	ptlen = ctlen - pad;

	/* random(16) + msg_len(4, big-endian) + msg + appid. */
	if (ptlen < WXCRYPT_HEADER_LEN) {
		why = "bad message length";
		goto fail;
	}
	msglen = (size_t)pt[16] << 24 | (size_t)pt[17] << 16 |
	    (size_t)pt[18] << 8 | (size_t)pt[19];
	if (msglen > ptlen - WXCRYPT_HEADER_LEN) {
		why = "bad message length";
		goto fail;
	}
	idlen = ptlen - WXCRYPT_HEADER_LEN - msglen;
	if (strlen(appid) != idlen ||
	    memcmp(pt + WXCRYPT_HEADER_LEN + msglen, appid, idlen) != 0) {
		why = "appid mismatch";
		goto fail;
	}

	*out = xmalloc(msglen + 1);
	memcpy(*out, pt + WXCRYPT_HEADER_LEN, msglen);
	(*out)[msglen] = '\0';
	*outlen = msglen;

	freezero(pt, ctlen + WXCRYPT_AES_BLOCK);
	free(ct);
	return (0);

fail:
	if (pt != NULL)
		freezero(pt, ctlen + WXCRYPT_AES_BLOCK);
	free(ct);
	if (cause != NULL)
		*cause = why;
	return (-1);
}

/* Encrypt msg for appid with the given (or a fresh) 16-byte random prefix. */
char *
wxcrypt_encrypt(const unsigned char *key, const char *appid, const char *msg,
    size_t msglen, const unsigned char *random16)
{
	unsigned char	*pt, *ct;
	char		*b64;
	size_t		 idlen, len, padded, b64len;
	unsigned int	 pad;

	idlen = strlen(appid);
	if (msglen > WXCRYPT_MAX_PLAIN || idlen > WXCRYPT_MAX_PLAIN) {
		log_warnx("%s: message too long", __func__);
		return (NULL);
	}
	len = WXCRYPT_HEADER_LEN + msglen + idlen;
	pad = WXCRYPT_BLOCK - len % WXCRYPT_BLOCK;
	padded = len + pad;

	pt = xmalloc(padded);
	if (random16 != NULL)
		memcpy(pt, random16, WXCRYPT_RANDOM_LEN);
	else if (RAND_bytes(pt, WXCRYPT_RANDOM_LEN) != 1) {
		log_warnx("%s: RAND_bytes failed", __func__);
		freezero(pt, padded);
		return (NULL);
	}
	pt[16] = (msglen >> 24) & 0xff;
	pt[17] = (msglen >> 16) & 0xff;
	pt[18] = (msglen >> 8) & 0xff;
	pt[19] = msglen & 0xff;
	if (msglen != 0)
		memcpy(pt + WXCRYPT_HEADER_LEN, msg, msglen);
	memcpy(pt + WXCRYPT_HEADER_LEN + msglen, appid, idlen);
	memset(pt + len, pad, pad);

	ct = xmalloc(padded + WXCRYPT_AES_BLOCK);
	if (wxcrypt_aes(1, key, pt, padded, ct) != 0) {
		log_warnx("%s: AES-256-CBC failed", __func__);
		freezero(pt, padded);
		free(ct);
		return (NULL);
	}
	freezero(pt, padded);

	b64len = (padded + 2) / 3 * 4;
	b64 = xmalloc(b64len + 1);
	if ((size_t)EVP_EncodeBlock((unsigned char *)b64, ct,
	    (int)padded) != b64len)
		fatalx("%s: EVP_EncodeBlock", __func__);
	free(ct);
	return (b64);
}
