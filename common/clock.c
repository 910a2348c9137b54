/* clock.c - monotonic time; see clock.h. */
#include "clock.h"

#include <time.h>

double clock_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int clock_ms_until(double deadline, int cap_ms)
{
    double ms = (deadline - clock_now()) * 1000.0;

    if (ms <= 0)
        return 0;
    if (ms >= cap_ms)
        return cap_ms;
    /* Round up: waking a millisecond early would just spin once more. */
    return (int)ms + 1;
}
