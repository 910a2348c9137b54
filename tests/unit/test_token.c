/* test_token.c - job tokens: every way a token is accepted or refused,
 * the keys a verifier and a signer take, signing and verifying together.
 *
 * Tokens are made here three ways: by libjwt (the signatures of a real
 * signer), by hand (base64url and HMAC-SHA256 from OpenSSL, for headers
 * libjwt would never write: alg none, a lower-case alg, bad JSON), and as
 * literal text.  The key pairs were made once with
 *     openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
 *     openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256
 * and openssl pkey -pubout; they sign nothing but these tests. */
#include "suites.h"
#include "token.h"

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW          1780000000.0 /* 2026-05-28T20:26:40Z */
#define HS_SECRET    "0123456789abcdef0123456789abcdef"
#define OTHER_SECRET "fedcba9876543210fedcba9876543210"
#define ISSUER       "issuer-1"
#define AUDIENCE     "greet"

static const char rsa_private[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCnB7QCy3hmn8hM\n"
    "iWOWOGJDTt01U2LEOQ/G/Ets14zK+qUie8Bn7zwYf7lex7WB+5loF6Rz33UPz49F\n"
    "hmlDsmm0tq+vZ5PFpSWQNpuUeLvSJIjJtdikK4YL2mDei8I0KfAmcOsKcKVTkFGm\n"
    "3yrD7U/z4NrGiMaUBh4fqIBgjTV8HEvpyWXq6yQFT6p86pbKiPqcZoMd+J1nJp9c\n"
    "G0wfY4D2L8IZEfJMObRMUGyJ1EYATIOYksvDJ00LBfztFwI4VWlvWsEEI0SzaOVi\n"
    "x2Ni8BUaZ7/ndSGe5Rd8N7noaAawaSAOy+mA1NRTKDTb05G4Z46iKz5d+j0eFWnt\n"
    "v8dN6wg3AgMBAAECggEAB4Y3szqH0JV1hmZ0ddjDY/5F4f9deAg3k8mUUHicNlac\n"
    "S6rEekohQb9F4GxTd0VfbCcPnEuQMGBsjHFndxigloUSuVILjkdA+KlPwo4vySjt\n"
    "nFV4Kr5uEu/Xa58NydjIPeBoONQey9AOPng7gDrF0DZlRl/0oo80Nr9vTQ24Tc6E\n"
    "xqrcjEvgqn/ud2Kkhl1+xWgpTOzpdcxu1c5VhscZnM2JKYvpLSHfmJYaBibDDqdE\n"
    "cEhC5kyxA2FvgGs6ga9mL26j7Vxk6g1Gb7/tOg23bIaIhW9dSuGv0y3kn0mpUpcm\n"
    "/lq9luJw1ymxi1OD/ZSJSrzr9xUTYvP4Azf7mcWquQKBgQDQqWA92lSALT/ky9Xg\n"
    "jUoP+8DIivTIU1dUzIuJGhKLC/ROpWG0XEyLB0D/Dt8Q8Jb7ZyzWSAXLS8uIhI6M\n"
    "z5lYsVeVvFWgLMS35w89xofw+2/jUgPeT1Vd1twXnoS6KY98wK7eEMALWbwWeE3A\n"
    "KVUvtynePZHUbs47mvcXyi6h6QKBgQDM7HTEV1QP91KdwJfQmCrIU6IRos1msDST\n"
    "Fbrgmqw4hghQEiAgGDvfKaz164oEX+yHXqUdBEYJ6xDpB8BXgC8ju4SEoNCeuwJO\n"
    "KYSVc+q5BjSvwsdtDlryiUhcxdB1UBkatTuscCGuUMwBR82ePtw0p83DiZxkHYWP\n"
    "LMLEKfDlHwKBgQCheTF9LCQQPPQg/oy4hR43WD9L8hyTmcsPWGry4jZPXCTnZ5xA\n"
    "kty5ChgGSV/eIBD25FUSThINzM3pC4u09EJbHIIG4gPxPDPPjQOCbsxsdGeVprZP\n"
    "p10MjWUs8gMMfXUIuaOZPaUgI4Umblrcxh+iGUBRN5xOpKD8B2QICPIlYQKBgQCx\n"
    "YrWpB9cSgwqW15IS1MWj5xFRptWaYEkCUTsVFY6i1xL3DNmWLqQVByRbM+qi4s4C\n"
    "WCEhPwPJrhtTPIx4sdMcYUPS8snjvQm/0xybql2yj/andjne4yBC9icXd3x9MDqq\n"
    "7dqb5+yf0fzl1tvccZl4UxFAhCxGVW+5gguOdqe6DQKBgAXHVEWZpqxLQJq7l4k/\n"
    "W1m9B2fHzSL2kSU/sSL9e1kvlcGdj7ppA/TkIo4Z2TxtMBf5KIr0mdOaB5t+UlRR\n"
    "vHYXl2QW9ga2KE01XDS7N+aiuqrZSsI3hewViRPWe7K1ptlLvkEGQ9dAkqwgIRFE\n"
    "pJUB3efsD6pvzzNhxEApa04/\n"
    "-----END PRIVATE KEY-----\n";
static const char rsa_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApwe0Ast4Zp/ITIljljhi\n"
    "Q07dNVNixDkPxvxLbNeMyvqlInvAZ+88GH+5Xse1gfuZaBekc991D8+PRYZpQ7Jp\n"
    "tLavr2eTxaUlkDablHi70iSIybXYpCuGC9pg3ovCNCnwJnDrCnClU5BRpt8qw+1P\n"
    "8+DaxojGlAYeH6iAYI01fBxL6cll6uskBU+qfOqWyoj6nGaDHfidZyafXBtMH2OA\n"
    "9i/CGRHyTDm0TFBsidRGAEyDmJLLwydNCwX87RcCOFVpb1rBBCNEs2jlYsdjYvAV\n"
    "Gme/53UhnuUXfDe56GgGsGkgDsvpgNTUUyg029ORuGeOois+Xfo9HhVp7b/HTesI\n"
    "NwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char ec_private[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzDOSUuwsifiCpTNP\n"
    "Q/nPdV5WquF37DbwicdMDDhvrWChRANCAASZnWVOLCAbV2R81bakXKqkv4w4ngBS\n"
    "sZGGH41KfkCE3UAnyWK6Z8HzqMKC6JWEt3t4vXfMjkMLLHfk2vt1Qj1U\n"
    "-----END PRIVATE KEY-----\n";
static const char ec_public[] = "-----BEGIN PUBLIC KEY-----\n"
                                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmZ1lTiwgG1dkfNW2pFyqpL+MOJ4A\n"
                                "UrGRhh+NSn5AhN1AJ8liumfB86jCguiVhLd7eL13zI5DCyx35Nr7dUI9VA==\n"
                                "-----END PUBLIC KEY-----\n";

/* ---- Making tokens ------------------------------------------------------ */

static void base64url(const void *data, size_t len, char *out)
{
    size_t n = (size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)len), kept = 0;

    for (size_t i = 0; i < n; i++) {
        if (out[i] == '=')
            continue;
        out[kept++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[kept] = '\0';
}

/* text with every NOW, NOW+N and NOW-N replaced by the number. */
static void expand(const char *text, char *out, size_t outlen)
{
    size_t len = 0;

    while (*text && len + 24 < outlen) {
        if (strncmp(text, "NOW", 3) == 0) {
            long long offset = 0;
            char *end;
            text += 3;
            if (*text == '+' || *text == '-') {
                offset = strtoll(text, &end, 10);
                text = end;
            }
            len += (size_t)snprintf(out + len, outlen - len, "%lld", (long long)NOW + offset);
        } else {
            out[len++] = *text++;
        }
    }
    out[len] = '\0';
}

/* claims with "pad" bytes of padding as one more claim. */
static char *claims_of(const char *claims, size_t pad)
{
    size_t size = strlen(claims) + pad + 256;
    char *out = malloc(size), *end;

    ck_assert_ptr_nonnull(out);
    expand(claims, out, size);
    if (pad > 0) {
        end = out + strlen(out) - 1; /* the closing brace */
        memcpy(end, ",\"pad\":\"", 8);
        memset(end + 8, 'x', pad);
        strcpy(end + 8 + pad, "\"}");
    }
    return out;
}

static void sign_libjwt(jwt_alg_t alg, const void *key, size_t key_len, const char *claims,
                        char *out, size_t outlen)
{
    jwt_t *jwt = NULL;
    char *text;

    ck_assert_int_eq(jwt_new(&jwt), 0);
    ck_assert_int_eq(jwt_set_alg(jwt, alg, key, (int)key_len), 0);
    ck_assert_int_eq(jwt_add_grants_json(jwt, claims), 0);
    text = jwt_encode_str(jwt);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_lt(strlen(text), outlen);
    strcpy(out, text);
    free(text);
    jwt_free(jwt);
}

/* header.claims.signature, by hand: HMAC-SHA256 with key, or no
 * signature at all when key is NULL. */
static void sign_by_hand(const char *header, const char *claims, const char *key, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    size_t len;

    base64url(header, strlen(header), out);
    len = strlen(out);
    out[len++] = '.';
    base64url(claims, strlen(claims), out + len);
    len = strlen(out);
    if (key != NULL)
        HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)out, len, mac, &mac_len);
    out[len++] = '.';
    base64url(mac, mac_len, out + len);
}

/* ---- The table ---------------------------------------------------------- */

enum verifier_kind {
    V_HS256,
    V_RS256,
    V_ES256,
    V_HS256_CLAIMS, /* with GREET_JWT_ISSUER and GREET_JWT_AUDIENCE */
};

enum maker {
    M_HS256,            /* libjwt, HS_SECRET */
    M_HS256_OTHER,      /* libjwt, another secret */
    M_RS256,            /* libjwt, the RSA private key */
    M_ES256,            /* libjwt, the EC private key */
    M_HS256_RSA_PUBLIC, /* libjwt, HS256 with the RSA public key as secret */
    M_BY_HAND,          /* header.claims.HMAC-SHA256(HS_SECRET) */
    M_UNSIGNED,         /* header.claims. */
    M_TAMPERED,         /* a good HS256 token for user 3, its payload replaced by claims */
    M_LITERAL,          /* claims is the token */
};

#define GOOD_CLAIMS "{\"sub\":\"3\",\"iat\":NOW,\"nbf\":NOW,\"exp\":NOW+60}"

static const struct token_case {
    const char *name;
    enum verifier_kind verifier;
    enum maker maker;
    const char *header; /* M_BY_HAND, M_UNSIGNED */
    const char *claims;
    size_t pad;        /* bytes of padding claim */
    long long user_id; /* the job's; 0: none */
    bool redelivered;
    enum token_result want;
    const char *why_has; /* a substring of the reason */
} cases[] = {
    /* Good tokens. */
    {"valid HS256", V_HS256, M_HS256, NULL, GOOD_CLAIMS, 0, 3, false, TOKEN_OK, ""},
    {"valid RS256", V_RS256, M_RS256, NULL, GOOD_CLAIMS, 0, 3, false, TOKEN_OK, ""},
    {"valid ES256", V_ES256, M_ES256, NULL, GOOD_CLAIMS, 0, 3, false, TOKEN_OK, ""},
    {"valid, made by hand", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS,
     0, 3, false, TOKEN_OK, ""},
    {"valid, no typ, no nbf, no iat", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\"}",
     "{\"sub\":\"3\",\"exp\":NOW+60}", 0, 3, false, TOKEN_OK, ""},
    {"valid, a real exp", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":1780000060.5}", 0, 3,
     false, TOKEN_OK, ""},
    {"valid, iss and aud", V_HS256_CLAIMS, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"iss\":\"issuer-1\",\"aud\":\"greet\"}", 0, 3, false, TOKEN_OK,
     ""},
    {"valid, aud a list holding ours", V_HS256_CLAIMS, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"iss\":\"issuer-1\",\"aud\":[\"other\",\"greet\"]}", 0, 3,
     false, TOKEN_OK, ""},
    {"valid, nearly 8 KiB", V_HS256, M_HS256, NULL, GOOD_CLAIMS, 5900, 3, false, TOKEN_OK, ""},
    {"valid, user_id past 2^53", V_HS256, M_HS256, NULL,
     "{\"sub\":\"9223372036854775807\",\"exp\":NOW+60}", 0, 9223372036854775807LL, false, TOKEN_OK,
     ""},

    /* Signatures. */
    {"wrong secret", V_HS256, M_HS256_OTHER, NULL, GOOD_CLAIMS, 0, 3, false, TOKEN_UNAUTHORIZED,
     "signature does not verify"},
    {"payload swapped under a good signature", V_HS256, M_TAMPERED, NULL,
     "{\"sub\":\"7\",\"exp\":NOW+60}", 0, 7, false, TOKEN_UNAUTHORIZED,
     "signature does not verify"},
    {"RS256 signature by another key (an HMAC)", V_RS256, M_BY_HAND,
     "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, 3, false, TOKEN_UNAUTHORIZED,
     "signature does not verify"},
    {"ES256 signature by another key (an HMAC)", V_ES256, M_BY_HAND,
     "{\"alg\":\"ES256\",\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, 3, false, TOKEN_UNAUTHORIZED,
     "signature does not verify"},
    {"alg none", V_HS256, M_UNSIGNED, "{\"alg\":\"none\"}", GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "alg none refused"},
    {"alg none, typ JWT", V_RS256, M_UNSIGNED, "{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_CLAIMS, 0,
     3, false, TOKEN_UNAUTHORIZED, "alg none refused"},
    {"alg None, with a signature", V_HS256, M_BY_HAND, "{\"alg\":\"None\"}", GOOD_CLAIMS, 0, 3,
     false, TOKEN_UNAUTHORIZED, "alg none refused"},
    {"HS256 with the RS256 public key as secret (alg confusion)", V_RS256, M_HS256_RSA_PUBLIC, NULL,
     GOOD_CLAIMS, 0, 3, false, TOKEN_UNAUTHORIZED, "alg HS256, expected RS256"},
    {"RS256 to an HS256 verifier", V_HS256, M_RS256, NULL, GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "alg RS256, expected HS256"},
    {"ES256 to an RS256 verifier", V_RS256, M_ES256, NULL, GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "alg ES256, expected RS256"},
    {"alg in lower case, signed right", V_HS256, M_BY_HAND, "{\"alg\":\"hs256\"}", GOOD_CLAIMS, 0,
     3, false, TOKEN_UNAUTHORIZED, "alg hs256, expected HS256"},
    {"a crit header (extensions we must understand)", V_HS256, M_BY_HAND,
     "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "crit header: extensions this worker does not know"},
    {"a crit header, empty", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\",\"crit\":[]}", GOOD_CLAIMS, 0,
     3, false, TOKEN_UNAUTHORIZED, "crit header"},
    {"alg with a NUL in it", V_HS256, M_UNSIGNED, "{\"alg\":\"HS256\\u0000x\"}", GOOD_CLAIMS, 0, 3,
     false, TOKEN_UNAUTHORIZED, "malformed token"},

    /* Whose token. */
    {"a token for another user", V_HS256, M_HS256, NULL,
     "{\"sub\":\"7\",\"iat\":NOW,\"nbf\":NOW,\"exp\":NOW+60}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "token for user 7, job for user 3"},
    {"a job without user_id", V_HS256, M_HS256, NULL, GOOD_CLAIMS, 0, 0, false, TOKEN_UNAUTHORIZED,
     "a job without user_id cannot be authorized"},
    {"no sub", V_HS256, M_HS256, NULL, "{\"exp\":NOW+60}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "no sub"},
    {"sub not a number", V_HS256, M_HS256, NULL, "{\"sub\":\"ann\",\"exp\":NOW+60}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "sub is not a user_id"},
    {"sub a JSON number", V_HS256, M_HS256, NULL, "{\"sub\":3,\"exp\":NOW+60}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "sub is not a user_id"},
    {"sub with a leading zero", V_HS256, M_HS256, NULL, "{\"sub\":\"03\",\"exp\":NOW+60}", 0, 3,
     false, TOKEN_UNAUTHORIZED, "sub is not a user_id"},
    {"sub past LLONG_MAX", V_HS256, M_HS256, NULL,
     "{\"sub\":\"9223372036854775808\",\"exp\":NOW+60}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "sub is not a user_id"},
    {"sub negative", V_HS256, M_HS256, NULL, "{\"sub\":\"-3\",\"exp\":NOW+60}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "sub is not a user_id"},

    /* Time. */
    {"expired", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":NOW-100}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "expired 100 s ago"},
    {"expired, but redelivered", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":NOW-100}", 0, 3,
     true, TOKEN_OK, ""},
    {"redelivered, expired within the grace and the leeway", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW-329}", 0, 3, true, TOKEN_OK, ""},
    {"redelivered, expired longer ago than the grace", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW-330}", 0, 3, true, TOKEN_UNAUTHORIZED,
     "expired at 2026-05-28T20:21:10Z, more than 300 s before this redelivery"},
    {"expired within the leeway", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":NOW-29}", 0, 3,
     false, TOKEN_OK, ""},
    {"expired by the leeway exactly", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":NOW-30}", 0,
     3, false, TOKEN_UNAUTHORIZED, "expired 30 s ago"},
    {"no exp", V_HS256, M_HS256, NULL, "{\"sub\":\"3\"}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "no exp"},
    {"no exp, redelivered", V_HS256, M_HS256, NULL, "{\"sub\":\"3\"}", 0, 3, true,
     TOKEN_UNAUTHORIZED, "no exp"},
    {"exp not a number", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":\"soon\"}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "exp is not a number"},
    {"not yet valid", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"nbf\":NOW+100,\"exp\":NOW+200}", 0,
     3, false, TOKEN_UNAUTHORIZED, "not valid before 2026-05-28T20:28:20Z"},
    {"not yet valid, redelivered", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"nbf\":NOW+100,\"exp\":NOW+200}", 0, 3, true, TOKEN_UNAUTHORIZED,
     "not valid before 2026-05-28T20:28:20Z"},
    {"not yet valid, within the leeway", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"nbf\":NOW+30,\"exp\":NOW+200}", 0, 3, false, TOKEN_OK, ""},
    {"not yet valid, past the leeway", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"nbf\":NOW+31,\"exp\":NOW+200}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "not valid before"},
    {"nbf not a number", V_HS256, M_HS256, NULL, "{\"sub\":\"3\",\"nbf\":[],\"exp\":NOW+60}", 0, 3,
     false, TOKEN_UNAUTHORIZED, "nbf is not a number"},
    {"nbf past the year 9999", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"nbf\":1e300,\"exp\":NOW+60}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "not valid before 1000000"},

    /* Issuer and audience. */
    {"wrong audience", V_HS256_CLAIMS, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"iss\":\"issuer-1\",\"aud\":\"other\"}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "audience does not include 'greet'"},
    {"audience a list without ours", V_HS256_CLAIMS, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"iss\":\"issuer-1\",\"aud\":[\"a\",\"greet2\"]}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "audience does not include 'greet'"},
    {"no audience", V_HS256_CLAIMS, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"iss\":\"issuer-1\"}", 0, 3, false, TOKEN_UNAUTHORIZED,
     "audience missing, expected 'greet'"},
    {"an audience nobody asked for is ignored", V_HS256, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"aud\":\"other\"}", 0, 3, false, TOKEN_OK, ""},
    {"wrong issuer", V_HS256_CLAIMS, M_HS256, NULL,
     "{\"sub\":\"3\",\"exp\":NOW+60,\"iss\":\"issuer-2\",\"aud\":\"greet\"}", 0, 3, false,
     TOKEN_UNAUTHORIZED, "issuer is not 'issuer-1'"},
    {"no issuer", V_HS256_CLAIMS, M_HS256, NULL, "{\"sub\":\"3\",\"exp\":NOW+60,\"aud\":\"greet\"}",
     0, 3, false, TOKEN_UNAUTHORIZED, "issuer missing, expected 'issuer-1'"},

    /* Size and shape. */
    {"over 8 KiB, signed right", V_HS256, M_HS256, NULL, GOOD_CLAIMS, 6200, 3, false,
     TOKEN_UNAUTHORIZED, "token longer than 8 KiB"},
    {"empty", V_HS256, M_LITERAL, NULL, "", 0, 3, false, TOKEN_UNAUTHORIZED, "no token"},
    {"one part", V_HS256, M_LITERAL, NULL, "eyJhbGciOiJIUzI1NiJ9", 0, 3, false, TOKEN_UNAUTHORIZED,
     "malformed token: not three parts"},
    {"two parts", V_HS256, M_LITERAL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30", 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token: not three parts"},
    {"four parts", V_HS256, M_LITERAL, NULL, "e30.e30.e30.e30", 0, 3, false, TOKEN_UNAUTHORIZED,
     "malformed token: more than three parts"},
    {"empty header", V_HS256, M_LITERAL, NULL, ".e30.abcd", 0, 3, false, TOKEN_UNAUTHORIZED,
     "malformed token: an empty header or payload"},
    {"empty payload", V_HS256, M_LITERAL, NULL, "e30..abcd", 0, 3, false, TOKEN_UNAUTHORIZED,
     "malformed token: an empty header or payload"},
    {"base64 padding", V_HS256, M_LITERAL, NULL, "e30=.e30=.abcd", 0, 3, false, TOKEN_UNAUTHORIZED,
     "malformed token: not base64url"},
    {"base64, not base64url", V_HS256, M_LITERAL, NULL, "e30.e3+/.abcd", 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token: not base64url"},
    {"a part of impossible length", V_HS256, M_LITERAL, NULL, "e30.e30.abcde", 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token: not base64url"},
    {"spaces", V_HS256, M_LITERAL, NULL, "e30. e30.abcd", 0, 3, false, TOKEN_UNAUTHORIZED,
     "malformed token: not base64url"},
    {"header not JSON", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\"", GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token"},
    {"payload not JSON", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\"}", "{\"sub\":\"3\",", 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token"},
    {"payload a JSON list", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\"}", "[\"3\"]", 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token: its payload is not a JSON object"},
    {"no alg", V_HS256, M_BY_HAND, "{\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token"},
    {"an unknown alg", V_HS256, M_BY_HAND, "{\"alg\":\"HS257\"}", GOOD_CLAIMS, 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token"},
    {"typ not JWT", V_HS256, M_BY_HAND, "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", GOOD_CLAIMS, 0,
     3, false, TOKEN_UNAUTHORIZED, "malformed token"},
    {"random bytes in three parts", V_HS256, M_LITERAL, NULL, "AAAA.____.----", 0, 3, false,
     TOKEN_UNAUTHORIZED, "malformed token"},
};

#define N_CASES (sizeof cases / sizeof cases[0])

static void make_verifier(enum verifier_kind kind, struct token_verifier *v)
{
    char err[256] = "";
    bool ok = false;

    switch (kind) {
    case V_HS256:
        ok = token_verifier_init(v, "HS256", (const unsigned char *)HS_SECRET, strlen(HS_SECRET),
                                 NULL, "", 30, err, sizeof err);
        break;
    case V_HS256_CLAIMS:
        ok = token_verifier_init(v, "HS256", (const unsigned char *)HS_SECRET, strlen(HS_SECRET),
                                 ISSUER, AUDIENCE, 30, err, sizeof err);
        break;
    case V_RS256:
        ok = token_verifier_init(v, "RS256", (const unsigned char *)rsa_public, strlen(rsa_public),
                                 NULL, NULL, 30, err, sizeof err);
        break;
    case V_ES256:
        ok = token_verifier_init(v, "ES256", (const unsigned char *)ec_public, strlen(ec_public),
                                 NULL, NULL, 30, err, sizeof err);
        break;
    }
    ck_assert_msg(ok, "verifier: %s", err);
}

/* The token of case c, in out (room for 32 KiB). */
static void make_token(const struct token_case *c, char *out, size_t outlen)
{
    char *claims = claims_of(c->claims, c->pad);
    char good[1024], payload[4096];

    switch (c->maker) {
    case M_HS256:
        sign_libjwt(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), claims, out, outlen);
        break;
    case M_HS256_OTHER:
        sign_libjwt(JWT_ALG_HS256, OTHER_SECRET, strlen(OTHER_SECRET), claims, out, outlen);
        break;
    case M_RS256:
        sign_libjwt(JWT_ALG_RS256, rsa_private, strlen(rsa_private), claims, out, outlen);
        break;
    case M_ES256:
        sign_libjwt(JWT_ALG_ES256, ec_private, strlen(ec_private), claims, out, outlen);
        break;
    case M_HS256_RSA_PUBLIC:
        sign_libjwt(JWT_ALG_HS256, rsa_public, strlen(rsa_public), claims, out, outlen);
        break;
    case M_BY_HAND:
        sign_by_hand(c->header, claims, HS_SECRET, out);
        break;
    case M_UNSIGNED:
        sign_by_hand(c->header, claims, NULL, out);
        break;
    case M_TAMPERED: {
        char *good_claims = claims_of(GOOD_CLAIMS, 0);
        const char *dot1, *dot2;
        sign_libjwt(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), good_claims, good, sizeof good);
        free(good_claims);
        dot1 = strchr(good, '.');
        dot2 = strchr(dot1 + 1, '.');
        base64url(claims, strlen(claims), payload);
        snprintf(out, outlen, "%.*s.%s%s", (int)(dot1 - good), good, payload, dot2);
        break;
    }
    case M_LITERAL:
        snprintf(out, outlen, "%s", claims);
        break;
    }
    free(claims);
}

/* Whether why repeats a part of token (longer than 8 characters). */
static bool echoes(const char *why, const char *token)
{
    char part[32768];
    const char *start = token;

    for (const char *p = token;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t len = (size_t)(p - start);
            if (len > 8 && len < sizeof part) {
                memcpy(part, start, len);
                part[len] = '\0';
                if (strstr(why, part) != NULL)
                    return true;
            }
            if (*p == '\0')
                return false;
            start = p + 1;
        }
    }
}

START_TEST(test_check)
{
    const struct token_case *c = &cases[_i];
    struct token_verifier v;
    static char token[32768];
    char why[256], again[256];
    enum token_result result;

    make_verifier(c->verifier, &v);
    make_token(c, token, sizeof token);
    result = token_check(&v, token, strlen(token), c->user_id, c->user_id > 0, NOW, c->redelivered,
                         why, sizeof why);
    ck_assert_msg(result == c->want, "%s: got %s (%s)", c->name,
                  result == TOKEN_OK ? "ok" : "unauthorized", why);
    if (result == TOKEN_OK)
        ck_assert_msg(why[0] == '\0', "%s: '%s'", c->name, why);
    else
        ck_assert_msg(why[0] != '\0' && strstr(why, c->why_has) != NULL, "%s: '%s' lacks '%s'",
                      c->name, why, c->why_has);
    ck_assert_msg(strchr(why, '\n') == NULL, "%s: a reason is one line", c->name);
    ck_assert_msg(!echoes(why, token), "%s: '%s' repeats the token", c->name, why);
    /* The same job checked again: the same answer, word for word (a
     * redelivered job's error reply is byte-identical). */
    ck_assert(token_check(&v, token, strlen(token), c->user_id, c->user_id > 0, NOW, c->redelivered,
                          again, sizeof again) == result);
    ck_assert_str_eq(again, why);
    token_verifier_free(&v);
}
END_TEST

/* A token not valid yet is refused for the same words later on: its
 * reason names nbf, not how far off it is. */
START_TEST(test_nbf_reason_is_the_tokens)
{
    struct token_verifier v;
    char token[1024], first[256], later[256];
    char *claims = claims_of("{\"sub\":\"3\",\"nbf\":NOW+100,\"exp\":NOW+200}", 0);

    make_verifier(V_HS256, &v);
    sign_libjwt(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), claims, token, sizeof token);
    ck_assert(token_check(&v, token, strlen(token), 3, true, NOW, false, first, sizeof first) ==
              TOKEN_UNAUTHORIZED);
    ck_assert(token_check(&v, token, strlen(token), 3, true, NOW + 60, true, later, sizeof later) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_str_eq(first, later);
    ck_assert(token_check(&v, token, strlen(token), 3, true, NOW + 70, true, later, sizeof later) ==
              TOKEN_OK);
    free(claims);
    token_verifier_free(&v);
}
END_TEST

/* A public-key verifier remembers the tokens that verified, and checks
 * their alg and claims again every time; nothing else is remembered. */
START_TEST(test_memo)
{
    struct token_verifier v, hs;
    char token[1024], confused[1024], why[256];
    char *claims = claims_of(GOOD_CLAIMS, 0);
    size_t len;

    make_verifier(V_ES256, &v);
    sign_libjwt(JWT_ALG_ES256, ec_private, strlen(ec_private), claims, token, sizeof token);
    len = strlen(token);
    ck_assert(token_check(&v, token, len, 3, true, NOW, false, why, sizeof why) == TOKEN_OK);
    ck_assert_uint_eq(token_memo_hits(&v), 0);
    ck_assert(token_check(&v, token, len, 3, true, NOW, false, why, sizeof why) == TOKEN_OK);
    ck_assert_uint_eq(token_memo_hits(&v), 1);
    ck_assert(token_check(&v, token, len, 4, true, NOW, false, why, sizeof why) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_str_eq(why, "token for user 3, job for user 4");
    ck_assert(token_check(&v, token, len, 3, true, NOW + 100, false, why, sizeof why) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_str_eq(why, "expired 40 s ago");
    ck_assert(token_check(&v, token, len, 3, true, NOW + 100, true, why, sizeof why) == TOKEN_OK);
    ck_assert_uint_eq(token_memo_hits(&v), 4);
    /* Another signature under the same header and payload: verified. */
    token[len - 2] = token[len - 2] == 'A' ? 'B' : 'A';
    ck_assert(token_check(&v, token, len, 3, true, NOW, false, why, sizeof why) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_str_eq(why, "signature does not verify");
    ck_assert_uint_eq(token_memo_hits(&v), 4);
    token_verifier_free(&v);

    /* A token refused for its alg is never remembered. */
    make_verifier(V_RS256, &v);
    sign_libjwt(JWT_ALG_HS256, rsa_public, strlen(rsa_public), claims, confused, sizeof confused);
    for (int i = 0; i < 2; i++) {
        ck_assert(token_check(&v, confused, strlen(confused), 3, true, NOW, false, why,
                              sizeof why) == TOKEN_UNAUTHORIZED);
        ck_assert_str_eq(why, "alg HS256, expected RS256");
    }
    ck_assert_uint_eq(token_memo_hits(&v), 0);
    token_verifier_free(&v);

    /* HMAC costs less than a lookup would: nothing remembered. */
    make_verifier(V_HS256, &hs);
    sign_libjwt(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), claims, token, sizeof token);
    for (int i = 0; i < 2; i++)
        ck_assert(token_check(&hs, token, strlen(token), 3, true, NOW, false, why, sizeof why) ==
                  TOKEN_OK);
    ck_assert_uint_eq(token_memo_hits(&hs), 0);
    token_verifier_free(&hs);
    free(claims);
}
END_TEST

/* A NUL inside: libjwt would read a shorter token. */
/* RS* and ES* signatures are checked by token.c with OpenSSL, not by
 * libjwt: every form of a signature that is not the one the key made is
 * refused, a first time and again (nothing remembered). */
START_TEST(test_signature_forms)
{
    struct token_verifier v;
    char token[1024], bad[1024], why[256];
    char *claims = claims_of(GOOD_CLAIMS, 0);
    const char *sig;
    size_t len, sig_at;
    static const char *const signatures[] = {
        "",     /* none */
        "AAAA", /* 3 bytes */
        /* 64 zero bytes: r = s = 0 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* 65 bytes */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };

    make_verifier(V_ES256, &v);
    sign_libjwt(JWT_ALG_ES256, ec_private, strlen(ec_private), claims, token, sizeof token);
    free(claims);
    len = strlen(token);
    sig = strrchr(token, '.') + 1;
    sig_at = (size_t)(sig - token);
    ck_assert_uint_eq(len - sig_at, 86); /* 64 bytes: R and S of P-256 */
    for (size_t i = 0; i < sizeof signatures / sizeof signatures[0]; i++) {
        snprintf(bad, sizeof bad, "%.*s%s", (int)sig_at, token, signatures[i]);
        for (int round = 0; round < 2; round++) {
            ck_assert_msg(token_check(&v, bad, strlen(bad), 3, true, NOW, false, why, sizeof why) ==
                              TOKEN_UNAUTHORIZED,
                          "signature %zu taken", i);
            ck_assert_str_eq(why, "signature does not verify");
        }
    }
    /* The same signature spelt another way: its last character carries 2
     * bits of the 512 (so it is A, Q, g or w), its other 4 must be 0. */
    snprintf(bad, sizeof bad, "%s", token);
    ck_assert_ptr_nonnull(strchr("AQgw", token[len - 1]));
    bad[len - 1] = (char)(token[len - 1] + 1); /* B, R, h, x: the lowest bit set */
    ck_assert(token_check(&v, bad, len, 3, true, NOW, false, why, sizeof why) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_str_eq(why, "signature does not verify");
    /* The signature truncated by a byte. */
    snprintf(bad, sizeof bad, "%.*s", (int)len - 2, token);
    ck_assert(token_check(&v, bad, strlen(bad), 3, true, NOW, false, why, sizeof why) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_uint_eq(token_memo_hits(&v), 0);
    /* And the token as made: taken. */
    ck_assert(token_check(&v, token, len, 3, true, NOW, false, why, sizeof why) == TOKEN_OK);
    token_verifier_free(&v);
}
END_TEST

START_TEST(test_nul_inside)
{
    struct token_verifier v;
    char token[1024], why[256];
    char *claims = claims_of(GOOD_CLAIMS, 0);
    size_t len;

    make_verifier(V_HS256, &v);
    sign_libjwt(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), claims, token, sizeof token - 8);
    len = strlen(token);
    ck_assert(token_check(&v, token, len, 3, true, NOW, false, why, sizeof why) == TOKEN_OK);
    memcpy(token + len, "\0abc", 4);
    ck_assert(token_check(&v, token, len + 4, 3, true, NOW, false, why, sizeof why) ==
              TOKEN_UNAUTHORIZED);
    ck_assert_str_eq(why, "malformed token: not base64url");
    free(claims);
    token_verifier_free(&v);
}
END_TEST

/* What a job's "token" key held, judged the same way. */
START_TEST(test_check_job)
{
    static const struct {
        const char *body_head; /* the body up to the token */
        const char *token;     /* "GOOD": a good token for user 3; NULL: none */
        size_t long_token;     /* a string of this many 'a' instead */
        const char *why;       /* "": accepted */
    } jobs[] = {
        {"{\"job_id\":\"j\",\"user_id\":3", NULL, 0, "no token"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":null", NULL, 0, "no token"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":5", NULL, 0, "token is not a string"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":{}", NULL, 0, "token is not a string"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":\"\"", NULL, 0, "no token"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":", NULL, 8193, "token longer than 8 KiB"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":", NULL, 60000, "token longer than 8 KiB"},
        {"{\"job_id\":\"j\",\"token\":", "GOOD", 0, "a job without user_id cannot be authorized"},
        {"{\"job_id\":\"j\"", NULL, 0, "a job without user_id cannot be authorized"},
        {"{\"job_id\":\"j\",\"user_id\":null,\"token\":5", NULL, 0,
         "a job without user_id cannot be authorized"},
        {"{\"job_id\":\"j\",\"user_id\":4,\"token\":", "GOOD", 0,
         "token for user 3, job for user 4"},
        {"{\"job_id\":\"j\",\"user_id\":3,\"token\":", "GOOD", 0, ""},
    };
    struct token_verifier v;
    struct buf body = {0};
    static struct job job;
    char token[1024], detail[256], why[256];
    char *claims = claims_of(GOOD_CLAIMS, 0);

    make_verifier(V_HS256, &v);
    sign_libjwt(JWT_ALG_HS256, HS_SECRET, strlen(HS_SECRET), claims, token, sizeof token);
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
        buf_reset(&body);
        ck_assert(buf_append_str(&body, jobs[i].body_head));
        if (jobs[i].token != NULL) {
            ck_assert(buf_append_str(&body, "\"") && buf_append_str(&body, token) &&
                      buf_append_str(&body, "\""));
        } else if (jobs[i].long_token > 0) {
            ck_assert(buf_append_str(&body, "\""));
            for (size_t n = 0; n < jobs[i].long_token; n++)
                ck_assert(buf_append(&body, "a", 1));
            ck_assert(buf_append_str(&body, "\""));
        }
        ck_assert(buf_append_str(&body, "}"));
        ck_assert_int_eq(job_decode(body.data, body.len, &job, detail, sizeof detail), JOB_OK);
        ck_assert(token_check_job(&v, &job, NOW, false, why, sizeof why) ==
                  (jobs[i].why[0] ? TOKEN_UNAUTHORIZED : TOKEN_OK));
        ck_assert_msg(strcmp(why, jobs[i].why) == 0, "job %zu: '%s', want '%s'", i, why,
                      jobs[i].why);
    }
    free(claims);
    buf_free(&body);
    token_verifier_free(&v);
}
END_TEST

/* ---- Keys --------------------------------------------------------------- */

static const struct {
    bool signer; /* a signer's key (private), else a verifier's */
    const char *alg;
    const char *key;
    const char *error_has;      /* NULL: taken */
    const char *before, *after; /* more text around key in the file */
} keys[] = {
    {false, "HS256", HS_SECRET, NULL},
    {false, "RS256", rsa_public, NULL},
    {false, "RS512", rsa_public, NULL},
    {false, "ES256", ec_public, NULL},
    {false, "HS256", "short secret", "an HS256 secret must be at least 32 bytes, got 12"},
    {false, "HS512", HS_SECRET, "an HS512 secret must be at least 64 bytes"},
    {false, "HS256", rsa_public, "holds a PEM key, but HS256 takes a shared secret"},
    {false, "RS256", ec_public, "RS256 takes an RSA key"},
    {false, "ES256", rsa_public, "ES256 takes an EC key"},
    {false, "ES384", ec_public,
     "ES384 takes an EC key on the curve P-384 (secp384r1), got 256 bits"},
    {false, "RS256", rsa_private, "holds a private key: a worker takes only the public key"},
    /* A PEM key anywhere in an HMAC secret's file, not only at its start
     * (a comment line above it, a key pasted after a secret). */
    {false, "HS256", rsa_public, "holds a PEM key, but HS256 takes a shared secret",
     "# the team's key\n", NULL},
    {false, "HS256", HS_SECRET, "holds a PEM key, but HS256 takes a shared secret", NULL,
     "\n-----BEGIN PUBLIC KEY-----\n"},
    /* A private key after the public one: the verifier's file must not
     * hold what signs. */
    {false, "RS256", rsa_public, "holds a private key: a worker takes only the public key", NULL,
     rsa_private},
    {false, "ES256", ec_public, "holds a private key: a worker takes only the public key", NULL,
     ec_private},
    {false, "RS256", "not a key at all", "holds no PEM public key"},
    {false, "EdDSA", HS_SECRET, "alg 'EdDSA' is not one of HS256"},
    {false, "none", HS_SECRET, "alg 'none' is not one of"},
    {false, "hs256", HS_SECRET, "alg 'hs256' is not one of"},
    {true, "HS256", HS_SECRET, NULL},
    {true, "RS256", rsa_private, NULL},
    {true, "ES256", ec_private, NULL},
    {true, "HS256", "short", "at least 32 bytes"},
    {true, "RS256", rsa_public, "holds no PEM private key"},
    {true, "ES256", rsa_private, "ES256 takes an EC key"},
    {true, "ES512", ec_private, "ES512 takes an EC key on the curve P-521"},
};

START_TEST(test_keys)
{
    char err[256] = "", key[4096];
    bool ok;

    ck_assert_int_lt(snprintf(key, sizeof key, "%s%s%s", keys[_i].before ? keys[_i].before : "",
                              keys[_i].key, keys[_i].after ? keys[_i].after : ""),
                     (int)sizeof key);
    if (keys[_i].signer) {
        struct token_signer s;
        ok = token_signer_init(&s, keys[_i].alg, (const unsigned char *)key, strlen(key), 60, NULL,
                               NULL, err, sizeof err);
        if (ok)
            token_signer_free(&s);
    } else {
        struct token_verifier v;
        ok = token_verifier_init(&v, keys[_i].alg, (const unsigned char *)key, strlen(key), NULL,
                                 NULL, 30, err, sizeof err);
        if (ok)
            token_verifier_free(&v);
    }
    ck_assert_msg(ok == (keys[_i].error_has == NULL), "key %d: %s", _i, err);
    if (!ok)
        ck_assert_msg(strstr(err, keys[_i].error_has) != NULL, "key %d: '%s' lacks '%s'", _i, err,
                      keys[_i].error_has);
    ck_assert_msg(strstr(err, "0123456789abcdef") == NULL, "key %d: the secret in '%s'", _i, err);
}
END_TEST

/* What greet-producer makes, the worker takes: for its user, in its time,
 * with its issuer and audience. */
START_TEST(test_sign_then_check)
{
    static const struct {
        const char *alg;
        const char *private_key, *public_key;
    } pairs[] = {
        {"HS256", HS_SECRET, HS_SECRET},
        {"RS256", rsa_private, rsa_public},
        {"ES256", ec_private, ec_public},
    };
    struct token_signer s;
    struct token_verifier v;
    struct buf token = {0};
    char err[256], why[256];

    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ck_assert_msg(
            token_signer_init(&s, pairs[i].alg, (const unsigned char *)pairs[i].private_key,
                              strlen(pairs[i].private_key), 600, ISSUER, AUDIENCE, err, sizeof err),
            "%s", err);
        ck_assert(token_verifier_init(&v, pairs[i].alg, (const unsigned char *)pairs[i].public_key,
                                      strlen(pairs[i].public_key), ISSUER, AUDIENCE, 30, err,
                                      sizeof err));
        ck_assert_msg(token_sign(&s, 42, (long long)NOW, &token, err, sizeof err), "%s", err);
        ck_assert_uint_lt(token.len, 1024);
        ck_assert_msg(token_check(&v, token.data, token.len, 42, true, NOW, false, why,
                                  sizeof why) == TOKEN_OK,
                      "%s: %s", pairs[i].alg, why);
        ck_assert(token_check(&v, token.data, token.len, 43, true, NOW, false, why, sizeof why) ==
                  TOKEN_UNAUTHORIZED);
        ck_assert_str_eq(why, "token for user 42, job for user 43");
        ck_assert(token_check(&v, token.data, token.len, 42, true, NOW + 630, false, why,
                              sizeof why) == TOKEN_UNAUTHORIZED);
        ck_assert_str_eq(why, "expired 30 s ago");
        ck_assert(token_check(&v, token.data, token.len, 42, true, NOW - 31, false, why,
                              sizeof why) == TOKEN_UNAUTHORIZED);
        ck_assert_str_eq(why, "not valid before 2026-05-28T20:26:40Z");
        token_signer_free(&s);
        token_verifier_free(&v);
    }
    buf_free(&token);
}
END_TEST

START_TEST(test_key_files)
{
    char path[] = "/tmp/greet-key-XXXXXX", err[256];
    struct buf key = {0};
    int fd = mkstemp(path);
    static char big[TOKEN_KEY_MAX + 1];

    ck_assert(fd >= 0);
    ck_assert(write(fd, "secret\n", 7) == 7);
    ck_assert(token_key_load(path, &key, err, sizeof err));
    ck_assert_uint_eq(key.len, 7); /* every byte, the newline too */
    ck_assert(memcmp(key.data, "secret\n", 7) == 0);
    ck_assert(ftruncate(fd, 0) == 0);
    ck_assert(!token_key_load(path, &key, err, sizeof err));
    ck_assert_msg(strstr(err, "is empty") != NULL, "%s", err);
    memset(big, 'k', sizeof big);
    ck_assert(pwrite(fd, big, sizeof big, 0) == (ssize_t)sizeof big);
    ck_assert(!token_key_load(path, &key, err, sizeof err));
    ck_assert_msg(strstr(err, "is longer than 65536 bytes") != NULL, "%s", err);
    close(fd);
    unlink(path);
    ck_assert(!token_key_load(path, &key, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot read") && strstr(err, "No such file"), "%s", err);
    token_key_forget(&key);
    ck_assert_ptr_null(key.data);
}
END_TEST

Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_check, 0, N_CASES);
    tcase_add_test(tc, test_nbf_reason_is_the_tokens);
    tcase_add_test(tc, test_memo);
    tcase_add_test(tc, test_signature_forms);
    tcase_add_test(tc, test_nul_inside);
    tcase_add_test(tc, test_check_job);
    tcase_add_loop_test(tc, test_keys, 0, sizeof keys / sizeof keys[0]);
    tcase_add_test(tc, test_sign_then_check);
    tcase_add_test(tc, test_key_files);
    suite_add_tcase(s, tc);
    return s;
}
