/* fault.c - fault-injection hooks (test builds only); see fault.h. */
#include "fault.h"

#ifdef GREET_FAULT_INJECTION
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *crash_job, *stall_job;
static bool ack_early;
static double stall_seconds = 5;

void fault_init(void)
{
    const char *early = getenv("GREET_FAULT_ACK_EARLY");

    crash_job = getenv("GREET_FAULT_CRASH_JOB");
    stall_job = getenv("GREET_FAULT_STALL_JOB");
    if (getenv("GREET_FAULT_STALL_SECONDS") != NULL)
        stall_seconds = strtod(getenv("GREET_FAULT_STALL_SECONDS"), NULL);
    ack_early = early != NULL && strcmp(early, "1") == 0;
    if (crash_job != NULL || ack_early || stall_job != NULL)
        log_msg(LOG_WARN, "fault.injection", "fault-injection build with a fault armed");
}

void fault_crash_check(const char *job_id)
{
    if (crash_job != NULL && strcmp(crash_job, job_id) == 0) {
        log_msg(LOG_ERROR, "fault.crash", job_id);
        abort();
    }
}

bool fault_ack_early(void)
{
    return ack_early;
}

void fault_stall_check(const char *job_id)
{
    if (stall_job != NULL && strcmp(stall_job, job_id) == 0) {
        double s = stall_seconds;
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

        log_msg(LOG_ERROR, "fault.stall", job_id);
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
}

double fault_stall_limit(double limit)
{
    const char *given = getenv("GREET_FAULT_STALL_LIMIT");

    return given != NULL ? strtod(given, NULL) : limit;
}
#else
/* ISO C wants something in a translation unit. */
typedef int fault_injection_not_built;
#endif
