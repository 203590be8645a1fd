/* libFuzzer target for wxcrypt.c: hostile ciphertexts and signature pieces. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wxcrypt.h"
#include "xmalloc.h"

/* Vector A of wechat-api.md, so the seed corpus holds a valid ciphertext. */
#define FUZZ_WXCRYPT_KEY	"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define FUZZ_WXCRYPT_APPID	"wxb11529c136998cb6"
#define FUZZ_WXCRYPT_PIECES	5

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Decrypt the input, re-encrypt it, and check signatures of its NUL-separated pieces. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char	 key[WXCRYPT_KEY_LEN];
	static int		 ready;
	static const unsigned char random16[16] = "aaaabbbbccccdddd";
	const char		*cause, *piece[FUZZ_WXCRYPT_PIECES];
	char			*copy, *p, *out, *out2, *ct;
	char			 sig[WXCRYPT_SIG_LEN + 1];
	size_t			 outlen, outlen2, n;

	if (!ready) {
		if (wxcrypt_key_decode(FUZZ_WXCRYPT_KEY, key) != 0)
			abort();
		ready = 1;
	}

	/* The input as a ciphertext: a success must survive a round trip. */
	cause = NULL;
	if (wxcrypt_decrypt(key, (const char *)data, size, FUZZ_WXCRYPT_APPID,
	    &out, &outlen, &cause) == 0) {
		if (out[outlen] != '\0')
			abort();
		ct = wxcrypt_encrypt(key, FUZZ_WXCRYPT_APPID, out, outlen,
		    random16);
		if (ct == NULL || wxcrypt_decrypt(key, ct, strlen(ct),
		    FUZZ_WXCRYPT_APPID, &out2, &outlen2, &cause) != 0 ||
		    outlen2 != outlen || memcmp(out, out2, outlen) != 0)
			abort();
		free(out2);
		free(ct);
		free(out);
	} else if (out != NULL || cause == NULL)
		abort();

	/* The input as token, timestamp, nonce, encrypt and signature. */
	copy = xmalloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	memset(piece, 0, sizeof piece);
	for (p = copy, n = 0; n < FUZZ_WXCRYPT_PIECES; n++) {
		piece[n] = p;
		p += strlen(p);
		if (p == copy + size)
			break;
		p++;
	}
	/* Missing pieces are empty, except encrypt, which is then the URL check. */
	for (n = 0; n < 3; n++) {
		if (piece[n] == NULL)
			piece[n] = "";
	}
	wxcrypt_signature_ok(piece[0], piece[1], piece[2], piece[3],
	    piece[4] != NULL ? piece[4] : "");
	wxcrypt_signature(piece[0], piece[1], piece[2], piece[3], sig);
	if (wxcrypt_signature_ok(piece[0], piece[1], piece[2], piece[3],
	    sig) != 1)
		abort();
	free(copy);
	return (0);
}
