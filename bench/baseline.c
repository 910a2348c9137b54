/* baseline - the broker-only ceiling for the throughput benchmark.
 *
 *   baseline QUEUE REPLY_QUEUE COUNT PREFETCH
 *
 * The fastest consume -> persistent reply -> confirmed -> ack loop the
 * project's own broker code can do: the worker's broker work and
 * bookkeeping (common/mq.c, the confirm tracker, the ledger) with no
 * database and no JSON, so that the worker's ratio to it is the price of
 * those two.  Each delivery gets a fixed reply of a typical reply's size,
 * published as soon as it arrives; deliveries are acked as the ledger
 * plans once their replies are confirmed.  Exits after COUNT jobs and
 * prints "JOBS SECONDS CPU_SECONDS".  AMQP_URL as for the programs. */
#include "clock.h"
#include "config.h"
#include "confirms.h"
#include "ledger.h"
#include "link.h"
#include "log.h"
#include "mq.h"
#include "mq_url.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char REPLY[] =
    "{\"job_id\":\"job-0000000000000000-00000\",\"status\":\"ok\",\"message\":\"Hello, "
    "World!\",\"language\":\"en\"}";

/* The worker's own bookkeeping: a ledger entry per delivery, a confirm
 * tracker per publish, acks as the ledger plans them. */
static struct ledger ledger;
static unsigned long long finished; /* jobs whose replies are confirmed */

static void on_settled(void *ctx, uint64_t slot, enum confirm_outcome outcome)
{
    (void)ctx;
    if (ledger_confirmed(&ledger, (unsigned)slot, false, outcome != CONFIRM_ACKED,
                         false /* may retry */, 0) == LEDGER_FINISHED)
        finished++;
}

struct subscription {
    const char *queue;
    unsigned prefetch;
};

/* The set-up of its one connection (link.h): confirm mode, prefetch,
 * consuming. */
static bool subscribe(struct mq *mq, void *ctx, char *err, size_t errlen)
{
    const struct subscription *sub = ctx;

    return mq_confirm_select(mq, err, errlen) && mq_qos(mq, sub->prefetch, err, errlen) &&
           mq_consume(mq, sub->queue, err, errlen);
}

static double cpu_seconds(void)
{
    struct rusage usage;

    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, NULL};
    struct config cfg;
    struct subscription sub;
    struct link link;
    struct confirms confirms;
    uint64_t *singles;
    unsigned long long target;
    unsigned prefetch;
    char err[512];
    struct mq *mq;
    double started = 0;

    if (argc != 5) {
        fprintf(stderr, "usage: baseline QUEUE REPLY_QUEUE COUNT PREFETCH\n");
        return 2;
    }
    target = strtoull(argv[3], NULL, 10);
    prefetch = (unsigned)strtoul(argv[4], NULL, 10);
    singles = calloc(2 * (size_t)prefetch, sizeof *singles);
    log_init("baseline", LOG_ERROR);
    log_set_fd(2);
    /* The broker settings as every program reads them (AMQP_URL, ...). */
    if (config_load(&cfg, PROGRAM_REPLIES, &urls, 1, argv, getenv, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "baseline: %s\n", err);
        return 2;
    }
    sub.queue = argv[1];
    sub.prefetch = prefetch;
    link_init(&link, &cfg, "baseline", subscribe, &sub);
    if (singles == NULL || !ledger_init(&ledger, 2 * prefetch) ||
        !confirms_init(&confirms, 4 * (size_t)prefetch) ||
        !link_ensure(&link, clock_now(), true /* quiet: reported here */)) {
        fprintf(stderr, "baseline: %s\n", link.error[0] ? link.error : "out of memory");
        return 1;
    }
    mq = link.mq;
    while (finished < target) {
        struct pollfd pfd = {mq_fd(mq), POLLIN, 0};
        struct mq_event ev;
        uint64_t multiple;
        unsigned n_singles;
        int got;

        if (!mq_has_buffered(mq))
            poll(&pfd, 1, 1000);
        while ((got = mq_next_event(mq, &ev, err, sizeof err)) == 1) {
            if (ev.type == MQ_EVENT_DELIVERY) {
                struct mq_publish_props props = {0};
                int slot = ledger_add(&ledger, ev.message.delivery_tag, false);
                uint64_t seq;
                if (started == 0)
                    started = clock_now();
                props.content_type = "application/json";
                props.message_id = ev.message.message_id.data;
                props.message_id_len = ev.message.message_id.len;
                if (slot < 0 || !mq_publish(mq, argv[2], &props, REPLY, sizeof REPLY - 1, true,
                                            &seq, err, sizeof err)) {
                    got = -1;
                    break;
                }
                ledger_published(&ledger, (unsigned)slot, 1, false);
                confirms_track(&confirms, seq, (uint64_t)slot);
            } else if (ev.type == MQ_EVENT_CONFIRM) {
                confirms_settle(&confirms, ev.seq, ev.multiple, ev.nacked, on_settled, NULL);
            }
        }
        if (got < 0) {
            fprintf(stderr, "baseline: %s\n", err);
            return 1;
        }
        ledger_take_acks(&ledger, &multiple, singles, &n_singles);
        if (multiple && !mq_ack(mq, multiple, true, err, sizeof err)) {
            fprintf(stderr, "baseline: %s\n", err);
            return 1;
        }
        for (unsigned i = 0; i < n_singles; i++)
            if (!mq_ack(mq, singles[i], false, err, sizeof err)) {
                fprintf(stderr, "baseline: %s\n", err);
                return 1;
            }
        mq_release_buffers(mq);
    }
    /* jobs, seconds from the first delivery, CPU seconds of the process */
    printf("%llu %.3f %.3f\n", finished, clock_now() - started, cpu_seconds());
    link_close(&link);
    config_free(&cfg);
    ledger_free(&ledger);
    confirms_free(&confirms);
    free(singles);
    return 0;
}
