/* baseline - the broker-only ceiling for the throughput benchmark.
 *
 *   baseline QUEUE REPLY_QUEUE COUNT PREFETCH
 *
 * The fastest consume -> persistent reply -> confirmed -> ack loop the
 * project's own broker code (common/mq.c) can do: the worker's broker
 * work with no database and no JSON.  Each delivery gets a fixed reply of
 * a typical reply's size, published as soon as it arrives; deliveries are
 * acked (multiple) once their replies are confirmed.  Exits after COUNT
 * acks.  AMQP_URL as for the programs. */
#include "clock.h"
#include "log.h"
#include "mq.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char REPLY[] =
    "{\"job_id\":\"job-0000000000000000-00000\",\"status\":\"ok\",\"message\":\"Hello, "
    "World!\",\"language\":\"en\"}";

struct inflight {
    uint64_t seq; /* confirm sequence number of the reply */
    uint64_t tag; /* delivery tag of its job */
};

int main(int argc, char **argv)
{
    const char *url = getenv("AMQP_URL");
    struct mq_settings settings = {url ? url : "amqp://guest:guest@localhost:5672/", NULL,
                                   "baseline", 10, 10};
    struct inflight *ring;
    size_t head = 0, count = 0, cap;
    unsigned long long target, acked = 0;
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
    cap = 2 * (size_t)prefetch + 1;
    ring = calloc(cap, sizeof *ring);
    log_init("baseline", LOG_ERROR);
    log_set_fd(2);
    mq = mq_connect(&settings, err, sizeof err);
    if (ring == NULL || mq == NULL || !mq_confirm_select(mq, err, sizeof err) ||
        !mq_qos(mq, prefetch, err, sizeof err) || !mq_consume(mq, argv[1], err, sizeof err)) {
        fprintf(stderr, "baseline: %s\n", err);
        return 1;
    }
    while (acked < target) {
        struct pollfd pfd = {mq_fd(mq), POLLIN, 0};
        struct mq_event ev;
        uint64_t ack_to = 0;
        int got;

        if (!mq_has_buffered(mq))
            poll(&pfd, 1, 1000);
        while ((got = mq_next_event(mq, &ev, err, sizeof err)) == 1) {
            if (ev.type == MQ_EVENT_DELIVERY) {
                struct mq_publish_props props = {0};
                uint64_t seq;
                if (started == 0)
                    started = clock_now();
                props.content_type = "application/json";
                props.message_id = ev.message.message_id.data;
                props.message_id_len = ev.message.message_id.len;
                if (!mq_publish(mq, argv[2], &props, REPLY, sizeof REPLY - 1, true, &seq, err,
                                sizeof err))
                    break;
                ring[(head + count++) % cap] = (struct inflight){seq, ev.message.delivery_tag};
            } else if (ev.type == MQ_EVENT_CONFIRM) {
                /* Confirms come in order: everything up to seq is stored. */
                while (count > 0 && ring[head].seq <= ev.seq) {
                    ack_to = ring[head].tag;
                    head = (head + 1) % cap;
                    count--;
                    acked++;
                }
            }
        }
        if (got < 0) {
            fprintf(stderr, "baseline: %s\n", err);
            return 1;
        }
        if (ack_to && !mq_ack(mq, ack_to, true, err, sizeof err)) {
            fprintf(stderr, "baseline: %s\n", err);
            return 1;
        }
        mq_release_buffers(mq);
    }
    printf("%llu %.3f\n", acked, clock_now() - started);
    mq_close(mq);
    free(ring);
    return 0;
}
