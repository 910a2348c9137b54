/* mqtool - what the test suites ask the broker directly:
 *   mqtool depth QUEUE...   messages ready in each queue, one per line
 *   mqtool purge QUEUE...   empty the queues
 *   mqtool wait QUEUE N SECONDS
 *                           poll QUEUE's depth until it reaches N; print the
 *                           seconds that took (exit 1 on timeout)
 * AMQP_URL as for the programs.  A passive queue.declare answers from the
 * queue itself, unlike rabbitmqctl's periodically refreshed metrics. */
#include "clock.h"
#include "log.h"
#include "mq.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *url = getenv("AMQP_URL");
    struct mq_settings settings = {url ? url : "amqp://guest:guest@localhost:5672/", NULL, "mqtool",
                                   0, 10.0};
    char err[512];
    struct mq *mq;
    int status = 0;

    double started = clock_now();

    if (argc < 3 || (strcmp(argv[1], "depth") != 0 && strcmp(argv[1], "purge") != 0 &&
                     (strcmp(argv[1], "wait") != 0 || argc != 5))) {
        fprintf(stderr, "usage: mqtool depth|purge QUEUE... | mqtool wait QUEUE N SECONDS\n");
        return 2;
    }
    log_init("mqtool", LOG_ERROR);
    log_set_fd(2);
    mq = mq_connect(&settings, err, sizeof err);
    if (mq == NULL) {
        fprintf(stderr, "mqtool: %s\n", err);
        return 1;
    }
    if (strcmp(argv[1], "wait") == 0) {
        unsigned long want = strtoul(argv[3], NULL, 10), messages = 0;
        double limit = started + strtod(argv[4], NULL);
        /* Every 5 ms: fine enough for drains of seconds. */
        while (mq_queue_depth(mq, argv[2], &messages, err, sizeof err) && messages < want &&
               clock_now() < limit)
            poll(NULL, 0, 5);
        status = messages >= want ? 0 : 1;
        printf("%.3f\n", clock_now() - started);
        mq_close(mq);
        return status;
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
