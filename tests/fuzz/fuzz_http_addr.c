/* fuzz_http_addr.c - GREET_HTTP_ADDR, HOST:PORT (http_addr.h).
 *
 * What is accepted has a port of 1..65535 written in decimal, a host that
 * is nothing, "localhost", an IPv4 address written as inet_ntop() writes
 * it, or an IPv6 address in brackets; written back from the result it
 * parses to the same address.  What is refused says why. */
#include "fuzz.h"
#include "http_addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in;
    struct http_addr addr, again;
    char err[256], host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 16], port[8];
    const char *addr_text, *colon, *port_text;
    size_t host_len;

    fuzz_input_init(&in, data, size);
    addr_text = fuzz_string(&in);
    err[0] = '\0';
    if (!http_addr_parse(addr_text, &addr, err, sizeof err)) {
        fuzz_require(err[0] != '\0', "refused without a reason");
        goto done;
    }

    fuzz_require(addr.port >= 1, "port 0 accepted");
    colon = strrchr(addr_text, ':');
    fuzz_require(colon != NULL, "accepted without a ':'");
    port_text = colon + 1;
    while (port_text[0] == '0' && port_text[1] != '\0')
        port_text++; /* strtol's leading zeros */
    snprintf(port, sizeof port, "%u", addr.port);
    fuzz_require(strcmp(port, port_text) == 0, "port %s read from '%s'", port, colon + 1);

    inet_ntop(addr.ipv6 ? AF_INET6 : AF_INET, addr.ip, host, sizeof host);
    host_len = (size_t)(colon - addr_text);
    if (addr.ipv6) {
        fuzz_require(addr_text[0] == '[' && addr_text[host_len - 1] == ']',
                     "IPv6 without brackets: '%s'", addr_text);
        snprintf(text, sizeof text, "[%s]:%u", host, addr.port);
    } else {
        fuzz_require(host_len == 0 || (host_len == 9 && strncmp(addr_text, "localhost", 9) == 0) ||
                         (strlen(host) == host_len && strncmp(addr_text, host, host_len) == 0),
                     "host of '%s' read as %s", addr_text, host);
        snprintf(text, sizeof text, "%s:%u", host, addr.port);
    }
    fuzz_require(http_addr_parse(text, &again, err, sizeof err) &&
                     memcmp(&addr, &again, sizeof addr) == 0,
                 "'%s', written back as '%s', does not read the same", addr_text, text);
done:
    fuzz_input_free(&in);
    return 0;
}
