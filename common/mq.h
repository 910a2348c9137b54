/* mq.h - the broker adapter: a thin layer over librabbitmq.
 *
 * One connection, one channel.  Connecting and declaring are blocking but
 * bounded by timeouts; after that the caller drives everything from its
 * own poll(2) loop: mq_next_event() never blocks, it returns what the
 * socket already holds -- deliveries (assembled from their frames),
 * publisher confirms, returned messages, a broker-side cancel.
 *
 * Errors: functions return false (or -1) and fill err; the connection is
 * then unusable and the caller calls mq_close() and reconnects. */
#ifndef GREET_MQ_H
#define GREET_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_SHORTSTR_MAX 255

/* An AMQP short string property, binary-safe, copied out of the frame. */
struct mq_shortstr {
    bool present;
    unsigned char len;
    char data[MQ_SHORTSTR_MAX + 1]; /* NUL-terminated for convenience */
};

/* A message as it arrived (delivery) or came back (return).  The body
 * points into the adapter's buffer: valid until the next mq_next_event(). */
struct mq_message {
    uint64_t delivery_tag;
    bool redelivered;
    bool persistent;          /* delivery_mode 2 */
    long long delivery_count; /* x-delivery-count (quorum queues); 0 if absent */
    struct mq_shortstr content_type;
    struct mq_shortstr message_id;
    struct mq_shortstr correlation_id;
    struct mq_shortstr reply_to;
    struct mq_shortstr routing_key;  /* for returns: where it was sent */
    struct mq_shortstr greet_error;  /* x-greet-error header, if any */
    struct mq_shortstr greet_detail; /* x-greet-detail header (cut at 255 bytes) */
    /* Why the broker dead-lettered it, when it did (delivery_limit,
     * rejected, expired, maxlen): its latest death, from
     * x-last-death-reason, else the newest x-death entry, else
     * x-first-death-reason. */
    struct mq_shortstr death_reason;
    /* Every property as it came, for mq_publish_copy(); the library's
     * memory, valid until the next mq_get(), mq_next_event() or
     * mq_release_buffers(). */
    const void *properties;
    const char *body;
    size_t body_len;
};

enum mq_event_type {
    MQ_EVENT_DELIVERY,  /* message */
    MQ_EVENT_CONFIRM,   /* seq, multiple, nacked */
    MQ_EVENT_RETURN,    /* message, return_code, return_text */
    MQ_EVENT_CANCELLED, /* the broker cancelled our consumer (queue deleted) */
};

struct mq_event {
    enum mq_event_type type;
    struct mq_message message;
    uint64_t seq;
    bool multiple;
    bool nacked;
    int return_code;
    struct mq_shortstr return_text;
};

/* What a published message carries besides its body and routing key. */
struct mq_publish_props {
    const char *message_id; /* NULL: not set */
    size_t message_id_len;
    const char *correlation_id;
    size_t correlation_id_len;
    const char *reply_to; /* NUL-terminated or NULL */
    const char *content_type;
    const char *error_code;   /* x-greet-error header, NULL: none */
    const char *error_detail; /* x-greet-detail header */
};

struct mq_topology {
    const char *jobs_queue;
    const char *reply_queue;
    const char *dead_queue;
    long long delivery_limit;
};

struct mq_settings {
    const char *url;
    /* amqps:// only.  The broker's certificate chain and host name are
     * always verified, against cacert (NULL or "": the system's CAs).
     * cert and key (both or neither): a client certificate; with no
     * password in the URL, the login is by certificate (SASL EXTERNAL). */
    const char *cacert;
    const char *cert;
    const char *key;
    const char *client_name; /* shown in the broker's connection list */
    double heartbeat;        /* seconds, 0: off */
    double timeout;          /* connect, handshake and each RPC */
};

struct mq;

/* Connection life cycle. */
struct mq *mq_connect(const struct mq_settings *settings, char *err, size_t errlen);
void mq_close(struct mq *mq);   /* polite close (bounded), then free */
void mq_abandon(struct mq *mq); /* drop the socket at once, then free */

/* Set-up, blocking (bounded by settings->timeout). */
bool mq_declare_topology(struct mq *mq, const struct mq_topology *topology, char *err,
                         size_t errlen);
bool mq_declare_queue(struct mq *mq, const char *name, char *err,
                      size_t errlen); /* durable quorum */
bool mq_declare_private_queue(struct mq *mq, char *name, size_t namelen, char *err, size_t errlen);
bool mq_confirm_select(struct mq *mq, char *err, size_t errlen);
bool mq_qos(struct mq *mq, unsigned prefetch, char *err, size_t errlen);
bool mq_consume(struct mq *mq, const char *queue, char *err, size_t errlen);
bool mq_queue_depth(struct mq *mq, const char *queue, unsigned long *messages, char *err,
                    size_t errlen);
bool mq_queue_purge(struct mq *mq, const char *queue, char *err, size_t errlen);
bool mq_queue_purge_count(struct mq *mq, const char *queue, unsigned long *purged, char *err,
                          size_t errlen);

/* Inspection (greet-admin status): how a queue compares with what the
 * programs declare, without creating it.  false only when the broker
 * could not be asked. */
enum mq_queue_state {
    MQ_QUEUE_MATCHES, /* declaring it as the programs do succeeds */
    MQ_QUEUE_DIFFERS, /* it exists with other arguments (PRECONDITION_FAILED) */
    MQ_QUEUE_MISSING, /* it does not exist */
};
struct mq_queue_check {
    enum mq_queue_state state;
    unsigned long messages, consumers; /* ready messages; 0 when missing */
    char reason[512];                  /* MQ_QUEUE_DIFFERS: the broker's words */
};
bool mq_check_queue(struct mq *mq, const struct mq_topology *topology, const char *name,
                    struct mq_queue_check *check, char *err, size_t errlen);

/* Taking messages one at a time (basic.get), without consuming: 1 when
 * *message is filled (unacked: ack, reject, or let closing the channel
 * hand it back), 0 when the queue has nothing ready, -1 on failure.
 * Blocking, bounded by the timeout.  Only with no events waiting (call
 * mq_next_event() until it returns 0 first): content frames follow
 * get-ok, and a frame set aside meanwhile would be taken for them.  The
 * body is valid until the next mq_get() or mq_next_event(). */
int mq_get(struct mq *mq, const char *queue, struct mq_message *message, char *err, size_t errlen);
/* Publishes a message as it came (a delivery or a get): its body and
 * every property, minus the headers drop() says to leave out (NULL:
 * none).  For moving messages between queues (greet-admin dead replay). */
typedef bool (*mq_header_filter)(const char *key, size_t len);
bool mq_publish_copy(struct mq *mq, const char *routing_key, const struct mq_message *message,
                     mq_header_filter drop, bool mandatory, uint64_t *seq, char *err,
                     size_t errlen);

/* Steady state, never waiting for the broker to answer. */
bool mq_cancel(struct mq *mq, char *err, size_t errlen);
bool mq_publish(struct mq *mq, const char *routing_key, const struct mq_publish_props *props,
                const void *body, size_t len, bool mandatory, uint64_t *seq, char *err,
                size_t errlen);
bool mq_ack(struct mq *mq, uint64_t delivery_tag, bool multiple, char *err, size_t errlen);
bool mq_reject(struct mq *mq, uint64_t delivery_tag, bool requeue, char *err, size_t errlen);
/* 1: *event filled; 0: nothing more buffered or readable now; -1: lost. */
int mq_next_event(struct mq *mq, struct mq_event *event, char *err, size_t errlen);

/* For the caller's poll loop. */
int mq_fd(const struct mq *mq);
bool mq_is_consuming(const struct mq *mq);
/* false between mq_cancel() and the broker's cancel-ok: deliveries sent
 * before the cancel may still be on the way. */
bool mq_cancel_settled(const struct mq *mq);
/* Call when poll(2) saw the socket readable: that is what keeps the
 * broker's heartbeats counted. */
void mq_saw_input(struct mq *mq, double now);
/* false when the broker has been silent for two heartbeat intervals. */
bool mq_heartbeat_ok(struct mq *mq, double now);
/* true when frames wait in the library (read during a publish or an RPC)
 * that poll(2) cannot see: the caller must not sleep then. */
bool mq_has_buffered(const struct mq *mq);
/* Frees decoded frames once nothing refers to them. */
void mq_release_buffers(struct mq *mq);

/* The URL with its password masked, for logs. */
void mq_describe(const struct mq *mq, char *out, size_t outlen);

#endif
