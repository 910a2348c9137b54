/* http_addr.c - HOST:PORT for the metrics and health port; see http_addr.h. */
#include "http_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool http_addr_parse(const char *text, struct http_addr *out, char *err, size_t errlen)
{
    char host[64];
    const char *colon, *port_text, *host_start = text;
    size_t host_len;
    char *end;
    long port;

    memset(out, 0, sizeof *out);
    if (text[0] == '[') { /* [IPv6]:PORT */
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "'%s': an IPv6 address is written [ADDRESS]:PORT", text);
            return false;
        }
        host_start = text + 1;
        host_len = (size_t)(close - host_start);
        colon = close + 1;
        out->ipv6 = true;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "'%s': expected HOST:PORT, e.g. 127.0.0.1:9464 or :9464", text);
            return false;
        }
        host_len = (size_t)(colon - text);
        if (memchr(text, ':', host_len) != NULL) {
            snprintf(err, errlen, "'%s': an IPv6 address is written [ADDRESS]:PORT", text);
            return false;
        }
    }
    port_text = colon + 1;
    errno = 0;
    port = strtol(port_text, &end, 10);
    if (port_text[0] < '0' || port_text[0] > '9' || *end != '\0' || errno != 0 || port < 1 ||
        port > 65535) {
        snprintf(err, errlen, "'%s': the port must be a number from 1 to 65535", text);
        return false;
    }
    out->port = (uint16_t)port;
    if (host_len >= sizeof host) {
        snprintf(err, errlen, "'%s': the host is too long for an IP address", text);
        return false;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    if (out->ipv6) {
        if (inet_pton(AF_INET6, host, out->ip) != 1) {
            snprintf(err, errlen, "'%s': '%s' is not an IPv6 address", text, host);
            return false;
        }
        return true;
    }
    if (host[0] == '\0') /* all interfaces: 0.0.0.0 */
        return true;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, out->ip) != 1) {
        snprintf(err, errlen,
                 "'%s': '%s' is not an IPv4 address (names other than localhost are not looked "
                 "up; use [ADDRESS] for IPv6)",
                 text, host);
        return false;
    }
    return true;
}
