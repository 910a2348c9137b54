/* greet-worker: consumes greet jobs, replies, acks after the broker
 * confirmed the reply.  Parse config, set up signals, run the loop. */
#include "config.h"
#include "db_url.h"
#include "log.h"
#include "mq_url.h"
#include "signals.h"
#include "stdfds.h"
#include "token.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GREET_AUTH=jwt: the key read once and checked against the alg, so
 * that a wrong key stops start-up (exit 2) instead of refusing every job.
 * Returns -1 to go on, else the exit status. */
static int set_up_tokens(const struct config *cfg, struct token_verifier *verifier)
{
    struct buf key = {0};
    char err[512];
    bool ok;

    if (strcmp(cfg->auth, "jwt") != 0)
        return -1;
    ok = token_key_load(cfg->jwt_key_file, &key, err, sizeof err) &&
         token_verifier_init(verifier, cfg->jwt_alg, (const unsigned char *)key.data, key.len,
                             cfg->jwt_issuer, cfg->jwt_audience, cfg->jwt_leeway, err, sizeof err);
    token_key_forget(&key);
    if (ok)
        return -1;
    fprintf(stderr, "greet-worker: GREET_JWT_KEY_FILE (--jwt-key-file): %s\n", err);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, db_url_mask};
    struct config cfg;
    struct worker_stats stats = {0};
    struct token_verifier verifier = {0};
    enum log_level level = LOG_INFO;
    int status;

    /* Before any socket is opened: with stdout closed, the broker socket
     * would become descriptor 1 and the log would go into it. */
    if (stdfds_reserve() != 0) {
        fprintf(stderr, "greet-worker: cannot open /dev/null: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    status = config_startup(&cfg, PROGRAM_WORKER, &urls, "greet-worker",
                            "Consume greet jobs from RabbitMQ, read preferences from PostgreSQL, "
                            "publish replies.",
                            argc, argv);

    if (status >= 0)
        return status;
    if ((status = set_up_tokens(&cfg, &verifier)) >= 0) {
        config_free(&cfg);
        return status;
    }
    log_level_parse(cfg.log_level, &level);
    log_init("greet-worker", level);
    if (signals_install(true /* wake pipe */) != 0) {
        fprintf(stderr, "greet-worker: cannot set up signal handling\n");
        token_verifier_free(&verifier);
        config_free(&cfg);
        return EXIT_FAILURE;
    }
    config_log_effective(&cfg);
    status = worker_run(&cfg, strcmp(cfg.auth, "jwt") == 0 ? &verifier : NULL, &signals_stop,
                        signals_wake_fd(), &stats);
    token_verifier_free(&verifier);
    config_free(&cfg);
    return status;
}
