/* mq.c - the broker adapter over librabbitmq; see mq.h. */
#include "mq.h"

#include "buf.h"
#include "clock.h"
#include "files.h"
#include "log.h"
#include "mq_url.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define CHANNEL 1
/* 128 KiB frames: a typical job travels in one frame, and one read(2)
 * brings in many of them. */
#define FRAME_MAX 131072

enum incoming { INCOMING_NONE, INCOMING_DELIVERY, INCOMING_RETURN };

struct mq {
    amqp_connection_state_t conn;
    int heartbeat; /* negotiated, seconds */
    double last_input;
    bool input_seen; /* a frame arrived since the last heartbeat check */
    bool consuming;
    bool cancelling; /* basic.cancel sent, cancel-ok not yet seen */
    struct mq_shortstr consumer_tag;
    uint64_t published; /* publishes so far: the last confirm sequence number */
    double timeout;     /* settings->timeout: mq_get()'s wait for content */
    /* The message being assembled from method, header and body frames. */
    enum incoming incoming;
    struct mq_event assembling;
    uint64_t body_expected;
    struct buf body;
    char url_masked[256];
    /* Why OpenSSL refused the broker's certificate, in its words, from
     * the verify callback: the first failure of the chain. */
    char tls_refused[384];
    /* The client certificate's CN, the identity a login by certificate
     * claims; "" without one. */
    char cert_identity[256];
};

static struct timeval to_timeval(double seconds)
{
    struct timeval tv;

    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void set_error(char *err, size_t errlen, const char *what, const char *why)
{
    snprintf(err, errlen, "%s: %s", what, why);
}

/* The one place an amqp_rpc_reply_t becomes an error message: library
 * failures, and channel or connection closes with the broker's code and
 * text (as in rabbitmq-c's examples/utils.c). */
static bool rpc_ok(struct mq *mq, amqp_rpc_reply_t reply, const char *what, char *err,
                   size_t errlen, int *server_code)
{
    if (server_code)
        *server_code = 0;
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        /* An answer is input: a set-up RPC that waited seconds (a quorum
         * queue electing its leader) must not count as missed heartbeats
         * the moment it returns. */
        mq->input_seen = true;
        return true;
    case AMQP_RESPONSE_NONE:
        set_error(err, errlen, what, "no reply from the broker");
        return false;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        set_error(err, errlen, what, amqp_error_string2(reply.library_error));
        return false;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *close = reply.reply.decoded;
            snprintf(err, errlen, "%s: connection closed by the broker: %u %.*s", what,
                     close->reply_code, (int)close->reply_text.len,
                     (const char *)close->reply_text.bytes);
            if (server_code)
                *server_code = close->reply_code;
        } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *close = reply.reply.decoded;
            snprintf(err, errlen, "%s: channel closed by the broker: %u %.*s", what,
                     close->reply_code, (int)close->reply_text.len,
                     (const char *)close->reply_text.bytes);
            if (server_code)
                *server_code = close->reply_code;
        } else {
            snprintf(err, errlen, "%s: unexpected broker method 0x%08x", what, reply.reply.id);
        }
        return false;
    }
    set_error(err, errlen, what, "unknown reply");
    return false;
}

static bool status_ok(int status, const char *what, char *err, size_t errlen)
{
    if (status == AMQP_STATUS_OK)
        return true;
    set_error(err, errlen, what, amqp_error_string2(status));
    return false;
}

static amqp_bytes_t bytes_of(const char *data, size_t len)
{
    amqp_bytes_t b;

    b.bytes = (void *)data;
    b.len = len;
    return b;
}

static void copy_shortstr(struct mq_shortstr *dst, amqp_bytes_t src)
{
    size_t len = src.len > MQ_SHORTSTR_MAX ? MQ_SHORTSTR_MAX : src.len;

    dst->present = true;
    dst->len = (unsigned char)len;
    if (len > 0)
        memcpy(dst->data, src.bytes, len);
    dst->data[len] = '\0';
}

static bool is_set(const char *value)
{
    return value != NULL && value[0] != '\0';
}

/* The reason of this thread's last OpenSSL error ("tlsv1 alert unknown
 * ca", "wrong version number"), or NULL; the queue is emptied.  A generic
 * last word ("PEM lib") gives way to the one before it ("bad password
 * read", "no start line").  librabbitmq clears the queue before each TLS
 * call, so what is there is the last call's. */
static const char *openssl_reason(void)
{
    const char *reason = NULL;
    unsigned long code;

    while ((code = ERR_get_error()) != 0) {
        const char *text = ERR_reason_error_string(code);
        bool generic = ERR_GET_REASON(code) == ERR_R_PEM_LIB;
        if (text != NULL && (reason == NULL || !generic))
            reason = text;
    }
    return reason;
}

/* OpenSSL's verdict on each certificate of the broker's chain, the host
 * name included (see tls_socket).  The first failure is kept, so that
 * the error says what was wrong: "certificate has expired", "hostname
 * mismatch", "unable to get local issuer certificate" (another CA).
 * Returning the verdict fails the handshake on it. */
static int tls_verify(int preverify_ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct mq *mq = ssl != NULL ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    char subject[160] = "?", issuer[160] = "?";

    if (preverify_ok || mq == NULL || mq->tls_refused[0] != '\0')
        return preverify_ok;
    if (cert != NULL) {
        X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
        X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof issuer);
    }
    snprintf(mq->tls_refused, sizeof mq->tls_refused, "%s (certificate %s, issued by %s)",
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)), subject, issuer);
    return preverify_ok;
}

/* An encrypted key would make OpenSSL ask for its passphrase on the
 * terminal, and a worker has none: refused, the load fails and says so. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf, (void)size, (void)rwflag, (void)userdata;
    return -1;
}

/* The certificate's subject CN, or "-": librabbitmq 0.11 cannot send an
 * empty EXTERNAL response, and RabbitMQ takes the user from the
 * certificate it verified, not from what the client claims. */
static void certificate_identity(X509 *cert, char *out, size_t outlen)
{
    X509_NAME *subject = cert != NULL ? X509_get_subject_name(cert) : NULL;

    if (subject == NULL ||
        X509_NAME_get_text_by_NID(subject, NID_commonName, out, (int)outlen) <= 0)
        snprintf(out, outlen, "-");
}

/* A TLS socket that verifies the broker: its chain against cacert, and
 * its host name.  The host name is left to OpenSSL during the handshake
 * (X509_check_host/ip: DNS and IP address SANs), instead of librabbitmq
 * 0.11's own check after it, which knows DNS names only and would refuse
 * amqps://127.0.0.1 whatever the certificate says. */
static amqp_socket_t *tls_socket(struct mq *mq, const struct mq_settings *settings,
                                 const char *host, char *err, size_t errlen)
{
    amqp_socket_t *socket = amqp_ssl_socket_new(mq->conn);
    X509_VERIFY_PARAM *param;
    SSL_CTX *ctx;
    char why[320];

    if (socket == NULL) {
        set_error(err, errlen, "TLS", "cannot create a TLS socket");
        return NULL;
    }
    ctx = amqp_ssl_socket_get_context(socket);
    amqp_ssl_socket_set_verify_peer(socket, 1);
    amqp_ssl_socket_set_verify_hostname(socket, 0 /* OpenSSL checks it, below */);
    SSL_CTX_set_app_data(ctx, mq);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1 &&
        X509_VERIFY_PARAM_set1_host(param, host, 0) != 1) {
        snprintf(err, errlen, "TLS: cannot verify the host name '%s'", host);
        return NULL;
    }
    ERR_clear_error(); /* set1_ip_asc's complaint about a name */

    if (!is_set(settings->cacert)) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            set_error(err, errlen, "TLS", "cannot load the system's CA certificates");
            return NULL;
        }
    } else if (!file_readable(settings->cacert, why, sizeof why)) {
        snprintf(err, errlen, "TLS: AMQP_CACERT (--amqp-cacert): %s", why);
        return NULL;
    } else if (amqp_ssl_socket_set_cacert(socket, settings->cacert) != AMQP_STATUS_OK) {
        const char *reason = openssl_reason();
        snprintf(err, errlen, "TLS: AMQP_CACERT (--amqp-cacert): no CA certificate in '%s'%s%s",
                 settings->cacert, reason ? ": " : "", reason ? reason : "");
        return NULL;
    }

    if (is_set(settings->cert) || is_set(settings->key)) {
        const char *reason;
        if (!is_set(settings->cert) || !is_set(settings->key)) {
            set_error(err, errlen, "TLS",
                      "a client certificate needs its key (AMQP_CERT, AMQP_KEY)");
            return NULL;
        }
        if (!file_readable(settings->cert, why, sizeof why)) {
            snprintf(err, errlen, "TLS: AMQP_CERT (--amqp-cert): %s", why);
            return NULL;
        }
        if (!file_readable(settings->key, why, sizeof why)) {
            snprintf(err, errlen, "TLS: AMQP_KEY (--amqp-key): %s", why);
            return NULL;
        }
        ERR_clear_error();
        if (amqp_ssl_socket_set_key(socket, settings->cert, settings->key) != AMQP_STATUS_OK) {
            reason = openssl_reason();
            snprintf(err, errlen,
                     "TLS: cannot use the client certificate '%s' (AMQP_CERT) with the key '%s' "
                     "(AMQP_KEY)%s%s%s",
                     settings->cert, settings->key, reason ? ": " : "", reason ? reason : "",
                     reason && strstr(reason, "password") ? " (an encrypted key: AMQP_KEY must "
                                                            "name one that is not)"
                                                          : "");
            return NULL;
        }
        certificate_identity(SSL_CTX_get0_certificate(ctx), mq->cert_identity,
                             sizeof mq->cert_identity);
    }
    return socket;
}

/* Why a TLS connect failed, in words: the certificate check that
 * failed, else OpenSSL's reason (an alert from the broker, say), with a
 * hint when the other end does not speak TLS at all. */
static void tls_connect_failure(const struct mq *mq, char *out, size_t outlen)
{
    const char *reason = openssl_reason();

    if (mq->tls_refused[0] != '\0')
        snprintf(out, outlen, "TLS: certificate verify failed: %s", mq->tls_refused);
    else if (reason != NULL && (strstr(reason, "wrong version number") != NULL ||
                                strstr(reason, "packet length too long") != NULL))
        snprintf(out, outlen,
                 "TLS handshake failed: %s (the server does not speak TLS on this port: "
                 "amqps:// needs the broker's TLS listener)",
                 reason);
    else if (reason != NULL)
        snprintf(out, outlen, "TLS handshake failed: %s", reason);
    else
        out[0] = '\0';
}

static bool open_socket(struct mq *mq, const struct mq_settings *settings,
                        struct amqp_connection_info *info, char *err, size_t errlen)
{
    amqp_socket_t *socket;
    struct timeval timeout = to_timeval(settings->timeout);
    int status;

    if (info->ssl) {
        socket = tls_socket(mq, settings, info->host, err, errlen);
        if (socket == NULL)
            return false;
    } else if (is_set(settings->cert)) {
        set_error(err, errlen, "AMQP_CERT", "a client certificate needs amqps://, not amqp://");
        return false;
    } else {
        socket = amqp_tcp_socket_new(mq->conn);
        if (socket == NULL) {
            set_error(err, errlen, "connect", "out of memory");
            return false;
        }
    }
    mq->tls_refused[0] = '\0';
    status = amqp_socket_open_noblock(socket, info->host, info->port, &timeout);
    if (status != AMQP_STATUS_OK) {
        char tls[512] = "";
        if (info->ssl)
            tls_connect_failure(mq, tls, sizeof tls);
        snprintf(err, errlen, "connect to %s:%d: %s", info->host, info->port,
                 tls[0] ? tls : amqp_error_string2(status));
        return false;
    }
    return true;
}

/* amqp_parse_url() points at its defaults ("guest") for what a URL
 * leaves out, and into the URL's copy for what it gives. */
static bool points_into(const char *p, const char *copy, size_t size)
{
    uintptr_t at = (uintptr_t)p, start = (uintptr_t)copy;

    return at >= start && at < start + size;
}

/* A failed login says why when the library's words do not.  A broker
 * that drops the connection during the login, before a word of AMQP, is
 * refusing the link itself: over TLS 1.3 a client certificate is judged
 * only after the handshake, and the broker's alert (when it is not lost
 * to the reset that follows it) comes with the first read; a TLS port
 * answers plain AMQP the same way. */
static void explain_login_failure(const struct amqp_connection_info *info,
                                  const struct mq_settings *settings, bool by_certificate,
                                  amqp_rpc_reply_t login, char *err, size_t errlen)
{
    const char *reason = info->ssl ? openssl_reason() : NULL;
    int status = login.library_error;
    bool dropped = status == AMQP_STATUS_SSL_ERROR || status == AMQP_STATUS_SOCKET_ERROR ||
                   status == AMQP_STATUS_CONNECTION_CLOSED || status == AMQP_STATUS_BAD_AMQP_DATA;
    char detail[512] = "";
    size_t len = strlen(err);

    if (login.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION)
        return;
    if (dropped && info->ssl && is_set(settings->cert))
        snprintf(detail, sizeof detail,
                 "%s%sthe broker dropped the connection after the TLS handshake, as it does when "
                 "it refuses a client certificate: is AMQP_CERT '%s' signed by a CA the broker "
                 "trusts?",
                 reason ? reason : "", reason ? "; " : "", settings->cert);
    else if (dropped && info->ssl && reason != NULL)
        snprintf(detail, sizeof detail, "TLS: %s", reason);
    else if (dropped && !info->ssl)
        snprintf(detail, sizeof detail,
                 "the broker dropped the connection before a word of AMQP, as a TLS listener "
                 "does: if port %d is one, use amqps://",
                 info->port);
    else if (by_certificate && status == AMQP_STATUS_BROKER_UNSUPPORTED_SASL_METHOD)
        snprintf(detail, sizeof detail,
                 "a login by certificate (SASL EXTERNAL) needs the broker's "
                 "rabbitmq_auth_mechanism_ssl plugin and EXTERNAL in its auth_mechanisms");
    if (detail[0] != '\0' && len < errlen)
        snprintf(err + len, errlen - len, ": %s", detail);
}

struct mq *mq_connect(const struct mq_settings *settings, char *err, size_t errlen)
{
    struct amqp_connection_info info;
    struct mq *mq = calloc(1, sizeof *mq);
    char *url = strdup(settings->url);
    struct timeval timeout = to_timeval(settings->timeout);
    amqp_table_entry_t capabilities[1], client[2];
    amqp_table_t client_properties;
    int heartbeat = settings->heartbeat > 0 ? (int)(settings->heartbeat + 0.999) : 0;
    size_t url_size = strlen(settings->url) + 1;
    bool by_certificate = false;
    amqp_rpc_reply_t login;

    if (mq == NULL || url == NULL) {
        set_error(err, errlen, "connect", "out of memory");
        goto fail;
    }
    if (!mq_url_mask(settings->url, mq->url_masked, sizeof mq->url_masked, NULL, 0) ||
        amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "AMQP_URL: cannot parse %s", mq->url_masked);
        goto fail;
    }
    /* amqp://host/ names the empty vhost; every broker default and most
     * clients mean "/" by it. */
    if (info.vhost[0] == '\0')
        info.vhost = "/";

    mq->conn = amqp_new_connection();
    if (mq->conn == NULL) {
        set_error(err, errlen, "connect", "out of memory");
        goto fail;
    }
    if (!open_socket(mq, settings, &info, err, errlen))
        goto fail;
    amqp_set_handshake_timeout(mq->conn, &timeout);
    amqp_set_rpc_timeout(mq->conn, &timeout);

    /* consumer_cancel_notify: be told (basic.cancel) when our queue is
     * deleted, instead of waiting for deliveries that never come. */
    capabilities[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[0].value.value.boolean = 1;
    client[0].key = amqp_cstring_bytes("connection_name");
    client[0].value.kind = AMQP_FIELD_KIND_UTF8;
    client[0].value.value.bytes = amqp_cstring_bytes(settings->client_name);
    client[1].key = amqp_cstring_bytes("capabilities");
    client[1].value.kind = AMQP_FIELD_KIND_TABLE;
    client[1].value.value.table.num_entries = 1;
    client[1].value.value.table.entries = capabilities;
    client_properties.num_entries = 2;
    client_properties.entries = client;

    /* A client certificate and no password in the URL: the certificate
     * is the login (the broker maps it to a user, e.g. by its CN). */
    if (info.ssl && is_set(settings->cert) &&
        !(points_into(info.password, url, url_size) && info.password[0] != '\0')) {
        by_certificate = true;
        login = amqp_login_with_properties(
            mq->conn, info.vhost, 0 /* channel_max */, FRAME_MAX, heartbeat, &client_properties,
            AMQP_SASL_METHOD_EXTERNAL,
            points_into(info.user, url, url_size) ? info.user : mq->cert_identity);
    } else {
        login = amqp_login_with_properties(mq->conn, info.vhost, 0 /* channel_max */, FRAME_MAX,
                                           heartbeat, &client_properties, AMQP_SASL_METHOD_PLAIN,
                                           info.user, info.password);
    }
    if (!rpc_ok(mq, login, "login", err, errlen, NULL)) {
        explain_login_failure(&info, settings, by_certificate, login, err, errlen);
        goto fail;
    }
    /* The URL's user (or librabbitmq's default, guest) was not the login. */
    if (by_certificate) {
        size_t len = strlen(mq->url_masked);
        snprintf(mq->url_masked + len, sizeof mq->url_masked - len,
                 " (login by certificate, CN=%s)", mq->cert_identity);
    }
    amqp_channel_open(mq->conn, CHANNEL);
    if (!rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "open channel", err, errlen, NULL))
        goto fail;

    mq->heartbeat = amqp_get_heartbeat(mq->conn);
    mq->timeout = settings->timeout;
    mq->last_input = clock_now();
    free(url);
    return mq;

fail:
    free(url);
    mq_abandon(mq);
    return NULL;
}

void mq_abandon(struct mq *mq)
{
    if (mq == NULL)
        return;
    if (mq->conn)
        amqp_destroy_connection(mq->conn);
    buf_free(&mq->body);
    free(mq);
}

void mq_close(struct mq *mq)
{
    if (mq == NULL)
        return;
    /* Both are RPCs bounded by the rpc timeout; failures do not matter,
     * the socket goes either way. */
    if (mq->conn) {
        amqp_channel_close(mq->conn, CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(mq->conn, AMQP_REPLY_SUCCESS);
    }
    mq_abandon(mq);
}

/* Arguments every queue of ours is declared with: quorum, and for the
 * jobs queue dead-lettering by delivery limit. */
static amqp_table_t queue_arguments(amqp_table_entry_t *entries, const struct mq_topology *t,
                                    bool is_jobs)
{
    amqp_table_t table;
    int n = 0;

    entries[n].key = amqp_cstring_bytes("x-queue-type");
    entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[n++].value.value.bytes = amqp_cstring_bytes("quorum");
    if (is_jobs) {
        entries[n].key = amqp_cstring_bytes("x-dead-letter-exchange");
        entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[n++].value.value.bytes = amqp_cstring_bytes("");
        entries[n].key = amqp_cstring_bytes("x-dead-letter-routing-key");
        entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[n++].value.value.bytes = amqp_cstring_bytes(t->dead_queue);
        entries[n].key = amqp_cstring_bytes("x-delivery-limit");
        entries[n].value.kind = AMQP_FIELD_KIND_I64;
        entries[n++].value.value.i64 = t->delivery_limit;
    }
    table.num_entries = n;
    table.entries = entries;
    return table;
}

/* After the broker closed our channel (a failed declare), it must be
 * acknowledged before the channel number can be opened again. */
static bool reopen_channel(struct mq *mq, char *err, size_t errlen)
{
    amqp_channel_close_ok_t close_ok = {0};

    if (!status_ok(amqp_send_method(mq->conn, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok),
                   "close channel", err, errlen))
        return false;
    amqp_channel_open(mq->conn, CHANNEL);
    return rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "reopen channel", err, errlen, NULL);
}

/* A least-privilege user (deploy/rabbitmq/greet-users.sh) may not declare
 * the topology (configure would let it delete the queue too): the queue
 * must exist already, declared by greet-admin declare.  Checked with a
 * passive declare, which needs no permission. */
static bool declared_by_another(struct mq *mq, const char *name, const char *what, char *err,
                                size_t errlen)
{
    int code;

    if (!reopen_channel(mq, err, errlen))
        return false;
    amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), 1 /* passive */, 0, 0, 0,
                       amqp_empty_table);
    if (rpc_ok(mq, amqp_get_rpc_reply(mq->conn), what, err, errlen, &code))
        return true;
    if (code == AMQP_NOT_FOUND)
        snprintf(err, errlen,
                 "%s: the queue does not exist and this broker user may not declare it "
                 "(ACCESS_REFUSED); declare the topology first, with greet-admin declare as a "
                 "user that may",
                 what);
    return false;
}

static bool declare_queue(struct mq *mq, const struct mq_topology *t, const char *name,
                          bool is_jobs, char *err, size_t errlen)
{
    amqp_table_entry_t entries[4];
    char what[300];
    int code;

    snprintf(what, sizeof what, "declare queue %s", name);
    amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), 0 /* passive */,
                       1 /* durable */, 0 /* exclusive */, 0 /* auto_delete */,
                       queue_arguments(entries, t, is_jobs));
    if (rpc_ok(mq, amqp_get_rpc_reply(mq->conn), what, err, errlen, &code))
        return true;
    if (code == AMQP_ACCESS_REFUSED)
        return declared_by_another(mq, name, what, err, errlen);
    if (code != AMQP_PRECONDITION_FAILED)
        return false;

    /* The queue exists with other arguments (made by hand or by an older
     * version).  Declaring cannot change it; use it as it is and say so,
     * since its guarantees may differ from the contract's. */
    {
        struct log_line line;
        log_begin(&line, LOG_WARN, "queue.arguments_differ");
        log_str(&line, "queue", name);
        log_str(&line, "error", err);
        log_str(&line, "msg", "queue exists with other arguments; using it as it is");
        log_end(&line);
    }
    if (!reopen_channel(mq, err, errlen))
        return false;
    amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), 1 /* passive */, 0, 0, 0,
                       amqp_empty_table);
    return rpc_ok(mq, amqp_get_rpc_reply(mq->conn), what, err, errlen, NULL);
}

bool mq_declare_topology(struct mq *mq, const struct mq_topology *topology, char *err,
                         size_t errlen)
{
    /* The dead queue first: the jobs queue dead-letters into it. */
    return declare_queue(mq, topology, topology->dead_queue, false, err, errlen) &&
           declare_queue(mq, topology, topology->reply_queue, false, err, errlen) &&
           declare_queue(mq, topology, topology->jobs_queue, true, err, errlen);
}

bool mq_declare_queue(struct mq *mq, const char *name, char *err, size_t errlen)
{
    struct mq_topology none = {0};

    return declare_queue(mq, &none, name, false, err, errlen);
}

bool mq_declare_private_queue(struct mq *mq, char *name, size_t namelen, char *err, size_t errlen)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(mq->conn, CHANNEL, amqp_empty_bytes, 0 /* passive */, 0 /* durable */,
                           1 /* exclusive */, 1 /* auto_delete */, amqp_empty_table);

    if (!rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "declare private queue", err, errlen, NULL))
        return false;
    snprintf(name, namelen, "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
    return true;
}

bool mq_queue_depth(struct mq *mq, const char *queue, unsigned long *messages, char *err,
                    size_t errlen)
{
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(queue),
                                                     1 /* passive */, 0, 0, 0, amqp_empty_table);

    if (!rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "inspect queue", err, errlen, NULL))
        return false;
    *messages = ok->message_count;
    return true;
}

bool mq_queue_purge(struct mq *mq, const char *queue, char *err, size_t errlen)
{
    unsigned long purged;

    return mq_queue_purge_count(mq, queue, &purged, err, errlen);
}

bool mq_queue_purge_count(struct mq *mq, const char *queue, unsigned long *purged, char *err,
                          size_t errlen)
{
    amqp_queue_purge_ok_t *ok = amqp_queue_purge(mq->conn, CHANNEL, amqp_cstring_bytes(queue));

    if (!rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "purge queue", err, errlen, NULL))
        return false;
    *purged = ok->message_count;
    return true;
}

bool mq_check_queue(struct mq *mq, const struct mq_topology *topology, const char *name,
                    struct mq_queue_check *check, char *err, size_t errlen)
{
    amqp_table_entry_t entries[4];
    amqp_queue_declare_ok_t *ok;
    const char *said;
    char what[300];
    int code;

    memset(check, 0, sizeof *check);
    /* Passive first: a missing queue is reported, never created. */
    snprintf(what, sizeof what, "inspect queue %s", name);
    ok = amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), 1 /* passive */, 0, 0, 0,
                            amqp_empty_table);
    if (!rpc_ok(mq, amqp_get_rpc_reply(mq->conn), what, err, errlen, &code)) {
        if (code != AMQP_NOT_FOUND)
            return false;
        check->state = MQ_QUEUE_MISSING;
        return reopen_channel(mq, err, errlen);
    }
    check->messages = ok->message_count;
    check->consumers = ok->consumer_count;
    /* Then as the programs declare it: the broker compares the arguments
     * and refuses (PRECONDITION_FAILED) when they differ. */
    snprintf(what, sizeof what, "declare queue %s", name);
    amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), 0 /* passive */,
                       1 /* durable */, 0 /* exclusive */, 0 /* auto_delete */,
                       queue_arguments(entries, topology, strcmp(name, topology->jobs_queue) == 0));
    if (rpc_ok(mq, amqp_get_rpc_reply(mq->conn), what, err, errlen, &code)) {
        check->state = MQ_QUEUE_MATCHES;
        return true;
    }
    if (code != AMQP_PRECONDITION_FAILED)
        return false;
    check->state = MQ_QUEUE_DIFFERS;
    said = strstr(err, "PRECONDITION_FAILED - ");
    snprintf(check->reason, sizeof check->reason, "%s",
             said ? said + strlen("PRECONDITION_FAILED - ") : err);
    return reopen_channel(mq, err, errlen);
}

bool mq_confirm_select(struct mq *mq, char *err, size_t errlen)
{
    amqp_confirm_select(mq->conn, CHANNEL);
    return rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "enable publisher confirms", err, errlen, NULL);
}

bool mq_qos(struct mq *mq, unsigned prefetch, char *err, size_t errlen)
{
    amqp_basic_qos(mq->conn, CHANNEL, 0, (uint16_t)prefetch, 0 /* per consumer */);
    return rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "set prefetch", err, errlen, NULL);
}

bool mq_consume(struct mq *mq, const char *queue, char *err, size_t errlen)
{
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(
        mq->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes /* broker names it */,
        0 /* no_local */, 0 /* no_ack */, 0 /* exclusive */, amqp_empty_table);

    if (!rpc_ok(mq, amqp_get_rpc_reply(mq->conn), "consume", err, errlen, NULL))
        return false;
    copy_shortstr(&mq->consumer_tag, ok->consumer_tag);
    mq->consuming = true;
    return true;
}

bool mq_cancel(struct mq *mq, char *err, size_t errlen)
{
    amqp_basic_cancel_t cancel;

    if (!mq->consuming)
        return true;
    /* Sent without waiting: deliveries already on the wire still arrive
     * and are ours to finish; cancel-ok comes as one more frame. */
    cancel.consumer_tag = bytes_of(mq->consumer_tag.data, mq->consumer_tag.len);
    cancel.nowait = 0;
    if (!status_ok(amqp_send_method(mq->conn, CHANNEL, AMQP_BASIC_CANCEL_METHOD, &cancel),
                   "cancel consumer", err, errlen))
        return false;
    mq->consuming = false;
    mq->cancelling = true;
    return true;
}

bool mq_is_consuming(const struct mq *mq)
{
    return mq->consuming;
}

bool mq_cancel_settled(const struct mq *mq)
{
    return !mq->cancelling;
}

static void set_header(amqp_table_entry_t *entry, const char *key, const char *value)
{
    entry->key = amqp_cstring_bytes(key);
    entry->value.kind = AMQP_FIELD_KIND_UTF8;
    entry->value.value.bytes = amqp_cstring_bytes(value);
}

bool mq_publish(struct mq *mq, const char *routing_key, const struct mq_publish_props *props,
                const void *body, size_t len, bool mandatory, uint64_t *seq, char *err,
                size_t errlen)
{
    amqp_basic_properties_t p;
    amqp_table_entry_t headers[2];

    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (props->content_type) {
        p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        p.content_type = amqp_cstring_bytes(props->content_type);
    }
    /* AMQP short strings hold 255 bytes; a 128-character job_id can take
     * 512.  Such an id travels in the body only: leaving the property off
     * beats a publish that can never be encoded. */
    if (props->message_id && props->message_id_len <= MQ_SHORTSTR_MAX) {
        p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        p.message_id = bytes_of(props->message_id, props->message_id_len);
    }
    if (props->correlation_id && props->correlation_id_len <= MQ_SHORTSTR_MAX) {
        p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        p.correlation_id = bytes_of(props->correlation_id, props->correlation_id_len);
    }
    if (props->reply_to && strlen(props->reply_to) <= MQ_SHORTSTR_MAX) {
        p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        p.reply_to = amqp_cstring_bytes(props->reply_to);
    }
    if (props->error_code) {
        set_header(&headers[0], "x-greet-error", props->error_code);
        set_header(&headers[1], "x-greet-detail", props->error_detail ? props->error_detail : "");
        p._flags |= AMQP_BASIC_HEADERS_FLAG;
        p.headers.num_entries = 2;
        p.headers.entries = headers;
    }
    if (!status_ok(amqp_basic_publish(mq->conn, CHANNEL, amqp_empty_bytes /* default exchange */,
                                      amqp_cstring_bytes(routing_key), mandatory, 0 /* immediate */,
                                      &p, bytes_of(body, len)),
                   "publish", err, errlen))
        return false;
    /* In confirm mode the broker numbers our publishes 1, 2, 3... */
    *seq = ++mq->published;
    return true;
}

bool mq_ack(struct mq *mq, uint64_t delivery_tag, bool multiple, char *err, size_t errlen)
{
    return status_ok(amqp_basic_ack(mq->conn, CHANNEL, delivery_tag, multiple), "ack", err, errlen);
}

bool mq_reject(struct mq *mq, uint64_t delivery_tag, bool requeue, char *err, size_t errlen)
{
    return status_ok(amqp_basic_reject(mq->conn, CHANNEL, delivery_tag, requeue), "reject", err,
                     errlen);
}

bool mq_publish_copy(struct mq *mq, const char *routing_key, const struct mq_message *message,
                     mq_header_filter drop, bool mandatory, uint64_t *seq, char *err, size_t errlen)
{
    const amqp_basic_properties_t *original = message->properties;
    amqp_table_entry_t *kept = NULL;
    amqp_basic_properties_t p;
    int status;

    if (original == NULL) {
        set_error(err, errlen, "publish", "the message has no properties to copy");
        return false;
    }
    p = *original;
    if ((p._flags & AMQP_BASIC_HEADERS_FLAG) && p.headers.num_entries > 0) {
        int n = 0;
        kept = malloc((size_t)p.headers.num_entries * sizeof *kept);
        if (kept == NULL) {
            set_error(err, errlen, "publish", "out of memory");
            return false;
        }
        for (int i = 0; i < original->headers.num_entries; i++) {
            const amqp_table_entry_t *e = &original->headers.entries[i];
            if (drop == NULL || !drop((const char *)e->key.bytes, e->key.len))
                kept[n++] = *e;
        }
        p.headers.entries = kept;
        p.headers.num_entries = n;
        if (n == 0)
            p._flags &= ~AMQP_BASIC_HEADERS_FLAG;
    }
    status = amqp_basic_publish(mq->conn, CHANNEL, amqp_empty_bytes /* default exchange */,
                                amqp_cstring_bytes(routing_key), mandatory, 0 /* immediate */, &p,
                                bytes_of(message->body, message->body_len));
    free(kept);
    if (!status_ok(status, "publish", err, errlen))
        return false;
    *seq = ++mq->published;
    return true;
}

static long long header_integer(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8;
    case AMQP_FIELD_KIND_U8:
        return v->value.u8;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16;
    case AMQP_FIELD_KIND_U16:
        return v->value.u16;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32;
    case AMQP_FIELD_KIND_U32:
        return v->value.u32;
    case AMQP_FIELD_KIND_I64:
        return v->value.i64;
    case AMQP_FIELD_KIND_U64:
        return (long long)v->value.u64;
    default:
        return 0;
    }
}

/* Copies what we use of a content header; the frame's memory is the
 * library's and goes at the next buffer release. */
static bool key_is(amqp_bytes_t key, const char *name)
{
    return key.len == strlen(name) && memcmp(key.bytes, name, key.len) == 0;
}

static bool is_text(const amqp_field_value_t *v)
{
    return v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES;
}

/* The reason of the newest entry of x-death (RabbitMQ keeps the newest
 * first), when it has one. */
static const amqp_bytes_t *newest_death(const amqp_field_value_t *x_death)
{
    const amqp_table_t *entry;

    if (x_death->kind != AMQP_FIELD_KIND_ARRAY || x_death->value.array.num_entries == 0 ||
        x_death->value.array.entries[0].kind != AMQP_FIELD_KIND_TABLE)
        return NULL;
    entry = &x_death->value.array.entries[0].value.table;
    for (int i = 0; i < entry->num_entries; i++) {
        const amqp_table_entry_t *e = &entry->entries[i];
        if (key_is(e->key, "reason") && is_text(&e->value))
            return &e->value.value.bytes;
    }
    return NULL;
}

/* The broker's dead-lettering headers (see struct mq_message). */
static void take_death(struct mq_message *m, const amqp_table_t *headers)
{
    const amqp_bytes_t *last = NULL, *newest = NULL, *first = NULL;

    for (int i = 0; i < headers->num_entries; i++) {
        const amqp_table_entry_t *e = &headers->entries[i];
        if (key_is(e->key, "x-death"))
            newest = newest_death(&e->value);
        else if (key_is(e->key, "x-last-death-reason") && is_text(&e->value))
            last = &e->value.value.bytes;
        else if (key_is(e->key, "x-first-death-reason") && is_text(&e->value))
            first = &e->value.value.bytes;
    }
    if (last == NULL)
        last = newest ? newest : first;
    if (last != NULL)
        copy_shortstr(&m->death_reason, *last);
}

static void take_properties(struct mq_message *m, const amqp_basic_properties_t *p)
{
    m->properties = p;
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        copy_shortstr(&m->content_type, p->content_type);
    m->persistent =
        (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) && p->delivery_mode == AMQP_DELIVERY_PERSISTENT;
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        copy_shortstr(&m->message_id, p->message_id);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        copy_shortstr(&m->correlation_id, p->correlation_id);
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        copy_shortstr(&m->reply_to, p->reply_to);
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == 16 && memcmp(e->key.bytes, "x-delivery-count", 16) == 0)
            m->delivery_count = header_integer(&e->value);
        else if (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES) {
            if (e->key.len == 13 && memcmp(e->key.bytes, "x-greet-error", 13) == 0)
                copy_shortstr(&m->greet_error, e->value.value.bytes);
            else if (e->key.len == 14 && memcmp(e->key.bytes, "x-greet-detail", 14) == 0)
                copy_shortstr(&m->greet_detail, e->value.value.bytes);
        }
    }
    take_death(m, &p->headers);
}

/* A finished message becomes the event; false while frames are missing. */
static bool finish_message(struct mq *mq, struct mq_event *event)
{
    if (mq->body.len < mq->body_expected)
        return false;
    *event = mq->assembling;
    event->message.body = mq->body.data ? mq->body.data : "";
    event->message.body_len = mq->body.len;
    mq->incoming = INCOMING_NONE;
    return true;
}

static void start_message(struct mq *mq, enum incoming kind)
{
    memset(&mq->assembling, 0, sizeof mq->assembling);
    mq->assembling.type = kind == INCOMING_DELIVERY ? MQ_EVENT_DELIVERY : MQ_EVENT_RETURN;
    mq->incoming = kind;
    mq->body_expected = 0;
    /* A huge message (dead-lettered for being too large) must not pin its
     * memory for the life of the process. */
    buf_shrink(&mq->body, 1 << 20);
}

/* 1: event; 0: frame consumed, no event yet; -1: connection unusable. */
static int handle_method(struct mq *mq, amqp_method_t *method, struct mq_event *event, char *err,
                         size_t errlen)
{
    switch (method->id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = method->decoded;
        start_message(mq, INCOMING_DELIVERY);
        mq->assembling.message.delivery_tag = d->delivery_tag;
        mq->assembling.message.redelivered = d->redelivered;
        copy_shortstr(&mq->assembling.message.routing_key, d->routing_key);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = method->decoded;
        start_message(mq, INCOMING_RETURN);
        mq->assembling.return_code = r->reply_code;
        copy_shortstr(&mq->assembling.return_text, r->reply_text);
        copy_shortstr(&mq->assembling.message.routing_key, r->routing_key);
        return 0;
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = method->decoded;
        memset(event, 0, sizeof *event);
        event->type = MQ_EVENT_CONFIRM;
        event->seq = a->delivery_tag;
        event->multiple = a->multiple;
        return 1;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = method->decoded;
        memset(event, 0, sizeof *event);
        event->type = MQ_EVENT_CONFIRM;
        event->seq = n->delivery_tag;
        event->multiple = n->multiple;
        event->nacked = true;
        return 1;
    }
    case AMQP_BASIC_CANCEL_OK_METHOD:
        /* Every delivery sent before it has arrived by now. */
        mq->cancelling = false;
        return 0;
    case AMQP_BASIC_CANCEL_METHOD:
        memset(event, 0, sizeof *event);
        event->type = MQ_EVENT_CANCELLED;
        mq->consuming = false;
        return 1;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *c = method->decoded;
        snprintf(err, errlen, "channel closed by the broker: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *c = method->decoded;
        amqp_connection_close_ok_t close_ok = {0};
        snprintf(err, errlen, "connection closed by the broker: %u %.*s", c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        amqp_send_method(mq->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
        return -1;
    }
    default:
        /* cancel-ok, qos-ok, connection.blocked and the like: nothing to do. */
        return 0;
    }
}

int mq_next_event(struct mq *mq, struct mq_event *event, char *err, size_t errlen)
{
    struct timeval now_only = {0, 0};

    for (;;) {
        amqp_frame_t frame;
        int status = amqp_simple_wait_frame_noblock(mq->conn, &frame, &now_only);

        if (status == AMQP_STATUS_TIMEOUT)
            return 0;
        if (status != AMQP_STATUS_OK) {
            set_error(err, errlen, "broker connection", amqp_error_string2(status));
            return -1;
        }
        mq->input_seen = true;

        switch (frame.frame_type) {
        case AMQP_FRAME_METHOD: {
            int result = handle_method(mq, &frame.payload.method, event, err, errlen);
            if (result != 0)
                return result;
            break;
        }
        case AMQP_FRAME_HEADER:
            if (mq->incoming == INCOMING_NONE)
                break;
            take_properties(&mq->assembling.message, frame.payload.properties.decoded);
            mq->body_expected = frame.payload.properties.body_size;
            if (!buf_reserve(&mq->body, (size_t)mq->body_expected)) {
                set_error(err, errlen, "broker connection", "out of memory for a message body");
                return -1;
            }
            if (finish_message(mq, event))
                return 1;
            break;
        case AMQP_FRAME_BODY:
            if (mq->incoming == INCOMING_NONE)
                break;
            if (!buf_append(&mq->body, frame.payload.body_fragment.bytes,
                            frame.payload.body_fragment.len)) {
                set_error(err, errlen, "broker connection", "out of memory for a message body");
                return -1;
            }
            if (finish_message(mq, event))
                return 1;
            break;
        default: /* heartbeats */
            break;
        }
    }
}

int mq_get(struct mq *mq, const char *queue, struct mq_message *message, char *err, size_t errlen)
{
    struct timeval timeout = to_timeval(mq->timeout);
    amqp_basic_get_ok_t *ok;
    amqp_rpc_reply_t reply;
    struct mq_event event;
    char what[300];

    snprintf(what, sizeof what, "get from queue %s", queue);
    if (amqp_frames_enqueued(mq->conn) || mq->incoming != INCOMING_NONE) {
        set_error(err, errlen, what, "events are waiting to be read first (a caller's bug)");
        return -1;
    }
    reply = amqp_basic_get(mq->conn, CHANNEL, amqp_cstring_bytes(queue), 0 /* no_ack */);
    if (!rpc_ok(mq, reply, what, err, errlen, NULL))
        return -1;
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    /* Frames that came during the RPC (confirms of publishes the caller
     * did not wait for) are older than get-ok: reading on would take
     * them for its content. */
    if (amqp_frames_enqueued(mq->conn)) {
        set_error(err, errlen, what, "frames arrived before the message (a caller's bug)");
        return -1;
    }
    ok = reply.reply.decoded;
    start_message(mq, INCOMING_DELIVERY);
    mq->assembling.message.delivery_tag = ok->delivery_tag;
    mq->assembling.message.redelivered = ok->redelivered;
    copy_shortstr(&mq->assembling.message.routing_key, ok->routing_key);
    for (;;) {
        amqp_frame_t frame;
        int status = amqp_simple_wait_frame_noblock(mq->conn, &frame, &timeout);

        if (status != AMQP_STATUS_OK) {
            mq->incoming = INCOMING_NONE;
            set_error(err, errlen, what, amqp_error_string2(status));
            return -1;
        }
        mq->input_seen = true;
        if (frame.frame_type == AMQP_FRAME_METHOD) {
            mq->incoming = INCOMING_NONE;
            snprintf(err, errlen, "%s: unexpected broker method 0x%08x before the message", what,
                     frame.payload.method.id);
            return -1;
        }
        if (frame.frame_type == AMQP_FRAME_HEADER) {
            take_properties(&mq->assembling.message, frame.payload.properties.decoded);
            mq->body_expected = frame.payload.properties.body_size;
            if (!buf_reserve(&mq->body, (size_t)mq->body_expected))
                break;
        } else if (frame.frame_type == AMQP_FRAME_BODY) {
            if (!buf_append(&mq->body, frame.payload.body_fragment.bytes,
                            frame.payload.body_fragment.len))
                break;
        } else {
            continue; /* heartbeats */
        }
        if (finish_message(mq, &event)) {
            *message = event.message;
            return 1;
        }
    }
    mq->incoming = INCOMING_NONE;
    set_error(err, errlen, what, "out of memory for a message body");
    return -1;
}

int mq_fd(const struct mq *mq)
{
    return amqp_get_sockfd(mq->conn);
}

void mq_saw_input(struct mq *mq, double now)
{
    mq->last_input = now;
}

bool mq_heartbeat_ok(struct mq *mq, double now)
{
    /* Frames are counted here, with the caller's clock, rather than with
     * a clock read per frame. */
    if (mq->input_seen) {
        mq->last_input = now;
        mq->input_seen = false;
    }
    return mq->heartbeat == 0 || now - mq->last_input <= 2.0 * mq->heartbeat;
}

bool mq_has_buffered(const struct mq *mq)
{
    return amqp_frames_enqueued(mq->conn) || amqp_data_in_buffer(mq->conn);
}

void mq_release_buffers(struct mq *mq)
{
    /* Only between messages: a half-assembled one has copied what it
     * needs, but releasing is cheap enough to wait for a clean point. */
    if (mq->incoming == INCOMING_NONE)
        amqp_maybe_release_buffers(mq->conn);
}

void mq_describe(const struct mq *mq, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", mq->url_masked);
}
