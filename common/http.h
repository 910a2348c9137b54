/* http.h - a small HTTP server for a program's metrics and health, on
 * libmicrohttpd (a well-kept library: HTTP parsing, slow and malformed
 * clients, connection limits are not ours to write).
 *
 * The server runs in its own thread, so no client -- slow, malformed, or
 * ten thousand in a loop -- ever waits in the program's event loop.  The
 * handler runs on that thread: it must read only what the program
 * published for it (status.h), never the loop's own state.  Only GET and
 * HEAD are served; a request with a body gets 405. */
#ifndef GREET_HTTP_H
#define GREET_HTTP_H

#include "buf.h"
#include "http_addr.h"

#include <stddef.h>

struct http_reply {
    unsigned status;          /* 200 unless the handler says otherwise */
    const char *content_type; /* a static string */
    struct buf body;          /* owned by the server */
};

/* Fills reply for path (the request's path, query string dropped). */
typedef void (*http_handler_fn)(void *ctx, const char *path, struct http_reply *reply);

struct http_server;

/* Listens on addr and serves in a thread of its own; NULL with err
 * filled when it cannot (port taken, say). */
struct http_server *http_start(const struct http_addr *addr, http_handler_fn handler, void *ctx,
                               char *err, size_t errlen);
/* Stops the thread and closes the port; NULL is fine. */
void http_stop(struct http_server *s);

#endif
