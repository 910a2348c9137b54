/* clock.h - monotonic time in seconds, for deadlines and rates. */
#ifndef GREET_CLOCK_H
#define GREET_CLOCK_H

double clock_now(void);
/* Milliseconds from now until deadline, clamped to [0, cap_ms]: a poll(2)
 * timeout. */
int clock_ms_until(double deadline, int cap_ms);

#endif
