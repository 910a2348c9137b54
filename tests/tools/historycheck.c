/* historycheck - judges one fault scenario's whole history.
 *
 *   historycheck NAME SENT POISON CRASH REPLIES DEAD JOBS_LEFT MAX_DUPLICATES [UNREPLIABLE]
 *
 * SENT, POISON, CRASH: files of message_ids, one per line -- every job
 * sent; those that are poison (must end dead with x-greet-error and get an
 * error reply); those that crash workers (must end dead by the delivery
 * limit).  A line of POISON may name the error code after the id
 * ("ID CODE"): then the dead copy's x-greet-error and the error reply's
 * "error" must be that code.  UNREPLIABLE (optional): poison jobs whose
 * reply cannot be delivered at all (their reply queue refuses it): they
 * must end dead like any poison job, and no reply is expected for them.
 * REPLIES, DEAD: what greet-replies --envelope read from the reply and
 * dead-letter queues.  JOBS_LEFT: the jobs queue's depth at the end.
 * MAX_DUPLICATES: -1 for "any", else the most allowed.
 *
 * Prints one line -- jobs, replies, lost, duplicates, dead, innocents
 * dead -- and exits 0 only if the contract's guarantees held: every job
 * answered, duplicates only byte-identical, the dead queue holding exactly
 * the poison and crashing jobs, the jobs queue empty. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A file of ids as a set (object keys).  "ID CODE" lines map the id to
 * the code (a string); bare ids map to true. */
static json_t *read_ids(const char *path)
{
    FILE *in = fopen(path, "r");
    json_t *set = json_object();
    char line[1024];

    if (in == NULL) {
        perror(path);
        exit(2);
    }
    while (fgets(line, sizeof line, in)) {
        char *code;
        line[strcspn(line, "\r\n")] = '\0';
        code = line + strcspn(line, " \t");
        if (*code != '\0') {
            *code++ = '\0';
            code += strspn(code, " \t");
        }
        if (line[0])
            json_object_set_new(set, line, *code ? json_string(code) : json_true());
    }
    fclose(in);
    return set;
}

/* The id of an envelope: its message_id, else its body's job_id. */
static const char *envelope_id(json_t *env)
{
    const char *id = json_string_value(json_object_get(env, "message_id"));
    json_t *body = json_object_get(env, "body");

    if (id == NULL && json_is_object(body))
        id = json_string_value(json_object_get(body, "job_id"));
    return id;
}

/* The code a poison job must carry, or NULL when any will do. */
static const char *expected_code(json_t *poison, const char *id)
{
    return json_string_value(json_object_get(poison, id));
}

int main(int argc, char **argv)
{
    json_t *sent, *poison, *crash, *unrepliable, *first_body, *dead_ids;
    FILE *in;
    char *line = NULL;
    size_t cap = 0, replies = 0, duplicates = 0, mismatched = 0, lost = 0, dead = 0;
    size_t innocents_dead = 0, poison_dead = 0, poison_unheaded = 0, crash_dead = 0,
           poison_unanswered = 0;
    long jobs_left, max_duplicates;
    const char *key;
    json_t *value;
    bool pass;

    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: historycheck NAME SENT POISON CRASH REPLIES DEAD JOBS_LEFT "
                        "MAX_DUPLICATES [UNREPLIABLE]\n");
        return 2;
    }
    sent = read_ids(argv[2]);
    poison = read_ids(argv[3]);
    crash = read_ids(argv[4]);
    unrepliable = argc == 10 ? read_ids(argv[9]) : json_object();
    jobs_left = strtol(argv[7], NULL, 10);
    max_duplicates = strtol(argv[8], NULL, 10);
    first_body = json_object();
    dead_ids = json_object();

    in = fopen(argv[5], "r");
    if (in == NULL) {
        perror(argv[5]);
        return 2;
    }
    while (getline(&line, &cap, in) > 0) {
        json_t *env = json_loads(line, 0, NULL);
        json_t *body = json_object_get(env, "body");
        const char *id = env ? envelope_id(env) : NULL;
        json_t *seen;

        if (id == NULL || json_object_get(sent, id) == NULL) {
            json_decref(env); /* not from this scenario */
            continue;
        }
        replies++;
        seen = json_object_get(first_body, id);
        if (seen == NULL) {
            json_object_set(first_body, id, body);
        } else {
            duplicates++;
            if (!json_equal(seen, body)) {
                mismatched++;
                fprintf(stderr, "historycheck: job %s answered twice with different bodies\n", id);
            }
        }
        json_decref(env);
    }
    fclose(in);

    in = fopen(argv[6], "r");
    if (in == NULL) {
        perror(argv[6]);
        return 2;
    }
    while (getline(&line, &cap, in) > 0) {
        json_t *env = json_loads(line, 0, NULL);
        const char *id = env ? envelope_id(env) : NULL;
        json_t *headers = json_object_get(env, "headers");

        if (id == NULL || json_object_get(sent, id) == NULL || json_object_get(dead_ids, id)) {
            json_decref(env);
            continue;
        }
        json_object_set_new(dead_ids, id, json_true());
        dead++;
        if (json_object_get(poison, id)) {
            const char *got = json_string_value(json_object_get(headers, "x-greet-error"));
            const char *want = expected_code(poison, id);
            poison_dead++;
            if (got == NULL || (want != NULL && strcmp(got, want) != 0)) {
                poison_unheaded++;
                fprintf(stderr, "historycheck: poison job %s dead with x-greet-error %s, not %s\n",
                        id, got ? got : "(none)", want ? want : "(any code)");
            }
        } else if (json_object_get(crash, id)) {
            crash_dead++;
        } else {
            innocents_dead++;
            fprintf(stderr, "historycheck: innocent job %s was dead-lettered\n", id);
        }
        json_decref(env);
    }
    fclose(in);
    free(line);

    json_object_foreach(sent, key, value)
    {
        json_t *body = json_object_get(first_body, key);

        /* A job is lost when it ends neither answered nor dead as it
         * should: crashing jobs and poison jobs whose reply cannot be
         * delivered are judged by the dead queue alone. */
        if (json_object_get(crash, key) == NULL && body == NULL &&
            !(json_object_get(unrepliable, key) && json_object_get(dead_ids, key))) {
            if (lost++ < 10)
                fprintf(stderr, "historycheck: job %s got no reply\n", key);
        }
        if (json_object_get(poison, key) && json_object_get(unrepliable, key) == NULL) {
            const char *status = json_string_value(json_object_get(body, "status"));
            const char *got = json_string_value(json_object_get(body, "error"));
            const char *want = expected_code(poison, key);
            if (status == NULL || strcmp(status, "error") != 0 ||
                (want != NULL && (got == NULL || strcmp(got, want) != 0))) {
                if (poison_unanswered++ < 10)
                    fprintf(stderr, "historycheck: poison job %s got no error reply%s%s\n", key,
                            want ? " with error " : "", want ? want : "");
            }
        }
    }

    pass = lost == 0 && mismatched == 0 && innocents_dead == 0 && poison_unheaded == 0 &&
           poison_dead == json_object_size(poison) && crash_dead == json_object_size(crash) &&
           poison_unanswered == 0 && jobs_left == 0 &&
           (max_duplicates < 0 || duplicates <= (size_t)max_duplicates);
    printf("scenario %s: jobs %zu, replies %zu, lost %zu, duplicates %zu (differing %zu), dead %zu "
           "(poison %zu/%zu, crashing %zu/%zu), innocents dead %zu, poison without their error "
           "reply %zu, jobs left %ld: %s\n",
           argv[1], json_object_size(sent), replies, lost, duplicates, mismatched, dead,
           poison_dead, json_object_size(poison), crash_dead, json_object_size(crash),
           innocents_dead, poison_unanswered, jobs_left, pass ? "PASS" : "FAIL");
    json_decref(sent);
    json_decref(poison);
    json_decref(crash);
    json_decref(unrepliable);
    json_decref(first_body);
    json_decref(dead_ids);
    return pass ? 0 : 1;
}
