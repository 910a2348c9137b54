/* token.c - job tokens with libjwt; see token.h.
 *
 * What libjwt 1.10.2 (Debian 12) does and does not do, read in its
 * source (libjwt/jwt.c, jwt-openssl.c at v1.10.2), and what is done here
 * about it:
 * - jwt_decode() takes the alg from the token's own header, and verifies
 *   with whatever key it is given: an HS256 token checked with an RS256
 *   public key is "verified" with the PEM text as HMAC secret (the classic
 *   confusion).  So the decoded alg is compared with the one configured,
 *   exactly (libjwt matches alg names without case).
 * - alg "none" with a key is refused by jwt_decode(); without a key
 *   jwt_decode() checks no signature at all, so it is called without one
 *   only on a token whose signature was checked here (RS*, ES*: below),
 *   or to say why a token was refused.
 * - For RS* and ES* it parses the PEM public key again for every token
 *   (most of a millisecond with OpenSSL 3.0, a bad signature included):
 *   the key is parsed once, at start, and those signatures are checked
 *   here with OpenSSL (RFC 7518 3.3, 3.4), libjwt decoding the rest.
 * - exp, nbf, iss, aud and sub are not checked, nor is a crit header
 *   (RFC 7515 4.1.11) refused: done here.
 * - Its base64url decoder skips what it does not know and writes one
 *   byte past an empty header's buffer: the token's shape is checked
 *   first (three parts, base64url only, a header and a payload).
 * - Upstream 1.10.2 compares HMAC signatures with strcmp(); Debian's
 *   1.10.2-1+deb12u1 (CVE-2024-25189) compares them in constant time, and
 *   is the version to build and run with (README, "Threat model"). */
#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum key_kind { KEY_SECRET, KEY_RSA, KEY_EC };

static const struct alg_info {
    const char *name;
    jwt_alg_t alg;
    enum key_kind kind;
    int bits;          /* HMAC: the least secret, in bits (RFC 7518 3.2); RSA:
                        * the least modulus (3.3); EC: the curve's size (3.4) */
    const char *curve; /* EC: OpenSSL's name of the curve */
} algs[] = {
    {"HS256", JWT_ALG_HS256, KEY_SECRET, 256, NULL},
    {"HS384", JWT_ALG_HS384, KEY_SECRET, 384, NULL},
    {"HS512", JWT_ALG_HS512, KEY_SECRET, 512, NULL},
    {"RS256", JWT_ALG_RS256, KEY_RSA, 2048, NULL},
    {"RS384", JWT_ALG_RS384, KEY_RSA, 2048, NULL},
    {"RS512", JWT_ALG_RS512, KEY_RSA, 2048, NULL},
    {"ES256", JWT_ALG_ES256, KEY_EC, 256, "prime256v1"},
    {"ES384", JWT_ALG_ES384, KEY_EC, 384, "secp384r1"},
    {"ES512", JWT_ALG_ES512, KEY_EC, 521, "secp521r1"},
};

#define N_ALGS (sizeof algs / sizeof algs[0])

static const struct alg_info *find_alg(const char *name)
{
    for (size_t i = 0; name != NULL && i < N_ALGS; i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

static bool fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

bool token_key_load(const char *path, struct buf *key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char chunk[4096];
    size_t got;
    bool ok = true;

    if (f == NULL)
        return fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    buf_reset(key);
    /* Room for the largest key at once: no realloc leaves a copy behind. */
    if (!buf_reserve(key, TOKEN_KEY_MAX + 1)) {
        fclose(f);
        return fail(err, errlen, "out of memory reading '%s'", path);
    }
    while (ok && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (key->len + got > TOKEN_KEY_MAX)
            ok = fail(err, errlen, "'%s' is longer than %d bytes: not a key", path, TOKEN_KEY_MAX);
        else if (!buf_append(key, chunk, got))
            ok = fail(err, errlen, "out of memory reading '%s'", path);
    }
    if (ok && ferror(f))
        ok = fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    if (ok && key->len == 0)
        ok = fail(err, errlen, "'%s' is empty", path);
    OPENSSL_cleanse(chunk, sizeof chunk);
    fclose(f);
    return ok;
}

void token_key_forget(struct buf *key)
{
    if (key->data != NULL)
        OPENSSL_cleanse(key->data, key->cap);
    buf_free(key);
}

/* An encrypted private key is refused rather than prompted for. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static bool contains(const unsigned char *data, size_t len, const char *text)
{
    size_t text_len = strlen(text);

    for (size_t i = 0; i + text_len <= len; i++)
        if (memcmp(data + i, text, text_len) == 0)
            return true;
    return false;
}

/* Whether key suits alg: a secret long enough and not a PEM key (a public
 * key as HMAC secret is the confusion attack's key), or a PEM key of the
 * alg's type and size, public for a verifier, private for a signer. */
static bool check_key(const struct alg_info *info, const unsigned char *key, size_t key_len,
                      bool private_key, EVP_PKEY **parsed, char *err, size_t errlen)
{
    static const char pem[] = "-----BEGIN";
    BIO *bio;
    EVP_PKEY *pkey;
    bool ok = true;
    int type, bits;
    char curve[64] = "";
    size_t curve_len = 0;

    if (info->kind == KEY_SECRET) {
        if (contains(key, key_len, pem)) /* anywhere: a comment line may come first */
            return fail(err, errlen, "holds a PEM key, but %s takes a shared secret", info->name);
        if (key_len * 8 < (size_t)info->bits)
            return fail(err, errlen, "an %s secret must be at least %d bytes, got %zu", info->name,
                        info->bits / 8, key_len);
        return true;
    }
    if (key_len > TOKEN_KEY_MAX)
        return fail(err, errlen, "longer than %d bytes: not a key", TOKEN_KEY_MAX);
    /* Anywhere in the file, even after a public key that reads well: a
     * verifier's file must not hold what signs. */
    if (!private_key && contains(key, key_len, "PRIVATE KEY"))
        return fail(err, errlen,
                    "holds a private key: a worker takes only the public key (openssl pkey "
                    "-pubout), the private one stays with the producers");
    bio = BIO_new_mem_buf(key, (int)key_len);
    if (bio == NULL)
        return fail(err, errlen, "out of memory");
    pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pkey == NULL) {
        ERR_clear_error(); /* not for the broker link's TLS to report later */
        if (private_key && contains(key, key_len, "ENCRYPTED"))
            return fail(err, errlen, "holds an encrypted private key: give it unencrypted");
        return fail(err, errlen, "holds no PEM %s key", private_key ? "private" : "public");
    }
    ERR_clear_error();
    type = EVP_PKEY_base_id(pkey);
    bits = EVP_PKEY_bits(pkey);
    if (info->kind == KEY_RSA && type != EVP_PKEY_RSA)
        ok = fail(err, errlen, "%s takes an RSA key", info->name);
    else if (info->kind == KEY_RSA && bits < info->bits)
        ok = fail(err, errlen, "%s takes an RSA key of at least %d bits, got %d", info->name,
                  info->bits, bits);
    else if (info->kind == KEY_EC && type != EVP_PKEY_EC)
        ok = fail(err, errlen, "%s takes an EC key", info->name);
    else if (info->kind == KEY_EC &&
             (EVP_PKEY_get_group_name(pkey, curve, sizeof curve, &curve_len) != 1 ||
              strcmp(curve, info->curve) != 0))
        ok = fail(err, errlen, "%s takes an EC key on the curve P-%d (%s), got %d bits (%s)",
                  info->name, info->bits, info->curve, bits, curve[0] ? curve : "unknown");
    if (ok && parsed != NULL)
        *parsed = pkey;
    else
        EVP_PKEY_free(pkey);
    return ok;
}

static char *copy_optional(const char *text, bool *ok)
{
    char *copy;

    if (text == NULL || text[0] == '\0')
        return NULL;
    copy = strdup(text);
    if (copy == NULL)
        *ok = false;
    return copy;
}

static unsigned char *copy_key(const unsigned char *key, size_t key_len)
{
    unsigned char *copy = malloc(key_len);

    if (copy != NULL)
        memcpy(copy, key, key_len);
    return copy;
}

static void free_key(unsigned char *key, size_t key_len)
{
    if (key != NULL)
        OPENSSL_cleanse(key, key_len);
    free(key);
}

/* ---- Verifying ---------------------------------------------------------- */

/* An ES256 signature takes OpenSSL about 60 us to check here (RS256: 20),
 * most of a job's cost, and a producer sends the same token with many
 * jobs.  So a public-key verifier remembers the tokens whose signature
 * verified, by their exact bytes, and does not check a remembered one's
 * signature again; its alg and every claim are checked as any other's,
 * for every job.  What a signature proves does not change:
 * the key is read once, at start.  4096 tokens in sets of 4 (a full set
 * forgets its oldest); tokens longer than TOKEN_MEMO_MAX, which no signer
 * here makes, are verified every time. */
#define TOKEN_MEMO_WAYS 4
#define TOKEN_MEMO_SETS 1024
#define TOKEN_MEMO_MAX  1024

struct token_memo {
    struct memo_set {
        struct memo_way {
            size_t len;
            char *token; /* NULL: empty */
        } ways[TOKEN_MEMO_WAYS];
        unsigned next; /* the way to replace when all are taken */
    } sets[TOKEN_MEMO_SETS];
    unsigned long long hits;
};

static struct memo_set *memo_set(struct token_memo *memo, const char *token, size_t len)
{
    uint64_t hash = 14695981039346656037u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        hash = (hash ^ (unsigned char)token[i]) * 1099511628211u;
    return &memo->sets[hash % TOKEN_MEMO_SETS];
}

static bool memo_holds(struct token_memo *memo, const char *token, size_t len)
{
    struct memo_set *set;

    if (memo == NULL || len > TOKEN_MEMO_MAX)
        return false;
    set = memo_set(memo, token, len);
    for (unsigned way = 0; way < TOKEN_MEMO_WAYS; way++) {
        if (set->ways[way].token != NULL && set->ways[way].len == len &&
            memcmp(set->ways[way].token, token, len) == 0) {
            memo->hits++;
            return true;
        }
    }
    return false;
}

static void memo_remember(struct token_memo *memo, const char *token, size_t len)
{
    struct memo_way *way;
    struct memo_set *set;
    char *copy;

    if (memo == NULL || len > TOKEN_MEMO_MAX || (copy = malloc(len)) == NULL)
        return; /* not remembered: verified again next time */
    memcpy(copy, token, len);
    set = memo_set(memo, token, len);
    way = &set->ways[set->next];
    set->next = (set->next + 1) % TOKEN_MEMO_WAYS;
    free(way->token);
    way->token = copy;
    way->len = len;
}

static void memo_free(struct token_memo *memo)
{
    for (size_t i = 0; memo != NULL && i < TOKEN_MEMO_SETS; i++)
        for (unsigned way = 0; way < TOKEN_MEMO_WAYS; way++)
            free(memo->sets[i].ways[way].token);
    free(memo);
}

unsigned long long token_memo_hits(const struct token_verifier *v)
{
    return v->memo != NULL ? v->memo->hits : 0;
}

bool token_verifier_init(struct token_verifier *v, const char *alg, const unsigned char *key,
                         size_t key_len, const char *issuer, const char *audience, double leeway,
                         char *err, size_t errlen)
{
    const struct alg_info *info = find_alg(alg);
    bool ok = true;

    memset(v, 0, sizeof *v);
    if (info == NULL)
        return fail(err, errlen, "alg '%s' is not one of " TOKEN_ALGS, alg ? alg : "");
    if (!check_key(info, key, key_len, false, (EVP_PKEY **)&v->pkey, err, errlen))
        return false;
    v->alg = info->alg;
    snprintf(v->alg_name, sizeof v->alg_name, "%s", info->name);
    v->key = copy_key(key, key_len);
    v->key_len = key_len;
    v->issuer = copy_optional(issuer, &ok);
    v->audience = copy_optional(audience, &ok);
    v->leeway = leeway;
    if (info->kind != KEY_SECRET && (v->memo = calloc(1, sizeof *v->memo)) == NULL)
        ok = false;
    if (v->key == NULL || !ok) {
        token_verifier_free(v);
        return fail(err, errlen, "out of memory");
    }
    return true;
}

void token_verifier_free(struct token_verifier *v)
{
    EVP_PKEY_free(v->pkey);
    free_key(v->key, v->key_len);
    free(v->issuer);
    free(v->audience);
    memo_free(v->memo);
    memset(v, 0, sizeof *v);
}

static enum token_result refuse(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum token_result refuse(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return TOKEN_UNAUTHORIZED;
}

static bool is_base64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* What is wrong with the token's shape, or NULL: three base64url parts
 * (no padding) separated by '.', the header and the payload not empty.
 * The signature may be empty: an alg none token's is, and it is refused
 * for its alg, which says more. */
static const char *shape_problem(const char *token, size_t len)
{
    size_t part_len[3] = {0, 0, 0}, part = 0;

    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (++part > 2)
                return "malformed token: more than three parts";
        } else if (!is_base64url(token[i])) {
            return "malformed token: not base64url";
        } else {
            part_len[part]++;
        }
    }
    if (part != 2)
        return "malformed token: not three parts separated by '.'";
    if (part_len[0] == 0 || part_len[1] == 0)
        return "malformed token: an empty header or payload";
    for (part = 0; part < 3; part++)
        if (part_len[part] % 4 == 1)
            return "malformed token: not base64url";
    return NULL;
}

/* The header's alg, when it is short and plain enough to repeat in a
 * reason; else NULL. */
static const char *printable_alg(const char *alg)
{
    size_t len = alg ? strlen(alg) : 0;

    if (len == 0 || len > 10)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!((alg[i] >= 'A' && alg[i] <= 'Z') || (alg[i] >= 'a' && alg[i] <= 'z') ||
              (alg[i] >= '0' && alg[i] <= '9')))
            return NULL;
    return alg;
}

static enum token_result wrong_alg(const struct token_verifier *v, const char *alg, char *why,
                                   size_t whylen)
{
    if (alg != NULL && strcasecmp(alg, "none") == 0)
        return refuse(why, whylen, "alg none refused");
    if (printable_alg(alg) == NULL)
        return refuse(why, whylen, "alg is not %s", v->alg_name);
    return refuse(why, whylen, "alg %s, expected %s", alg, v->alg_name);
}

/* Why jwt_decode() with the key failed.  Decoded without a key, libjwt
 * 1.10 verifies no signature: that decode only names the reason. */
static enum token_result diagnose(const struct token_verifier *v, const char *token, char *why,
                                  size_t whylen)
{
    jwt_t *jwt = NULL;
    const char *alg;
    enum token_result result;

    if (jwt_decode(&jwt, token, NULL, 0) != 0)
        return refuse(why, whylen,
                      "malformed token: its header or payload cannot be read (not JSON, an "
                      "unknown alg or typ)");
    alg = jwt_get_header(jwt, "alg");
    if (alg == NULL || strcmp(alg, v->alg_name) != 0)
        result = wrong_alg(v, alg, why, whylen);
    else
        result = refuse(why, whylen, "signature does not verify");
    jwt_free(jwt);
    return result;
}

/* sub as a user_id: the decimal digits of an integer >= 1, no sign, no
 * leading zero, as greet-producer writes it. */
static bool parse_user_id(const char *text, size_t len, long long *user_id)
{
    long long value = 0;

    if (len == 0 || len > 19 || text[0] == '0')
        return false;
    for (size_t i = 0; i < len; i++) {
        int digit = text[i] - '0';
        if (digit < 0 || digit > 9 || value > (0x7fffffffffffffffLL - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *user_id = value;
    return true;
}

static bool string_is(json_t *value, const char *expected)
{
    return json_is_string(value) && json_string_length(value) == strlen(expected) &&
           memcmp(json_string_value(value), expected, strlen(expected)) == 0;
}

static bool audience_holds(json_t *aud, const char *expected)
{
    size_t i;
    json_t *item;

    if (json_is_string(aud))
        return string_is(aud, expected);
    json_array_foreach(aud, i, item)
    {
        if (string_is(item, expected))
            return true;
    }
    return false;
}

/* "2026-12-04T17:51:12Z", or the number itself past what a date shows. */
static void format_time(double seconds, char *out, size_t outlen)
{
    struct tm tm;
    time_t t;

    if (seconds >= 0 && seconds < 253402300800.0) { /* 10000-01-01 */
        t = (time_t)seconds;
        if (gmtime_r(&t, &tm) != NULL && strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
            return;
    }
    snprintf(out, outlen, "%.0f", seconds);
}

/* The claims of a token whose signature and alg are good. */
static enum token_result check_claims(const struct token_verifier *v, json_t *claims,
                                      long long user_id, double now, bool redelivered, char *why,
                                      size_t whylen)
{
    json_t *sub = json_object_get(claims, "sub");
    json_t *iss = json_object_get(claims, "iss");
    json_t *aud = json_object_get(claims, "aud");
    json_t *nbf = json_object_get(claims, "nbf");
    json_t *exp = json_object_get(claims, "exp");
    long long sub_id;
    char when[32];

    if (sub == NULL)
        return refuse(why, whylen, "no sub");
    if (!json_is_string(sub) ||
        !parse_user_id(json_string_value(sub), json_string_length(sub), &sub_id))
        return refuse(why, whylen, "sub is not a user_id (the decimal digits of an integer >= 1)");
    if (sub_id != user_id)
        return refuse(why, whylen, "token for user %lld, job for user %lld", sub_id, user_id);
    if (v->issuer != NULL && iss == NULL)
        return refuse(why, whylen, "issuer missing, expected '%s'", v->issuer);
    if (v->issuer != NULL && !string_is(iss, v->issuer))
        return refuse(why, whylen, "issuer is not '%s'", v->issuer);
    if (v->audience != NULL && aud == NULL)
        return refuse(why, whylen, "audience missing, expected '%s'", v->audience);
    if (v->audience != NULL && !audience_holds(aud, v->audience))
        return refuse(why, whylen, "audience does not include '%s'", v->audience);
    if (nbf != NULL && !json_is_number(nbf))
        return refuse(why, whylen, "nbf is not a number");
    /* A reason of the token alone, not of now: a redelivered job that is
     * still not valid gets the same reply again. */
    if (nbf != NULL && now + v->leeway < json_number_value(nbf)) {
        format_time(json_number_value(nbf), when, sizeof when);
        return refuse(why, whylen, "not valid before %s", when);
    }
    if (exp == NULL)
        return refuse(why, whylen, "no exp");
    if (!json_is_number(exp))
        return refuse(why, whylen, "exp is not a number");
    if (now - v->leeway >= json_number_value(exp)) {
        if (!redelivered)
            return refuse(why, whylen, "expired %.0f s ago", floor(now - json_number_value(exp)));
        /* Redelivered: forgiven for TOKEN_REDELIVERY_GRACE s only, since
         * any lost connection redelivers what was in hand (token.h).  A
         * reason of the token alone, as for nbf. */
        if (now - v->leeway - TOKEN_REDELIVERY_GRACE >= json_number_value(exp)) {
            format_time(json_number_value(exp), when, sizeof when);
            return refuse(why, whylen, "expired at %s, more than %.0f s before this redelivery",
                          when, TOKEN_REDELIVERY_GRACE);
        }
    }
    return TOKEN_OK;
}

/* base64url without padding (the shape was checked: only its alphabet,
 * no part of length 1 mod 4) into out; the length, or 0 when it does not
 * fit in outlen or its last character has bits set that it cannot carry
 * (one signature, one spelling). */
static size_t base64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    size_t n = 0;
    unsigned bits = 0, nbits = 0;

    if (len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > outlen)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        unsigned v = c >= 'A' && c <= 'Z'   ? (unsigned)(c - 'A')
                     : c >= 'a' && c <= 'z' ? (unsigned)(c - 'a' + 26)
                     : c >= '0' && c <= '9' ? (unsigned)(c - '0' + 52)
                     : c == '-'             ? 62u
                                            : 63u;
        bits = (bits << 6) | v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out[n++] = (unsigned char)(bits >> nbits);
            bits &= (1u << nbits) - 1;
        }
    }
    return bits == 0 ? n : 0;
}

static const EVP_MD *digest_of(const struct alg_info *info)
{
    const char *size = info->name + 2; /* "256" of "RS256" */

    return strcmp(size, "256") == 0   ? EVP_sha256()
           : strcmp(size, "384") == 0 ? EVP_sha384()
                                      : EVP_sha512();
}

/* Whether token (three parts, its shape checked) is signed by the
 * verifier's public key: RS* a PKCS #1 v1.5 signature, ES* the curve's R
 * and S as two big-endian numbers of its size each (RFC 7518 3.4), made
 * DER for OpenSSL. */
static bool signature_verifies(const struct token_verifier *v, const char *token, size_t len)
{
    const struct alg_info *info = find_alg(v->alg_name);
    const char *dot = memchr(token, '.', len);
    unsigned char sig[1024], der[160], *p = der;
    size_t signed_len, sig_len, half;
    const unsigned char *to_check = sig;
    size_t to_check_len;
    EVP_MD_CTX *ctx;
    bool ok = false;

    dot = memchr(dot + 1, '.', len - (size_t)(dot + 1 - token));
    signed_len = (size_t)(dot - token);
    sig_len = base64url_decode(dot + 1, len - signed_len - 1, sig, sizeof sig);
    if (sig_len == 0)
        return false;
    to_check_len = sig_len;
    if (info->kind == KEY_EC) {
        ECDSA_SIG *ecdsa;
        BIGNUM *r, *s;
        int der_len;

        half = ((size_t)info->bits + 7) / 8;
        if (sig_len != 2 * half || (ecdsa = ECDSA_SIG_new()) == NULL)
            return false;
        r = BN_bin2bn(sig, (int)half, NULL);
        s = BN_bin2bn(sig + half, (int)half, NULL);
        if (r == NULL || s == NULL || ECDSA_SIG_set0(ecdsa, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(ecdsa);
            return false;
        }
        der_len = i2d_ECDSA_SIG(ecdsa, NULL);
        if (der_len > 0 && (size_t)der_len <= sizeof der)
            der_len = i2d_ECDSA_SIG(ecdsa, &p);
        else
            der_len = 0;
        ECDSA_SIG_free(ecdsa);
        if (der_len <= 0)
            return false;
        to_check = der;
        to_check_len = (size_t)der_len;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL)
        return false;
    ok = EVP_DigestVerifyInit(ctx, NULL, digest_of(info), NULL, v->pkey) == 1 &&
         EVP_DigestVerify(ctx, to_check, to_check_len, (const unsigned char *)token, signed_len) ==
             1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static enum token_result check(const struct token_verifier *v, const char *token, size_t len,
                               long long user_id, bool has_user_id, double now, bool redelivered,
                               char *why, size_t whylen)
{
    char copy[TOKEN_MAX_BYTES + 1];
    const char *problem, *alg;
    jwt_t *jwt = NULL;
    json_t *claims = NULL;
    char *claims_text = NULL, *crit;
    enum token_result result;
    bool remembered = false;

    why[0] = '\0';
    /* A token is for a user: without one, no token can do. */
    if (!has_user_id)
        return refuse(why, whylen, "a job without user_id cannot be authorized");
    if (token == NULL || len == 0)
        return refuse(why, whylen, "no token");
    if (len > TOKEN_MAX_BYTES)
        return refuse(why, whylen, "token longer than 8 KiB");
    if ((problem = shape_problem(token, len)) != NULL)
        return refuse(why, whylen, "%s", problem);
    /* No NUL inside (base64url and dots only): libjwt reads it as a C
     * string. */
    memcpy(copy, token, len);
    copy[len] = '\0';

    /* HS*: libjwt checks the signature with the secret.  RS*, ES*: the
     * signature is checked here with the key parsed at start, unless the
     * token is remembered as verified before; either way libjwt then
     * reads it without a key (it reports alg none, and checks nothing). */
    if (v->pkey == NULL) {
        if (jwt_decode(&jwt, copy, v->key, (int)v->key_len) != 0)
            return diagnose(v, copy, why, whylen);
    } else {
        remembered = memo_holds(v->memo, copy, len);
        if (!remembered && !signature_verifies(v, copy, len))
            return diagnose(v, copy, why, whylen);
        if (jwt_decode(&jwt, copy, NULL, 0) != 0)
            return diagnose(v, copy, why, whylen);
    }
    /* The alg of the token's header, as libjwt read it (without case)
     * and as written: the one configured, exactly. */
    alg = jwt_get_header(jwt, "alg");
    if ((v->pkey == NULL && jwt_get_alg(jwt) != (jwt_alg_t)v->alg) || alg == NULL ||
        strcmp(alg, v->alg_name) != 0) {
        result = wrong_alg(v, alg, why, whylen);
        goto done;
    }
    /* crit names header extensions the token must not be taken without
     * (RFC 7515 4.1.11): this worker knows none. */
    if ((crit = jwt_get_headers_json(jwt, "crit")) != NULL) {
        free(crit);
        result = refuse(why, whylen, "crit header: extensions this worker does not know");
        goto done;
    }
    if (v->pkey != NULL && !remembered)
        memo_remember(v->memo, copy, len);
    claims_text = jwt_get_grants_json(jwt, NULL);
    claims = claims_text ? json_loads(claims_text, 0, NULL) : NULL;
    if (!json_is_object(claims)) {
        result = refuse(why, whylen, "malformed token: its payload is not a JSON object");
        goto done;
    }
    result = check_claims(v, claims, user_id, now, redelivered, why, whylen);
done:
    json_decref(claims);
    free(claims_text);
    jwt_free(jwt);
    return result;
}

enum token_result token_check(const struct token_verifier *v, const char *token, size_t len,
                              long long user_id, bool has_user_id, double now, bool redelivered,
                              char *why, size_t whylen)
{
    enum token_result result =
        check(v, token, len, user_id, has_user_id, now, redelivered, why, whylen);

    /* A signature that did not verify leaves OpenSSL's reasons queued in
     * this thread, where the broker link's TLS would find them later and
     * report them as its own. */
    ERR_clear_error();
    return result;
}

enum token_result token_check_job(const struct token_verifier *v, const struct job *job, double now,
                                  bool redelivered, char *why, size_t whylen)
{
    if (!job->has_user_id)
        return token_check(v, NULL, 0, 0, false, now, redelivered, why, whylen);
    switch (job->token_state) {
    case JOB_TOKEN_NONE:
        break;
    case JOB_TOKEN_STRING:
        return token_check(v, job->token, job->token_len, job->user_id, job->has_user_id, now,
                           redelivered, why, whylen);
    case JOB_TOKEN_TOO_LONG:
        return refuse(why, whylen, "token longer than 8 KiB");
    case JOB_TOKEN_NOT_STRING:
        return refuse(why, whylen, "token is not a string");
    }
    return token_check(v, NULL, 0, job->user_id, job->has_user_id, now, redelivered, why, whylen);
}

/* ---- Signing ------------------------------------------------------------ */

bool token_signer_init(struct token_signer *s, const char *alg, const unsigned char *key,
                       size_t key_len, long long ttl, const char *issuer, const char *audience,
                       char *err, size_t errlen)
{
    const struct alg_info *info = find_alg(alg);
    struct buf trial = {0};
    bool ok = true;

    memset(s, 0, sizeof *s);
    if (info == NULL)
        return fail(err, errlen, "alg '%s' is not one of " TOKEN_ALGS, alg ? alg : "");
    if (!check_key(info, key, key_len, true, NULL, err, errlen))
        return false;
    s->alg = info->alg;
    s->key = copy_key(key, key_len);
    s->key_len = key_len;
    s->ttl = ttl;
    s->issuer = copy_optional(issuer, &ok);
    s->audience = copy_optional(audience, &ok);
    if (s->key == NULL || !ok) {
        token_signer_free(s);
        return fail(err, errlen, "out of memory");
    }
    /* Whatever libjwt would refuse shows now, not at the first job. */
    ok = token_sign(s, 1, (long long)time(NULL), &trial, err, errlen);
    buf_free(&trial);
    if (!ok)
        token_signer_free(s);
    return ok;
}

void token_signer_free(struct token_signer *s)
{
    free_key(s->key, s->key_len);
    free(s->issuer);
    free(s->audience);
    memset(s, 0, sizeof *s);
}

bool token_sign(const struct token_signer *s, long long user_id, long long now, struct buf *out,
                char *err, size_t errlen)
{
    jwt_t *jwt = NULL;
    char sub[24], *text = NULL;
    int rc;

    snprintf(sub, sizeof sub, "%lld", user_id);
    rc = jwt_new(&jwt);
    if (rc == 0)
        rc = jwt_set_alg(jwt, (jwt_alg_t)s->alg, s->key, (int)s->key_len);
    if (rc == 0)
        rc = jwt_add_grant(jwt, "sub", sub);
    if (rc == 0)
        rc = jwt_add_grant_int(jwt, "iat", (long)now);
    if (rc == 0)
        rc = jwt_add_grant_int(jwt, "nbf", (long)now);
    if (rc == 0)
        rc = jwt_add_grant_int(jwt, "exp", (long)(now + s->ttl));
    if (rc == 0 && s->issuer != NULL)
        rc = jwt_add_grant(jwt, "iss", s->issuer);
    if (rc == 0 && s->audience != NULL)
        rc = jwt_add_grant(jwt, "aud", s->audience);
    if (rc == 0 && (text = jwt_encode_str(jwt)) == NULL)
        rc = errno != 0 ? errno : EINVAL;
    if (rc == 0) {
        buf_reset(out);
        if (!buf_append_str(out, text))
            rc = ENOMEM;
    }
    free(text);
    jwt_free(jwt);
    if (rc != 0)
        return fail(err, errlen, "cannot sign a token: %s", strerror(rc));
    return true;
}
