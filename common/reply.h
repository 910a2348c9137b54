/* reply.h - encoding reply bodies (pure).  Equal input gives equal bytes:
 * a redelivered job's reply is byte-identical to the first one. */
#ifndef GREET_REPLY_H
#define GREET_REPLY_H

#include "buf.h"

#include <stdbool.h>

/* {"job_id":..,"status":"ok","message":..,"language":..} */
bool reply_encode_ok(struct buf *out, const char *job_id, const char *message,
                     const char *language);

/* {"job_id":..|null,"status":"error","error":..,"detail":..}; job_id NULL
 * or "" when none could be read. */
bool reply_encode_error(struct buf *out, const char *job_id, const char *code, const char *detail);

#endif
