/* fault.h - the fault-injection hooks, all of them, in one place.
 *
 * Only `make FAULT_INJECTION=1` builds (the fault suite's) have them; in
 * every other build they are empty inline functions the compiler drops.
 *
 *   GREET_FAULT_CRASH_JOB=ID   abort() when job ID is processed, the way a
 *                              crashing bug would (the crash-loop scenario)
 *   GREET_FAULT_ACK_EARLY=1    the deliberately broken worker: ack a job as
 *                              its lookup starts, long before its reply is
 *                              confirmed -- the bug the suite must catch
 *   GREET_FAULT_STALL_JOB=ID   the loop blocks for GREET_FAULT_STALL_SECONDS
 *                              (default 5) when job ID is processed, the way
 *                              a call that never returns would; with
 *   GREET_FAULT_STALL_LIMIT=S  /healthz calls the loop stalled after S s
 *                              instead of its derived limit (tens of s) */
#ifndef GREET_FAULT_H
#define GREET_FAULT_H

#include <stdbool.h>

#ifdef GREET_FAULT_INJECTION
void fault_init(void);
void fault_crash_check(const char *job_id);
bool fault_ack_early(void);
void fault_stall_check(const char *job_id);
double fault_stall_limit(double limit);
#else
static inline void fault_init(void)
{
}
static inline void fault_crash_check(const char *job_id)
{
    (void)job_id;
}
static inline bool fault_ack_early(void)
{
    return false;
}
static inline void fault_stall_check(const char *job_id)
{
    (void)job_id;
}
static inline double fault_stall_limit(double limit)
{
    return limit;
}
#endif

#endif
