/* test_ledger.c - the in-flight ledger walked through the event orders
 * that matter.  Each case is a script, one step a line:
 *
 *   add TAG [r]              a delivery (r: redelivered, a suspect)
 *   next [BATCH [RANDOM]]    ask what to do; "= idle", "= lookup T T..",
 *                            "= suspect T"; the slots of a lookup start it
 *   fail transient|other|data   the lookup in flight failed; "= T" the
 *                            entry now known bad, "= -" none
 *   run TAG                  a picked suspect is decoded and started
 *   pub TAG N [dead]         N publishes for TAG (dead: a dead copy)
 *   conf TAG reply|foreign|dead ack|nack   "= pending|finished|deadcopy|return|retry"
 *                            (reply: to our reply queue, where a refusal may
 *                            pass; foreign: to a queue of the job's choosing)
 *   time T                   the clock (seconds) for next and conf; 0 at first
 *   retryat                  "= T": the earliest retry after now (0: none)
 *   returned TAG             handed back with basic.reject
 *   early TAG                an ack written early (fault injection)
 *   acks                     "= MULTIPLE | SINGLE..": what to ack (0: none)
 *   clear                    the broker is lost; "= COUNT"
 *   wants                    "= yes|no": take more deliveries?
 *   count STATE N            entries in STATE (susp wait look pub done settled)
 *
 * After every step the per-state counts must agree with the entries. */
#include "ledger.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ledger_case {
    const char *name;
    const char *steps[48];
};

static const struct ledger_case cases[] = {
    {"a batch, confirmed in order, one multiple ack",
     {"add 1", "add 2", "add 3", "next = lookup 1 2 3", "pub 1 1", "pub 2 1", "pub 3 1",
      "conf 1 reply ack = finished", "conf 2 reply ack = finished", "conf 3 reply ack = finished",
      "acks = 3 |", "count wait 0", "wants = yes"}},
    {"the batch limit splits a backlog",
     {"add 1", "add 2", "add 3", "next 2 = lookup 1 2", "next 2 = idle", "pub 1 1", "pub 2 1",
      "next 2 = lookup 3"}},
    {"confirms out of order: later ones acked singly behind the head",
     {"add 1", "add 2", "add 3", "next = lookup 1 2 3", "pub 1 1", "pub 2 1", "pub 3 1",
      "conf 3 reply ack = finished", "conf 2 reply ack = finished", "acks = 0 | 2 3",
      "count settled 2", "conf 1 reply ack = finished", "acks = 1 |", "count settled 0"}},
    {"a poison job needs both its publishes",
     {"add 1", "pub 1 2 dead", "conf 1 reply ack = pending", "acks = 0 |",
      "conf 1 dead ack = finished", "acks = 1 |"}},
    {"a refused reply is answered again after a wait; the others go on meanwhile",
     {"add 1",
      "add 2",
      "next = lookup 1 2",
      "pub 1 1",
      "pub 2 1",
      "time 10",
      "conf 1 reply nack = retry",
      "count wait 1",
      "retryat = 10.25",
      "conf 2 reply ack = finished",
      "acks = 0 | 2",
      "add 3",
      "next = lookup 3",
      "pub 3 1",
      "time 10.2",
      "next = idle",
      "time 10.25",
      "retryat = 0",
      "next = lookup 1",
      "pub 1 1",
      "conf 1 reply ack = finished",
      "conf 3 reply ack = finished",
      "acks = 3 |"}},
    {"the waits double: 0.25, 0.5, 1, 2, 4, 8 s",
     {"add 1", "next = lookup 1", "pub 1 1", "conf 1 reply nack = retry", "time 0.24",
      "next = idle", "time 0.25", "next = lookup 1", "pub 1 1", "conf 1 reply nack = retry",
      "retryat = 0.75", "time 0.74", "next = idle", "time 0.75", "next = lookup 1", "pub 1 1",
      "conf 1 reply nack = retry", "retryat = 1.75"}},
    {"a reply to a queue of the job's choosing refused: a dead copy at once",
     {"add 1", "next = lookup 1", "pub 1 1", "conf 1 foreign nack = deadcopy", "next = idle",
      "retryat = 0", "pub 1 1 dead", "conf 1 dead ack = finished", "acks = 1 |"}},
    {"a refused foreign reply makes no job behind it wait for a single ack",
     {"add 1", "add 2", "add 3", "next = lookup 1 2 3", "pub 1 1", "pub 2 1", "pub 3 1",
      "conf 1 foreign nack = deadcopy", "conf 2 reply ack = finished",
      "conf 3 reply ack = finished", "pub 1 1 dead", "acks = 0 | 2 3", "conf 1 dead ack = finished",
      "acks = 1 |"}},
    {"a foreign reply refused, and its dead copy too: handed back at once",
     {"add 1", "next = lookup 1", "pub 1 1", "conf 1 foreign nack = deadcopy", "pub 1 1 dead",
      "conf 1 dead nack = return", "returned 1", "acks = 0 |"}},
    {"refused seven times: a dead copy, then it finishes",
     {"add 1",        "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = retry",
      "time 0.25",    "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = retry",
      "time 0.75",    "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = retry",
      "time 1.75",    "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = retry",
      "time 3.75",    "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = retry",
      "time 7.75",    "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = retry",
      "time 15.75",   "next = lookup 1",
      "pub 1 1",      "conf 1 reply nack = deadcopy",
      "pub 1 1 dead", "conf 1 dead ack = finished",
      "acks = 1 |"}},
    {"refused seven times, and its dead copy too: handed back",
     {"add 1",        "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = retry",
      "time 0.25",    "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = retry",
      "time 0.75",    "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = retry",
      "time 1.75",    "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = retry",
      "time 3.75",    "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = retry",
      "time 7.75",    "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = retry",
      "time 15.75",   "next = lookup 1",           "pub 1 1",    "conf 1 reply nack = deadcopy",
      "pub 1 1 dead", "conf 1 dead nack = return", "returned 1", "acks = 0 |"}},
    {"a suspect whose reply is refused waits for its retry, alone",
     {"add 1 r", "add 2 r", "next 16 0 = suspect 1", "run 1", "next = lookup 1", "pub 1 1",
      "conf 1 reply nack = retry", "next = idle", "wants = no", "time 0.25", "next = lookup 1",
      "pub 1 1", "conf 1 reply ack = finished", "acks = 1 |", "next 16 0 = suspect 2"}},
    {"a job waiting for a retry moves to the back: the others are acked and leave",
     {"add 1",
      "add 2",
      "add 3",
      "next = lookup 1 2 3",
      "pub 1 1",
      "pub 2 1",
      "pub 3 1",
      "conf 1 reply nack = retry",
      "conf 2 reply ack = finished",
      "conf 3 reply ack = finished",
      "acks = 0 | 2 3",
      "count settled 0",
      "count wait 1",
      "add 4",
      "next = lookup 4",
      "pub 4 1",
      "conf 4 reply ack = finished",
      "acks = 0 | 4",
      "time 0.25",
      "next = lookup 1",
      "pub 1 1",
      "conf 1 reply ack = finished",
      "acks = 1 |",
      "count done 0"}},
    {"moved back, then finished: one multiple ack covers it and those ahead",
     {"add 1", "add 2", "add 3", "next = lookup 1 2 3", "pub 1 1", "pub 2 1", "pub 3 1",
      "conf 1 reply nack = retry", "acks = 0 |", "conf 2 reply ack = finished",
      "conf 3 reply ack = finished", "time 0.25", "next = lookup 1", "pub 1 1",
      "conf 1 reply ack = finished", "acks = 3 |"}},
    {"moved back and finished behind the head, below the multiple ack: not acked twice",
     {"add 1",
      "add 2",
      "add 3",
      "next = lookup 1 2 3",
      "pub 1 1",
      "pub 2 1",
      "pub 3 1",
      "conf 1 reply nack = retry",
      "acks = 0 |",
      "add 4",
      "time 0.25",
      "next = lookup 1 4",
      "pub 1 1",
      "pub 4 1",
      "conf 2 reply ack = finished",
      "conf 1 reply ack = finished",
      "acks = 2 |",
      "count settled 1",
      "conf 3 reply ack = finished",
      "acks = 3 |",
      "conf 4 reply ack = finished",
      "acks = 4 |"}},
    {"a full ledger makes room as the job waiting for a retry moves back",
     {"add 1", "add 2", "add 3", "add 4", "add 5 = full", "next = lookup 1 2 3 4", "pub 1 1",
      "conf 1 reply nack = retry", "pub 2 1", "conf 2 reply ack = finished", "acks = 0 | 2",
      "add 5", "add 6 = full"}},
    {"a refused reply waiting is dropped with the broker",
     {"add 1", "next = lookup 1", "pub 1 1", "conf 1 reply nack = retry", "clear = 1",
      "retryat = 0", "next = idle"}},
    {"a poison job whose error reply is refused still ends on its dead copy",
     {"add 1", "pub 1 2 dead", "conf 1 reply nack = pending", "conf 1 dead ack = finished",
      "acks = 1 |"}},
    {"one lookup at a time",
     {"add 1", "next = lookup 1", "add 2", "next = idle", "fail transient = -",
      "next = lookup 1 2"}},
    {"a lost broker mid-batch drops everything, a stale lookup finds nothing",
     {"add 1", "add 2", "add 3", "next 2 = lookup 1 2", "pub 1 1", "clear = 3", "count look 0",
      "next = idle", "add 1", "next = lookup 1"}},
    {"suspects stop deliveries and wait for the rest to be acked",
     {"add 1",
      "add 2",
      "next = lookup 1 2",
      "add 3 r",
      "wants = no",
      "next = idle",
      "pub 1 1",
      "pub 2 1",
      "conf 1 reply ack = finished",
      "next = idle",
      "conf 2 reply ack = finished",
      "next = idle",
      "acks = 2 |",
      "next 10 0 = suspect 3",
      "run 3",
      "wants = no",
      "next = lookup 3",
      "pub 3 1",
      "next = idle",
      "conf 3 reply ack = finished",
      "wants = yes",
      "acks = 3 |"}},
    {"suspects one at a time, picked at random",
     {"add 1 r", "add 2 r", "add 3 r", "next 10 0.99 = suspect 3", "run 3", "next = lookup 3",
      "add 4", "pub 3 1", "next = idle", "conf 3 reply ack = finished", "next 10 0.99 = lookup 4",
      "pub 4 1", "conf 4 reply ack = finished", "next 10 0 = idle", "acks = 0 | 3 4",
      "next 10 0 = suspect 1", "run 1", "next = lookup 1"}},
    {"a backlog after a reconnect: once the suspect finished, batches are whole again",
     {"add 1 r",
      "next 10 0 = suspect 1",
      "run 1",
      "next = lookup 1",
      "pub 1 1",
      "conf 1 reply ack = finished",
      "acks = 1 |",
      "wants = yes",
      "add 2",
      "add 3",
      "add 4",
      "next = lookup 2 3 4",
      "pub 2 1",
      "pub 3 1",
      "pub 4 1",
      "conf 4 reply ack = finished",
      "conf 3 reply ack = finished",
      "conf 2 reply ack = finished",
      "acks = 4 |",
      "add 5",
      "add 6",
      "next = lookup 5 6"}},
    {"a finished suspect no longer holds the others, even unacked",
     {"add 1 r", "next 10 0 = suspect 1", "run 1", "next = lookup 1", "pub 1 1",
      "conf 1 reply ack = finished", "wants = yes", "add 2", "add 3", "next = lookup 2 3"}},
    {"a suspect that is poison runs alone too",
     {"add 1 r", "add 2 r", "next 10 0 = suspect 1", "run 1", "pub 1 2 dead", "next = idle",
      "wants = no", "conf 1 reply ack = pending", "conf 1 dead ack = finished", "next = idle",
      "acks = 1 |", "next 10 0 = suspect 2"}},
    {"suspects arriving during a backlog wait for the backlog",
     {"add 1", "add 2", "add 3 r", "add 4", "next = lookup 1 2 4", "wants = no", "pub 1 1",
      "pub 2 1", "pub 4 1", "conf 4 reply ack = finished", "acks = 0 | 4",
      "conf 1 reply ack = finished", "conf 2 reply ack = finished", "next = idle", "acks = 2 |",
      "next 10 0.5 = suspect 3"}},
    {"a data error isolates the batch; the bad one alone is condemned",
     {"add 1", "add 2", "add 3", "next = lookup 1 2 3", "fail data = -", "add 4",
      "next 10 0.9 = lookup 4", "pub 4 1", "next 10 0.1 = lookup 1", "fail data = 1",
      "pub 1 2 dead", "next = lookup 2", "pub 2 1", "next = lookup 3", "fail data = 3"}},
    {"bisection corners a bad row among four",
     {"add 1", "add 2", "add 3", "add 4", "next = lookup 1 2 3 4", "fail data = -",
      "next = lookup 1 2", "pub 1 1", "pub 2 1", "next = lookup 3 4", "fail data = -",
      "next = lookup 3", "fail data = 3", "pub 3 2 dead", "next = lookup 4", "pub 4 1",
      "count wait 0"}},
    {"a lone job refused for its data is condemned at once",
     {"add 1", "next = lookup 1", "fail data = 1", "count wait 1"}},
    {"isolated jobs and batches take turns",
     {"add 1", "add 2", "next = lookup 1 2", "fail other = -", "next = lookup 1 2",
      "fail other = -", "next = lookup 1 2", "fail other = -", "add 3", "add 4",
      "next 10 0.7 = lookup 3 4", "pub 3 1", "pub 4 1", "next 10 0.2 = lookup 1", "fail other = -",
      "next 10 0.2 = lookup 1", "fail other = -", "count wait 2"}},
    {"other errors isolate only when they repeat",
     {"add 1", "add 2", "next = lookup 1 2", "fail other = -", "next = lookup 1 2",
      "fail other = -", "next = lookup 1 2", "fail other = -", "next = lookup 1", "fail other = -",
      "next = lookup 1", "fail data = 1"}},
    {"transient failures never isolate or condemn",
     {"add 1", "next = lookup 1", "fail transient = -", "next = lookup 1", "fail transient = -",
      "next = lookup 1", "fail transient = -", "next = lookup 1", "fail transient = -",
      "next = lookup 1"}},
    {"an early ack is not acked again",
     {"add 1", "add 2", "next = lookup 1 2", "early 1", "early 2", "pub 1 1", "pub 2 1",
      "conf 1 reply ack = finished", "conf 2 reply ack = finished", "acks = 0 |"}},
    {"shutdown with jobs in every state: nothing acked that is not done",
     {"add 1", "add 2", "add 3", "add 4 r", "next 2 = lookup 1 2", "pub 1 1", "pub 2 1",
      "conf 2 reply ack = finished", "acks = 0 | 2", "count pub 1", "count wait 1", "count susp 1",
      "count settled 1", "clear = 4", "count settled 0", "wants = yes"}},
    {"a full ring refuses a delivery", {"add 1", "add 2", "add 3", "add 4", "add 5 = full"}},
    {"the ring wraps",
     {"add 1", "add 2", "add 3", "next = lookup 1 2 3", "pub 1 1", "pub 2 1", "pub 3 1",
      "conf 1 reply ack = finished", "conf 2 reply ack = finished", "conf 3 reply ack = finished",
      "acks = 3 |", "add 4", "add 5", "add 6", "add 7", "next = lookup 4 5 6 7", "pub 4 1",
      "conf 4 reply ack = finished", "acks = 4 |"}},
};

#define CAP 4

static int slot_of(const struct ledger *l, uint64_t tag)
{
    for (unsigned i = 0; i < ledger_count(l); i++)
        if (ledger_entry(l, ledger_slot(l, i))->tag == tag)
            return (int)ledger_slot(l, i);
    return -1;
}

static enum ledger_state state_named(const char *name)
{
    static const char *const names[] = {"susp", "wait", "look", "pub", "done", "settled"};

    for (int i = 0; i < LEDGER_N_STATES; i++)
        if (strcmp(name, names[i]) == 0)
            return (enum ledger_state)i;
    ck_abort_msg("unknown state %s", name);
    return LEDGER_N_STATES;
}

/* The script's clock ("time T"), reset by each case. */
static double now;

/* Runs one step; fills got with what it answered (compared with the text
 * after " = "). */
static void run_step(struct ledger *l, const char *step, char *got, size_t gotlen)
{
    char op[16] = "", a[16] = "", b[16] = "", c[16] = "";
    int slot;

    got[0] = '\0';
    sscanf(step, "%15s %15s %15s %15s", op, a, b, c);
    if (strcmp(c, "=") == 0)
        c[0] = '\0';
    if (strcmp(b, "=") == 0)
        b[0] = c[0] = '\0';
    if (strcmp(a, "=") == 0)
        a[0] = b[0] = c[0] = '\0';
    if (strcmp(op, "add") == 0) {
        if (ledger_add(l, strtoull(a, NULL, 10), strcmp(b, "r") == 0) < 0)
            snprintf(got, gotlen, "full");
        return;
    }
    if (strcmp(op, "next") == 0) {
        unsigned slots[16], n;
        unsigned batch = a[0] ? (unsigned)atoi(a) : 16;
        enum ledger_action action = ledger_next(l, now, batch, b[0] ? atof(b) : 0.0, slots, &n);
        size_t len;
        snprintf(got, gotlen, "%s",
                 action == LEDGER_IDLE      ? "idle"
                 : action == LEDGER_LOOK_UP ? "lookup"
                                            : "suspect");
        for (unsigned i = 0; i < n; i++) {
            len = strlen(got);
            snprintf(got + len, gotlen - len, " %llu",
                     (unsigned long long)ledger_entry(l, slots[i])->tag);
            if (action == LEDGER_LOOK_UP)
                ledger_lookup_started(l, slots[i]);
        }
        return;
    }
    if (strcmp(op, "fail") == 0) {
        enum ledger_failure why = strcmp(a, "data") == 0    ? LEDGER_FAIL_DATA
                                  : strcmp(a, "other") == 0 ? LEDGER_FAIL_OTHER
                                                            : LEDGER_FAIL_TRANSIENT;
        slot = ledger_lookup_failed(l, why);
        if (slot < 0)
            snprintf(got, gotlen, "-");
        else
            snprintf(got, gotlen, "%llu", (unsigned long long)ledger_entry(l, (unsigned)slot)->tag);
        return;
    }
    if (strcmp(op, "acks") == 0) {
        uint64_t multiple, singles[CAP];
        unsigned n;
        size_t len;
        ledger_take_acks(l, &multiple, singles, &n);
        snprintf(got, gotlen, "%llu |", (unsigned long long)multiple);
        for (unsigned i = 0; i < n; i++) {
            len = strlen(got);
            snprintf(got + len, gotlen - len, " %llu", (unsigned long long)singles[i]);
        }
        return;
    }
    if (strcmp(op, "clear") == 0) {
        snprintf(got, gotlen, "%u", ledger_clear(l));
        return;
    }
    if (strcmp(op, "wants") == 0) {
        snprintf(got, gotlen, "%s", ledger_wants_deliveries(l) ? "yes" : "no");
        return;
    }
    if (strcmp(op, "time") == 0) {
        now = atof(a);
        return;
    }
    if (strcmp(op, "retryat") == 0) {
        snprintf(got, gotlen, "%g", ledger_next_retry(l, now));
        return;
    }
    if (strcmp(op, "count") == 0) {
        unsigned n = ledger_in_state(l, state_named(a));
        ck_assert_msg(n == (unsigned)atoi(b), "'%s': %u entries", step, n);
        return;
    }
    slot = slot_of(l, strtoull(a, NULL, 10));
    ck_assert_msg(slot >= 0, "'%s': no entry with that tag", step);
    if (strcmp(op, "run") == 0) {
        ledger_suspect_started(l, (unsigned)slot);
    } else if (strcmp(op, "pub") == 0) {
        ledger_published(l, (unsigned)slot, (unsigned)atoi(b), strcmp(c, "dead") == 0);
    } else if (strcmp(op, "conf") == 0) {
        static const char *const results[] = {"pending", "finished", "deadcopy", "return", "retry"};
        enum ledger_confirm_result r =
            ledger_confirmed(l, (unsigned)slot, strcmp(b, "dead") == 0, strcmp(c, "nack") == 0,
                             strcmp(b, "reply") == 0 /* may retry */, now);
        snprintf(got, gotlen, "%s", results[r]);
    } else if (strcmp(op, "returned") == 0) {
        ledger_returned(l, (unsigned)slot);
    } else if (strcmp(op, "early") == 0) {
        ledger_mark_acked(l, (unsigned)slot);
    } else {
        ck_abort_msg("unknown step '%s'", step);
    }
}

START_TEST(test_ledger_table)
{
    const struct ledger_case *t = &cases[_i];
    struct ledger l;

    ck_assert(ledger_init(&l, CAP));
    now = 0;
    for (size_t i = 0; i < sizeof t->steps / sizeof t->steps[0] && t->steps[i]; i++) {
        const char *step = t->steps[i];
        const char *expect = strstr(step, " = ");
        char got[128];
        run_step(&l, step, got, sizeof got);
        if (expect != NULL)
            ck_assert_msg(strcmp(got, expect + 3) == 0, "%s, step '%s': got '%s'", t->name, step,
                          got);
        else
            ck_assert_msg(got[0] == '\0', "%s, step '%s': unexpected '%s'", t->name, step, got);
        ck_assert_msg(ledger_consistent(&l), "%s, step '%s': counts drifted", t->name, step);
    }
    ledger_free(&l);
}
END_TEST

Suite *ledger_suite(void)
{
    Suite *s = suite_create("ledger");
    TCase *tc = tcase_create("event orders");

    tcase_add_loop_test(tc, test_ledger_table, 0, sizeof cases / sizeof cases[0]);
    suite_add_tcase(s, tc);
    return s;
}
