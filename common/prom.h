/* prom.h - the Prometheus text exposition format (version 0.0.4), and
 * the histograms that feed it.  Pure: the caller owns the numbers and the
 * buffer; http.c serves the text.
 *
 * Each family is written once: a HELP line, a TYPE line, then its samples.
 * Names follow Prometheus: base units (seconds), counters end in _total. */
#ifndef GREET_PROM_H
#define GREET_PROM_H

#include "buf.h"

#include <stdbool.h>

#define HISTOGRAM_MAX_BUCKETS 16

/* Observations counted per bucket (not cumulative: the exposition sums
 * them); the count of all is derived from the buckets, not kept beside. */
struct histogram {
    unsigned n;                                           /* finite upper bounds */
    double bounds[HISTOGRAM_MAX_BUCKETS];                 /* ascending */
    unsigned long long counts[HISTOGRAM_MAX_BUCKETS + 1]; /* the last: above every bound */
    double sum;
};

/* n ascending bounds, at most HISTOGRAM_MAX_BUCKETS (more are dropped). */
void histogram_init(struct histogram *h, const double *bounds, unsigned n);
void histogram_observe(struct histogram *h, double value);
unsigned long long histogram_count(const struct histogram *h);

/* # HELP and # TYPE (counter, gauge, histogram, info is not in 0.0.4). */
bool prom_family(struct buf *out, const char *name, const char *type, const char *help);
/* name{labels} value.  labels is what goes between the braces, already
 * written (prom_label), or NULL for none. */
bool prom_sample(struct buf *out, const char *name, const char *labels, double value);
bool prom_sample_int(struct buf *out, const char *name, const char *labels,
                     unsigned long long value);
/* Appends key="value" (with a leading comma when out is not empty) to a
 * label list, the value escaped as the format asks (\\, \", \n). */
bool prom_label(struct buf *labels, const char *key, const char *value);
/* A whole histogram family: HELP, TYPE, the cumulative _bucket samples
 * with le="..." up to +Inf, _sum and _count. */
bool prom_histogram(struct buf *out, const char *name, const char *help, const struct histogram *h);

#endif
