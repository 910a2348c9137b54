/* greet-worker: consumes greet jobs, replies, acks after the broker
 * confirmed the reply.  Parse config, set up signals, run the loop. */
#include "config.h"
#include "db_url.h"
#include "log.h"
#include "mq_url.h"
#include "signals.h"
#include "stdfds.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, db_url_mask};
    struct config cfg;
    struct worker_stats stats = {0};
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
    log_level_parse(cfg.log_level, &level);
    log_init("greet-worker", level);
    if (signals_install(true /* wake pipe */) != 0) {
        fprintf(stderr, "greet-worker: cannot set up signal handling\n");
        config_free(&cfg);
        return EXIT_FAILURE;
    }
    config_log_effective(&cfg);
    status = worker_run(&cfg, &signals_stop, signals_wake_fd(), &stats);
    config_free(&cfg);
    return status;
}
