/* mqtool - what the test suites ask the broker directly:
 *   mqtool depth QUEUE...   messages ready in each queue, one per line
 *   mqtool purge QUEUE...   empty the queues
 * AMQP_URL as for the programs.  A passive queue.declare answers from the
 * queue itself, unlike rabbitmqctl's periodically refreshed metrics. */
#include "log.h"
#include "mq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *url = getenv("AMQP_URL");
    struct mq_settings settings = {url ? url : "amqp://guest:guest@localhost:5672/", NULL, "mqtool", 0, 10.0};
    char err[512];
    struct mq *mq;
    int status = 0;

    if (argc < 3 || (strcmp(argv[1], "depth") != 0 && strcmp(argv[1], "purge") != 0)) {
        fprintf(stderr, "usage: mqtool depth|purge QUEUE...\n");
        return 2;
    }
    log_init("mqtool", LOG_ERROR);
    log_set_fd(2);
    mq = mq_connect(&settings, err, sizeof err);
    if (mq == NULL) {
        fprintf(stderr, "mqtool: %s\n", err);
        return 1;
    }
    for (int i = 2; i < argc && status == 0; i++) {
        unsigned long messages;
        if (strcmp(argv[1], "depth") == 0) {
            if (mq_queue_depth(mq, argv[i], &messages, err, sizeof err))
                printf("%lu\n", messages);
            else
                status = 1;
        } else if (!mq_queue_purge(mq, argv[i], err, sizeof err)) {
            status = 1;
        }
    }
    if (status != 0) {
        fprintf(stderr, "mqtool: %s\n", err);
        mq_abandon(mq);
        return status;
    }
    mq_close(mq);
    return 0;
}
