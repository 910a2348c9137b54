/* cmd_status.c - greet-admin status: the queues, and whether the broker's
 * topology is the one the programs declare; greet-admin declare: declare
 * it, for programs whose broker user may not (least privilege). */
#include "buf.h"
#include "clock.h"
#include "commands.h"
#include "mq.h"
#include "mq_url.h"

#include <stdio.h>
#include <string.h>

bool cmd_connect(struct link *link, const struct config *cfg, const char *name, link_setup_fn setup,
                 void *setup_ctx)
{
    char url[256];

    link_init(link, cfg, "greet-admin", setup, setup_ctx);
    if (link_ensure(link, clock_now(), true /* quiet: reported here */))
        return true;
    if (link->urls.n > 1) { /* the error names them */
        fprintf(stderr, "%s: %s\n", name, link->error);
        return false;
    }
    mq_url_mask(link->settings.url, url, sizeof url, NULL, 0);
    fprintf(stderr, "%s: broker %s: %s\n", name, url, link->error);
    return false;
}

/* The link's set-up (link.h): the topology, declared as the programs do. */
static bool declare_topology(struct mq *mq, void *ctx, char *err, size_t errlen)
{
    const struct link *link = ctx;

    return mq_declare_topology(mq, &link->topology, err, errlen);
}

int cmd_declare(const struct config *cfg, enum rows_format format)
{
    static const char name[] = "greet-admin declare";
    char url[256];
    struct link link;

    (void)format;
    if (!cmd_connect(&link, cfg, name, declare_topology, &link))
        return 1;
    mq_describe(link.mq, url, sizeof url);
    link_close(&link);
    fprintf(stderr, "%s: %s, %s and %s declared (%s)\n", name, cfg->jobs_queue, cfg->reply_queue,
            cfg->dead_queue, url);
    return 0;
}

static const char *state_name(enum mq_queue_state state)
{
    switch (state) {
    case MQ_QUEUE_MATCHES:
        return "ok";
    case MQ_QUEUE_DIFFERS:
        return "differs";
    case MQ_QUEUE_MISSING:
        return "missing";
    }
    return "?";
}

int cmd_status(const struct config *cfg, enum rows_format format)
{
    static const char name[] = "greet-admin status";
    static const struct rows_column columns[] = {
        {"queue", false},    {"role", false},     {"messages", true},
        {"consumers", true}, {"topology", false}, {"reason", false},
    };
    const char *queues[3] = {cfg->jobs_queue, cfg->reply_queue, cfg->dead_queue};
    static const char *const roles[3] = {"jobs", "replies", "dead"};
    char verdict[2048] = "", err[512], url[256];
    struct buf_fixed wrong;
    struct link link;
    struct rows rows;
    bool ok;

    if (!cmd_connect(&link, cfg, name, NULL, NULL))
        return 1;
    buf_fixed_init(&wrong, verdict, sizeof verdict);
    rows_init(&rows, format, stdout, columns, sizeof columns / sizeof columns[0]);
    for (unsigned i = 0; i < 3; i++) {
        struct mq_queue_check check;
        char messages[32], consumers[32];
        const char *values[6];

        if (!mq_check_queue(link.mq, &link.topology, queues[i], &check, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", name, err);
            rows_free(&rows);
            link_close(&link);
            return 1;
        }
        snprintf(messages, sizeof messages, "%lu", check.messages);
        snprintf(consumers, sizeof consumers, "%lu", check.consumers);
        values[0] = queues[i];
        values[1] = roles[i];
        values[2] = check.state == MQ_QUEUE_MISSING ? NULL : messages;
        values[3] = check.state == MQ_QUEUE_MISSING ? NULL : consumers;
        values[4] = state_name(check.state);
        values[5] = check.state == MQ_QUEUE_DIFFERS ? check.reason : NULL;
        rows_add(&rows, values);
        if (check.state != MQ_QUEUE_MATCHES) {
            buf_fixed_add_str(&wrong, wrong.len ? ", " : "");
            buf_fixed_add_str(&wrong, queues[i]);
            buf_fixed_add_str(&wrong,
                              check.state == MQ_QUEUE_MISSING ? " is missing" : " differs: ");
            buf_fixed_add_str(&wrong, check.state == MQ_QUEUE_DIFFERS ? check.reason : "");
        }
    }
    ok = rows_finish(&rows);
    rows_free(&rows);
    mq_describe(link.mq, url, sizeof url);
    link_close(&link);
    if (!ok) {
        fprintf(stderr, "%s: writing to stdout failed\n", name);
        return 1;
    }
    if (wrong.len > 0) {
        fprintf(stderr, "%s: the topology does not match what the programs declare: %s (%s)\n",
                name, verdict, url);
        return 1;
    }
    fprintf(stderr, "%s: the topology matches what the programs declare (%s)\n", name, url);
    return 0;
}
