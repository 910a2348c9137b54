/* prom.c - the Prometheus text format; see prom.h. */
#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void histogram_init(struct histogram *h, const double *bounds, unsigned n)
{
    memset(h, 0, sizeof *h);
    h->n = n > HISTOGRAM_MAX_BUCKETS ? HISTOGRAM_MAX_BUCKETS : n;
    memcpy(h->bounds, bounds, h->n * sizeof *bounds);
}

void histogram_observe(struct histogram *h, double value)
{
    unsigned i = 0;

    if (isnan(value))
        return;
    while (i < h->n && value > h->bounds[i]) /* le: a bound holds what equals it */
        i++;
    h->counts[i]++;
    h->sum += value;
}

unsigned long long histogram_count(const struct histogram *h)
{
    unsigned long long count = 0;

    for (unsigned i = 0; i <= h->n; i++)
        count += h->counts[i];
    return count;
}

/* HELP text escapes \ and newline; label values also ". */
static bool append_escaped(struct buf *out, const char *s, bool quote)
{
    for (; *s; s++) {
        const char *esc = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;
        if (esc ? !buf_append_str(out, esc) : !buf_append(out, s, 1))
            return false;
    }
    return true;
}

/* Floats as Prometheus parses them: +Inf, -Inf, NaN, else the shortest
 * %g that reads back the same. */
static void format_double(char *text, size_t len, double value)
{
    if (isnan(value)) {
        snprintf(text, len, "NaN");
        return;
    }
    if (isinf(value)) {
        snprintf(text, len, value > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        double back, size = fabs(value);
        snprintf(text, len, "%.*g", precision, value);
        /* 10, not 1e+01: the exponent only outside [1e-4, 1e15) */
        if (strchr(text, 'e') != NULL && size >= 1e-4 && size < 1e15 && precision < 17)
            continue;
        if (sscanf(text, "%lf", &back) == 1 && back == value)
            return;
    }
}

bool prom_family(struct buf *out, const char *name, const char *type, const char *help)
{
    return buf_append_str(out, "# HELP ") && buf_append_str(out, name) &&
           buf_append_str(out, " ") && append_escaped(out, help, false) &&
           buf_append_str(out, "\n# TYPE ") && buf_append_str(out, name) &&
           buf_append_str(out, " ") && buf_append_str(out, type) && buf_append_str(out, "\n");
}

static bool sample_head(struct buf *out, const char *name, const char *labels)
{
    if (!buf_append_str(out, name))
        return false;
    if (labels != NULL && labels[0] != '\0' &&
        !(buf_append_str(out, "{") && buf_append_str(out, labels) && buf_append_str(out, "}")))
        return false;
    return buf_append_str(out, " ");
}

bool prom_sample(struct buf *out, const char *name, const char *labels, double value)
{
    char text[40];

    format_double(text, sizeof text, value);
    return sample_head(out, name, labels) && buf_append_str(out, text) && buf_append_str(out, "\n");
}

bool prom_sample_int(struct buf *out, const char *name, const char *labels,
                     unsigned long long value)
{
    char text[24];

    snprintf(text, sizeof text, "%llu", value);
    return sample_head(out, name, labels) && buf_append_str(out, text) && buf_append_str(out, "\n");
}

bool prom_label(struct buf *labels, const char *key, const char *value)
{
    return (labels->len == 0 || buf_append_str(labels, ",")) && buf_append_str(labels, key) &&
           buf_append_str(labels, "=\"") && append_escaped(labels, value, true) &&
           buf_append_str(labels, "\"");
}

bool prom_histogram(struct buf *out, const char *name, const char *help, const struct histogram *h)
{
    char bucket[128], le[48], text[40];
    unsigned long long cumulative = 0;
    bool ok;

    ok = prom_family(out, name, "histogram", help);
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    for (unsigned i = 0; ok && i <= h->n; i++) {
        cumulative += h->counts[i];
        format_double(text, sizeof text, i < h->n ? h->bounds[i] : INFINITY);
        snprintf(le, sizeof le, "le=\"%s\"", text);
        ok = prom_sample_int(out, bucket, le, cumulative);
    }
    snprintf(bucket, sizeof bucket, "%s_sum", name);
    ok = ok && prom_sample(out, bucket, NULL, h->sum);
    snprintf(bucket, sizeof bucket, "%s_count", name);
    return ok && prom_sample_int(out, bucket, NULL, cumulative);
}
