/*
 * WXBizMsgCrypt: the message encryption of WeChat third-party platform events
 * (wechat-api.md section 4). Shared by wxpushd and wxpush-mock; depends only on OpenSSL.
 */
#ifndef WX_WXCRYPT_H
#define WX_WXCRYPT_H

#include <stddef.h>

#define WXCRYPT_KEY_LEN		32	/* AES-256 key from a 43-character EncodingAESKey */
#define WXCRYPT_SIG_LEN		40	/* SHA-1, lowercase hex */
#define WXCRYPT_MAX_B64		(1024 * 1024)	/* ciphertexts longer than this are refused */

/* Decode a 43-character EncodingAESKey into the 32-byte AES key; 0 or -1. */
int	 wxcrypt_key_decode(const char *encoding_aes_key, unsigned char *key);

/*
 * msg_signature = sha1(sort(token, timestamp, nonce[, encrypt])) as lowercase hex.
 * encrypt NULL gives the URL check signature. out must hold WXCRYPT_SIG_LEN + 1 bytes.
 */
void	 wxcrypt_signature(const char *token, const char *timestamp,
	    const char *nonce, const char *encrypt, char *out);

/* Constant-time check of a received signature against the expected one; 1 if equal. */
int	 wxcrypt_signature_ok(const char *token, const char *timestamp,
	    const char *nonce, const char *encrypt, const char *received);

/*
 * Decrypt a base64 ciphertext with key and check the trailing appid.
 * On success returns 0 and *out (NUL-terminated, *outlen bytes) which the caller
 * frees; on failure returns -1, *out NULL and, if cause is not NULL, a static
 * *cause ("bad length", "bad base64", "bad padding", "bad message length",
 * "appid mismatch", "decryption failed"). There is no MAC: check msg_signature
 * first, so a forger cannot use the causes as a padding oracle.
 */
int	 wxcrypt_decrypt(const unsigned char *key, const char *b64, size_t b64len,
	    const char *appid, char **out, size_t *outlen, const char **cause);

/*
 * Encrypt msg for appid; random16 NULL takes 16 bytes from the CSPRNG. Returns the
 * NUL-terminated base64 ciphertext (caller frees), or NULL if the CSPRNG or the
 * cipher failed or msglen is absurd (over INT_MAX / 4).
 */
char	*wxcrypt_encrypt(const unsigned char *key, const char *appid,
	    const char *msg, size_t msglen, const unsigned char *random16);

#endif
