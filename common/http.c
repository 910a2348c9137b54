/* http.c - the metrics and health server, on libmicrohttpd; see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds for bad clients: a scraper needs one connection at a time, an
 * orchestrator's probes a few.  A connection idle this long is closed;
 * past the limits new ones are refused at once.  The idle timeout does
 * not end a slowloris client (a byte a second is not idle), so no client
 * address may hold more than PER_CLIENT of the CONNECTION_LIMIT: one bad
 * client cannot keep the kubelet's probes or Prometheus out. */
#define CONNECTION_LIMIT   64
#define PER_CLIENT         8
#define CONNECTION_TIMEOUT 5 /* seconds */
#define CONNECTION_MEMORY  (16 * 1024)

struct http_server {
    struct MHD_Daemon *daemon;
    http_handler_fn handler;
    void *ctx;
};

static enum MHD_Result respond(struct MHD_Connection *connection, unsigned status,
                               const char *content_type, const char *body, size_t len)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result result;

    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct http_server *s = cls;
    struct http_reply reply = {200, "text/plain; charset=utf-8", {0}};
    enum MHD_Result result;
    static const char not_allowed[] = "only GET and HEAD are served\n";

    (void)version;
    (void)upload_data;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                       not_allowed, sizeof not_allowed - 1);
    if (*upload_data_size != 0) { /* a GET with a body: not ours to read */
        *upload_data_size = 0;
        return respond(connection, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", "", 0);
    }
    s->handler(s->ctx, url, &reply);
    if (reply.body.data == NULL && !buf_append_str(&reply.body, "")) {
        reply.status = 500;
    }
    result = respond(connection, reply.status, reply.content_type,
                     reply.body.data ? reply.body.data : "", reply.body.len);
    buf_free(&reply.body);
    return result;
}

struct http_server *http_start(const struct http_addr *addr, http_handler_fn handler, void *ctx,
                               char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof *s);
    struct sockaddr_in v4 = {0};
    struct sockaddr_in6 v6 = {0};
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->handler = handler;
    s->ctx = ctx;
    if (addr->ipv6) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(addr->port);
        memcpy(&v6.sin6_addr, addr->ip, 16);
        sa = (const struct sockaddr *)&v6;
        flags |= MHD_USE_IPv6;
    } else {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(addr->port);
        memcpy(&v4.sin_addr, addr->ip, 4);
        sa = (const struct sockaddr *)&v4;
    }
    /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: that is SO_REUSEPORT, and
     * two workers given the same port would share it without a word;
     * the second must fail to start instead. */
    errno = 0;
    s->daemon = MHD_start_daemon(flags, addr->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                 sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)PER_CLIENT,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_END);
    if (s->daemon == NULL) {
        char host[INET6_ADDRSTRLEN] = "";
        inet_ntop(addr->ipv6 ? AF_INET6 : AF_INET, addr->ip, host, sizeof host);
        snprintf(err, errlen, "cannot listen on %s%s%s:%u%s%s", addr->ipv6 ? "[" : "", host,
                 addr->ipv6 ? "]" : "", addr->port, errno ? ": " : "",
                 errno ? strerror(errno) : "");
        free(s);
        return NULL;
    }
    return s;
}

void http_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
