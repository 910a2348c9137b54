/* fuzz_prom.c - the Prometheus text format (prom.h) on any names, label
 * values, help texts and numbers.
 *
 * A label value and a help text read back, unescaped as Prometheus does,
 * to what was given, and never break the line; a sample's number reads
 * back to the same double (+Inf, -Inf and NaN included); a histogram puts
 * each observation in the first bucket whose bound holds it, its
 * cumulative buckets never fall, and +Inf and _count are the count of
 * observations that are numbers. */
#include "fuzz.h"
#include "prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double read_double(struct fuzz_input *in)
{
    unsigned char bytes[sizeof(double)];
    double value;

    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = fuzz_byte(in);
    memcpy(&value, bytes, sizeof value);
    return value;
}

/* Reads an escaped text from s up to (not including) end_char, undoing
 * \\, \n and, when quoted, \"; returns where it stopped. */
static const char *unescape(const char *s, char end_char, bool quoted, struct buf *out)
{
    for (; *s && *s != end_char; s++) {
        fuzz_require(*s != '\n', "a raw newline");
        if (*s == '\\') {
            char next = s[1];
            fuzz_require(next == '\\' || next == 'n' || (quoted && next == '"'),
                         "a stray backslash");
            fuzz_require(buf_append(out, next == 'n' ? "\n" : &next, 1), "out of memory");
            s++;
        } else {
            fuzz_require(buf_append(out, s, 1), "out of memory");
        }
    }
    return s;
}

static void check_label(const char *key, const char *value)
{
    struct buf labels = {0}, back = {0};
    const char *end;

    fuzz_require(prom_label(&labels, "first", "x") && prom_label(&labels, key, value),
                 "out of memory");
    fuzz_require(strncmp(labels.data, "first=\"x\",", 10) == 0 &&
                     strncmp(labels.data + 10, key, strlen(key)) == 0 &&
                     strncmp(labels.data + 10 + strlen(key), "=\"", 2) == 0,
                 "labels '%s'", labels.data);
    end = unescape(labels.data + 12 + strlen(key), '"', true, &back);
    fuzz_require(end[0] == '"' && end[1] == '\0', "label value ends early: '%s'", labels.data);
    fuzz_require(strcmp(back.data ? back.data : "", value) == 0,
                 "label value '%s' read back as '%s'", value, back.data);
    buf_free(&labels);
    buf_free(&back);
}

static void check_family(const char *help)
{
    struct buf out = {0}, back = {0};
    const char *head = "# HELP greet_x ", *end;

    fuzz_require(prom_family(&out, "greet_x", "counter", help), "out of memory");
    fuzz_require(strncmp(out.data, head, strlen(head)) == 0, "family '%s'", out.data);
    end = unescape(out.data + strlen(head), '\n', false, &back);
    fuzz_require(strcmp(end, "\n# TYPE greet_x counter\n") == 0, "help breaks the lines: '%s'",
                 out.data);
    fuzz_require(strcmp(back.data ? back.data : "", help) == 0, "help '%s' read back as '%s'", help,
                 back.data);
    buf_free(&out);
    buf_free(&back);
}

static double parse_number(const char *text)
{
    char *end;
    double value;

    if (strcmp(text, "+Inf") == 0)
        return INFINITY;
    if (strcmp(text, "-Inf") == 0)
        return -INFINITY;
    if (strcmp(text, "NaN") == 0)
        return NAN;
    value = strtod(text, &end);
    fuzz_require(end != text && *end == '\0', "'%s' is not a number", text);
    return value;
}

static void check_sample(double value)
{
    struct buf out = {0};
    double back;

    fuzz_require(prom_sample(&out, "greet_x", NULL, value), "out of memory");
    fuzz_require(strncmp(out.data, "greet_x ", 8) == 0 && out.data[out.len - 1] == '\n',
                 "sample '%s'", out.data);
    out.data[out.len - 1] = '\0';
    back = parse_number(out.data + 8);
    fuzz_require(isnan(value) ? isnan(back) : memcmp(&back, &value, sizeof value) == 0,
                 "%a written as '%s'", value, out.data + 8);
    buf_free(&out);
}

static int ascending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check_histogram(struct fuzz_input *in)
{
    double bounds[HISTOGRAM_MAX_BUCKETS];
    unsigned long long expected[HISTOGRAM_MAX_BUCKETS + 1] = {0}, numbers = 0, previous = 0;
    unsigned n = fuzz_byte(in) % (HISTOGRAM_MAX_BUCKETS + 1), kept = 0;
    struct histogram h;
    struct buf out = {0};
    const char *line;

    for (unsigned i = 0; i < n; i++) {
        double bound = read_double(in);
        if (!isnan(bound)) /* bounds are numbers, ascending */
            bounds[kept++] = bound;
    }
    qsort(bounds, kept, sizeof bounds[0], ascending);
    histogram_init(&h, bounds, kept);
    while (fuzz_input_left(in)) {
        double value = read_double(in);
        unsigned i = 0;

        histogram_observe(&h, value);
        if (isnan(value))
            continue;
        while (i < kept && !(value <= bounds[i]))
            i++;
        expected[i]++;
        numbers++;
    }
    fuzz_require(memcmp(h.counts, expected, sizeof expected) == 0, "an observation misplaced");
    fuzz_require(histogram_count(&h) == numbers, "count %llu of %llu", histogram_count(&h),
                 numbers);

    fuzz_require(prom_histogram(&out, "greet_h", "help", &h), "out of memory");
    for (line = strstr(out.data, "greet_h_bucket{"); line != NULL;
         line = strstr(line + 1, "greet_h_bucket{")) {
        unsigned long long cumulative = strtoull(strchr(line, '}') + 2, NULL, 10);
        fuzz_require(cumulative >= previous, "cumulative buckets fall: %s", out.data);
        previous = cumulative;
    }
    fuzz_require(previous == numbers && strstr(out.data, "le=\"+Inf\"") != NULL,
                 "+Inf bucket %llu of %llu", previous, numbers);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in;
    const char *key, *value, *help;

    fuzz_input_init(&in, data, size);
    key = fuzz_string(&in);
    value = fuzz_string(&in);
    help = fuzz_string(&in);
    check_label(key, value);
    check_family(help);
    check_sample(read_double(&in));
    check_histogram(&in);
    fuzz_input_free(&in);
    return 0;
}
