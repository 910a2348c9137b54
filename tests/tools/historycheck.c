/* historycheck - judges one fault scenario's whole history.
 *
 *   historycheck NAME SENT POISON CRASH REPLIES DEAD JOBS_LEFT MAX_DUPLICATES
 *
 * SENT, POISON, CRASH: files of message_ids, one per line -- every job
 * sent; those that are poison (must end dead with x-greet-error and get an
 * error reply); those that crash workers (must end dead by the delivery
 * limit).  REPLIES, DEAD: what greet-replies --envelope read from the
 * reply and dead-letter queues.  JOBS_LEFT: the jobs queue's depth at the
 * end.  MAX_DUPLICATES: -1 for "any", else the most allowed.
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

/* A file of ids as a set (object keys). */
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
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0])
            json_object_set_new(set, line, json_true());
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

int main(int argc, char **argv)
{
    json_t *sent, *poison, *crash, *first_body, *dead_ids;
    FILE *in;
    char *line = NULL;
    size_t cap = 0, replies = 0, duplicates = 0, mismatched = 0, lost = 0, dead = 0;
    size_t innocents_dead = 0, poison_dead = 0, poison_unheaded = 0, crash_dead = 0,
           error_replies = 0;
    long jobs_left, max_duplicates;
    const char *key;
    json_t *value;
    bool pass;

    if (argc != 9) {
        fprintf(
            stderr,
            "usage: historycheck NAME SENT POISON CRASH REPLIES DEAD JOBS_LEFT MAX_DUPLICATES\n");
        return 2;
    }
    sent = read_ids(argv[2]);
    poison = read_ids(argv[3]);
    crash = read_ids(argv[4]);
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
            const char *status = json_string_value(json_object_get(body, "status"));
            if (status != NULL && strcmp(status, "error") == 0)
                error_replies++;
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
            poison_dead++;
            if (json_object_get(headers, "x-greet-error") == NULL)
                poison_unheaded++;
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
        if (json_object_get(crash, key) == NULL && json_object_get(first_body, key) == NULL) {
            if (lost++ < 10)
                fprintf(stderr, "historycheck: job %s got no reply\n", key);
        }
    }

    pass = lost == 0 && mismatched == 0 && innocents_dead == 0 && poison_unheaded == 0 &&
           poison_dead == json_object_size(poison) && crash_dead == json_object_size(crash) &&
           error_replies >= json_object_size(poison) && jobs_left == 0 &&
           (max_duplicates < 0 || duplicates <= (size_t)max_duplicates);
    printf("scenario %s: jobs %zu, replies %zu, lost %zu, duplicates %zu (differing %zu), dead %zu "
           "(poison %zu/%zu, crashing %zu/%zu), innocents dead %zu, jobs left %ld: %s\n",
           argv[1], json_object_size(sent), replies, lost, duplicates, mismatched, dead,
           poison_dead, json_object_size(poison), crash_dead, json_object_size(crash),
           innocents_dead, jobs_left, pass ? "PASS" : "FAIL");
    json_decref(sent);
    json_decref(poison);
    json_decref(crash);
    json_decref(first_body);
    json_decref(dead_ids);
    return pass ? 0 : 1;
}
