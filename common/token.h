/* token.h - signed job tokens (JWT): verifying them in the worker, making
 * them in the producer.  libjwt does the decoding and the cryptography;
 * this module adds what libjwt 1.10 leaves to its caller: exactly one
 * accepted alg ("none" never), the claims (sub, iss, aud, nbf, exp) and a
 * one-line reason for every refusal that never repeats the token.
 *
 * A job's token is the string field "token" of its body (job.h); its sub
 * is the job's user_id in decimal.  Pure but for token_key_load(): plain
 * values in, a verdict out. */
#ifndef GREET_TOKEN_H
#define GREET_TOKEN_H

#include "buf.h"
#include "job.h"

#include <stdbool.h>
#include <stddef.h>

/* A token longer than this is refused unread (the job body may be 64 KiB). */
#define TOKEN_MAX_BYTES JOB_TOKEN_MAX
/* A key file is a secret or one PEM key; anything longer is a mistake. */
#define TOKEN_KEY_MAX 65536

/* The algs this build verifies and signs, exactly as a token's header
 * names them; config.c checks the settings against this list.  EdDSA is
 * not among them: libjwt 1.10 has none. */
#define TOKEN_ALGS "HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512"

enum token_result {
    TOKEN_OK,
    TOKEN_UNAUTHORIZED,
};

struct token_verifier {
    int alg;            /* libjwt's jwt_alg_t */
    char alg_name[8];   /* "HS256": the header's alg must be this, exactly */
    unsigned char *key; /* the HMAC secret or the PEM public key, owned */
    size_t key_len;
    char *issuer;   /* NULL: iss not checked */
    char *audience; /* NULL: aud not checked */
    double leeway;  /* seconds of clock skew allowed on exp and nbf */
    /* RS* and ES*: the public key, parsed once (OpenSSL's EVP_PKEY);
     * NULL for HS*. */
    struct evp_pkey_st *pkey;
    /* RS* and ES*: the tokens whose signature verified (token.c); NULL
     * for HS*.  Written by token_check() through a const verifier: one
     * thread only. */
    struct token_memo *memo;
};

/* Reads a key file whole (every byte is the secret, a final newline
 * included) into key; false with err filled. */
bool token_key_load(const char *path, struct buf *key, char *err, size_t errlen);
/* Wipes and frees what token_key_load() read, once the key is copied. */
void token_key_forget(struct buf *key);

/* Sets v up; the key is checked now (a PEM public key of the alg's type
 * and curve, or a secret at least as long as the hash), so that a wrong
 * key stops start-up instead of refusing every job.  issuer and audience
 * may be NULL or "".  false with err filled. */
bool token_verifier_init(struct token_verifier *v, const char *alg, const unsigned char *key,
                         size_t key_len, const char *issuer, const char *audience, double leeway,
                         char *err, size_t errlen);
void token_verifier_free(struct token_verifier *v);

/* How long past its exp a redelivered job's token is still taken.  A
 * redelivered job was delivered before, maybe while its token was valid,
 * and may already have been answered ok (a worker lost between its
 * reply's confirm and its ack): answering it unauthorized would break
 * the byte-identical duplicates.  But any lost connection (a broker
 * restart, a worker killed) redelivers every job in hand, expired ones
 * included, so the forgiveness is bounded: a redelivery comes within
 * seconds of the loss, a heartbeat timeout at most. */
#define TOKEN_REDELIVERY_GRACE 300.0

/* The verdict on token[0..len) for a job of user_id (has_user_id false: a
 * job without one), at now (seconds since the epoch).  exp is checked on
 * a first delivery; on a redelivery only TOKEN_REDELIVERY_GRACE s later
 * (README, "Expiry and redelivery").  TOKEN_UNAUTHORIZED with a one-line
 * reason in why ("" for TOKEN_OK); the reason depends on now only for a
 * first delivery's exp, so a redelivered job gets the same reason again. */
enum token_result token_check(const struct token_verifier *v, const char *token, size_t len,
                              long long user_id, bool has_user_id, double now, bool redelivered,
                              char *why, size_t whylen);

/* How many checks found their token's signature already verified. */
unsigned long long token_memo_hits(const struct token_verifier *v);

/* token_check() on a decoded job: its token field whatever it held. */
enum token_result token_check_job(const struct token_verifier *v, const struct job *job, double now,
                                  bool redelivered, char *why, size_t whylen);

/* Making tokens (greet-producer --jwt-key): alg and the key (an HMAC
 * secret or a PEM private key), each token valid from its issue for ttl
 * seconds, with iss and aud when given. */
struct token_signer {
    int alg;
    unsigned char *key;
    size_t key_len;
    long long ttl;
    char *issuer;
    char *audience;
};

bool token_signer_init(struct token_signer *s, const char *alg, const unsigned char *key,
                       size_t key_len, long long ttl, const char *issuer, const char *audience,
                       char *err, size_t errlen);
void token_signer_free(struct token_signer *s);

/* A token for user_id issued at now (whole seconds): sub, iat, nbf = now,
 * exp = now + ttl.  Replaces out's contents; false with err filled. */
bool token_sign(const struct token_signer *s, long long user_id, long long now, struct buf *out,
                char *err, size_t errlen);

#endif
