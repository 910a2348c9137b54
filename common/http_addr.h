/* http_addr.h - the address the metrics and health port listens on.
 *
 * GREET_HTTP_ADDR is HOST:PORT with HOST a numeric IPv4 address, an IPv6
 * address in brackets, "localhost" (127.0.0.1), or nothing (":9464", all
 * interfaces, as in a container).  Pure: parsing only; http.c binds. */
#ifndef GREET_HTTP_ADDR_H
#define GREET_HTTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_addr {
    bool ipv6;
    uint8_t ip[16]; /* network order; the first 4 bytes for IPv4 */
    uint16_t port;  /* 1..65535 */
};

/* False with err filled (naming what is wrong) when text is not a
 * HOST:PORT this program can listen on. */
bool http_addr_parse(const char *text, struct http_addr *out, char *err, size_t errlen);

#endif
