/* fault.c - fault-injection hooks (test builds only); see fault.h. */
#include "fault.h"

#ifdef GREET_FAULT_INJECTION
#include "log.h"

#include <stdlib.h>
#include <string.h>

static const char *crash_job;
static bool ack_early;

void fault_init(void)
{
    const char *early = getenv("GREET_FAULT_ACK_EARLY");

    crash_job = getenv("GREET_FAULT_CRASH_JOB");
    ack_early = early != NULL && strcmp(early, "1") == 0;
    if (crash_job != NULL || ack_early)
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
#else
/* ISO C wants something in a translation unit. */
typedef int fault_injection_not_built;
#endif
