/* fuzz_token.c - token_check() on any token, and on tokens signed here
 * over any header and any claims.
 *
 * The first byte chooses: the job's user_id (0 to 7, 0 for none), whether
 * it is redelivered, and how the rest becomes a token:
 *   0  the rest is the token, as it is;
 *   1  two strings, a header and claims, base64url'd and signed with the
 *      verifier's HMAC secret (HS256 by hand, whatever the header says);
 *   2  the same, signed with another secret;
 *   3  the same, signed with the RS256 verifier's public key as the HMAC
 *      secret, and given to that verifier (the alg confusion attack).
 * A token as it is (0) also goes to an RS256 and an ES256 verifier, whose
 * signatures token.c checks with OpenSSL: neither ever accepts it (no
 * fuzzer forges one), and each refuses it as the rules below say.
 * Whatever the token: no crash, no leak; a token accepted is one whose
 * HMAC-SHA256 over its first two parts, computed here with OpenSSL, is
 * its third part, whose header says alg HS256 exactly and whose sub is
 * the job's user_id, read here with jansson; a token signed with any
 * other key is never accepted; a reason is given exactly when the token
 * is refused, on one line, never repeating a part of the token; and the
 * same token checked twice gets the same answer in the same words. */
#include "fuzz.h"
#include "token.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1780000000.0

static const char secret[] = "fuzz-secret-0123456789abcdef-0123456789";
static const char other_secret[] = "fuzz-other-0123456789abcdef-0123456789";
static struct token_verifier hs256, rs256, es256;
static char rsa_public[1024];

/* An RSA key made once per process: only its public half is used, as
 * the RS256 verifier's key and as the attacker's HMAC secret. */
static void set_up(void)
{
    static bool done;
    EVP_PKEY *pkey;
    BIO *bio;
    char err[256];
    int len;

    if (done)
        return;
    done = true;
    pkey = EVP_RSA_gen(2048);
    bio = BIO_new(BIO_s_mem());
    fuzz_require(pkey != NULL && bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1,
                 "cannot make an RSA key");
    len = BIO_read(bio, rsa_public, sizeof rsa_public - 1);
    fuzz_require(len > 0, "cannot write the RSA key");
    rsa_public[len] = '\0';
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    fuzz_require(token_verifier_init(&hs256, "HS256", (const unsigned char *)secret, strlen(secret),
                                     NULL, NULL, 30, err, sizeof err),
                 "HS256 verifier: %s", err);
    fuzz_require(token_verifier_init(&rs256, "RS256", (const unsigned char *)rsa_public,
                                     (size_t)len, NULL, NULL, 30, err, sizeof err),
                 "RS256 verifier: %s", err);

    char ec_public[512];
    pkey = EVP_EC_gen("P-256");
    bio = BIO_new(BIO_s_mem());
    fuzz_require(pkey != NULL && bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1,
                 "cannot make an EC key");
    len = BIO_read(bio, ec_public, sizeof ec_public - 1);
    fuzz_require(len > 0, "cannot write the EC key");
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    fuzz_require(token_verifier_init(&es256, "ES256", (const unsigned char *)ec_public, (size_t)len,
                                     NULL, NULL, 30, err, sizeof err),
                 "ES256 verifier: %s", err);
}

static void base64url(const void *data, size_t len, struct buf *out)
{
    char *encoded = malloc(4 * (len / 3 + 1) + 1);
    int n;

    fuzz_require(encoded != NULL, "out of memory");
    n = EVP_EncodeBlock((unsigned char *)encoded, data, (int)len);
    for (int i = 0; i < n; i++) {
        char c = encoded[i] == '+' ? '-' : encoded[i] == '/' ? '_' : encoded[i];
        if (c != '=')
            fuzz_require(buf_append(out, &c, 1), "out of memory");
    }
    free(encoded);
}

static bool base64url_decode(const char *text, size_t len, struct buf *out)
{
    size_t padded = len + (4 - len % 4) % 4;
    unsigned char *in = malloc(padded + 1), *decoded = malloc(padded + 1);
    int n;

    fuzz_require(in != NULL && decoded != NULL, "out of memory");
    for (size_t i = 0; i < padded; i++)
        in[i] = i >= len         ? '='
                : text[i] == '-' ? '+'
                : text[i] == '_' ? '/'
                                 : (unsigned char)text[i];
    n = EVP_DecodeBlock(decoded, in, (int)padded);
    if (n >= 0) {
        n -= (int)(padded - len); /* EVP_DecodeBlock counts the padding as zero bytes */
        buf_reset(out);
        fuzz_require(buf_append(out, decoded, (size_t)(n < 0 ? 0 : n)), "out of memory");
    }
    free(in);
    free(decoded);
    return n >= 0;
}

/* header.claims.HMAC-SHA256(key) into out. */
static void sign(const char *header, const char *claims, const char *key, size_t key_len,
                 struct buf *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;

    buf_reset(out);
    base64url(header, strlen(header), out);
    fuzz_require(buf_append(out, ".", 1), "out of memory");
    base64url(claims, strlen(claims), out);
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)out->data, out->len, mac,
         &mac_len);
    fuzz_require(buf_append(out, ".", 1), "out of memory");
    base64url(mac, mac_len, out);
}

/* What an accepted token must be, checked apart from token.c. */
static void check_accepted(const char *token, size_t len, long long user_id)
{
    const char *dot1 = memchr(token, '.', len), *dot2;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    struct buf expected = {0}, part = {0};
    json_t *header, *claims, *sub;
    char user[24];

    fuzz_require(dot1 != NULL, "accepted without a '.'");
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    fuzz_require(dot2 != NULL, "accepted without a second '.'");
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)token,
         (size_t)(dot2 - token), mac, &mac_len);
    base64url(mac, mac_len, &expected);
    fuzz_require(expected.len == len - (size_t)(dot2 + 1 - token) &&
                     memcmp(expected.data, dot2 + 1, expected.len) == 0,
                 "accepted, but the signature is not the key's HMAC-SHA256");

    fuzz_require(base64url_decode(token, (size_t)(dot1 - token), &part), "header not base64url");
    /* As libjwt reads it: up to a NUL. */
    header = json_loads(part.data, 0, NULL);
    fuzz_require(json_is_object(header) && json_is_string(json_object_get(header, "alg")) &&
                     strcmp(json_string_value(json_object_get(header, "alg")), "HS256") == 0,
                 "accepted, but the header's alg is not HS256: %s", part.data);
    json_decref(header);

    fuzz_require(base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &part),
                 "payload not base64url");
    claims = json_loads(part.data, 0, NULL);
    sub = json_object_get(claims, "sub");
    snprintf(user, sizeof user, "%lld", user_id);
    fuzz_require(json_is_string(sub) && strcmp(json_string_value(sub), user) == 0,
                 "accepted for user %s, but its claims are %s", user, part.data);
    json_decref(claims);
    buf_free(&expected);
    buf_free(&part);
}

/* Whether why repeats a part of the token: one longer than the longest
 * word of a reason, and not all digits (a reason may hold a number). */
static bool echoes(const char *why, const char *token, size_t len)
{
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && token[i] != '.')
            continue;
        if (i - start > 20 && i - start < 300 && strspn(token + start, "0123456789") < i - start) {
            char part[300];
            memcpy(part, token + start, i - start);
            part[i - start] = '\0';
            if (memchr(part, '\0', i - start) == NULL && strstr(why, part) != NULL)
                return true;
        }
        start = i + 1;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in;
    struct buf token = {0};
    const struct token_verifier *v = &hs256;
    unsigned char head;
    unsigned mode;
    long long user_id;
    bool redelivered, others_key = false;
    char why[256], again[256];
    enum token_result result;

    set_up();
    fuzz_input_init(&in, data, size);
    head = fuzz_byte(&in);
    mode = head & 3;
    redelivered = head & 4;
    user_id = (head >> 3) & 7;
    if (mode == 0) {
        fuzz_require(buf_append(&token, in.copy + in.pos, in.size - in.pos), "out of memory");
    } else {
        const char *header = fuzz_string(&in), *claims = fuzz_string(&in);
        if (mode == 1) {
            sign(header, claims, secret, strlen(secret), &token);
        } else if (mode == 2) {
            sign(header, claims, other_secret, strlen(other_secret), &token);
            others_key = true;
        } else {
            sign(header, claims, rsa_public, strlen(rsa_public), &token);
            v = &rs256;
            others_key = true;
        }
    }

    result = token_check(v, token.data ? token.data : "", token.len, user_id, user_id > 0, NOW,
                         redelivered, why, sizeof why);
    fuzz_require((result == TOKEN_OK) == (why[0] == '\0'), "verdict %d with reason '%s'", result,
                 why);
    fuzz_require(strchr(why, '\n') == NULL, "a reason on two lines: '%s'", why);
    fuzz_require(!echoes(why, token.data ? token.data : "", token.len),
                 "the reason '%s' repeats the token", why);
    if (result == TOKEN_OK) {
        fuzz_require(!others_key, "accepted a token signed with another key");
        check_accepted(token.data, token.len, user_id);
    }
    fuzz_require(token_check(v, token.data ? token.data : "", token.len, user_id, user_id > 0, NOW,
                             redelivered, again, sizeof again) == result &&
                     strcmp(why, again) == 0,
                 "checked twice: '%s', then '%s'", why, again);
    for (int i = 0; mode == 0 && i < 2; i++) {
        const struct token_verifier *public_key = i == 0 ? &rs256 : &es256;
        result = token_check(public_key, token.data ? token.data : "", token.len, user_id,
                             user_id > 0, NOW, redelivered, why, sizeof why);
        fuzz_require(result != TOKEN_OK, "%s accepted a token no key here signed",
                     i == 0 ? "RS256" : "ES256");
        fuzz_require(why[0] != '\0' && strchr(why, '\n') == NULL, "a reason '%s'", why);
        fuzz_require(!echoes(why, token.data ? token.data : "", token.len),
                     "the reason '%s' repeats the token", why);
    }
    buf_free(&token);
    fuzz_input_free(&in);
    return 0;
}
