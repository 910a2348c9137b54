#!/bin/sh
# greet-users.sh - the broker users of a least-privilege deployment and what
# each may do, set through RabbitMQ's management HTTP API.  Idempotent: run
# it again to change a password or after a change of queue names.
#
#   RABBITMQ_API=http://127.0.0.1:15672 RABBITMQ_API_USER=admin \
#   RABBITMQ_API_PASSWORD_FILE=/run/secrets/rabbitmq-admin \
#   GREET_WORKER_AMQP_PASSWORD_FILE=... deploy/rabbitmq/greet-users.sh
#
# Each password comes from VAR or from the file named by VAR_FILE; a user
# whose password is not given is left alone.
#
#   user              password from                  may
#   greet-admin       GREET_ADMIN_AMQP_PASSWORD      declare the three queues; greet-admin status,
#                                                    dead list|replay|purge
#   greet-worker      GREET_WORKER_AMQP_PASSWORD     consume the jobs queue; publish replies and
#                                                    dead copies (default exchange)
#   greet-producer    GREET_PRODUCER_AMQP_PASSWORD   publish jobs (default exchange); declare and
#                                                    read its own private reply queues (amq.gen-*)
#   greet-subscriber  GREET_SUBSCRIBER_AMQP_PASSWORD read the reply queue
#
# None but greet-admin may declare, delete or purge a queue of the topology,
# so the topology is declared first, by `greet-admin declare` as greet-admin.
# What RabbitMQ cannot split (README, "Least privilege"): publishing is
# checked on the exchange, so whoever may publish through the default
# exchange may address any queue; purging is reading, so the worker may
# purge the jobs queue it consumes.
set -eu

GREET_VHOST=${GREET_VHOST:-/}
GREET_JOBS_QUEUE=${GREET_JOBS_QUEUE:-greet.jobs}
GREET_REPLY_QUEUE=${GREET_REPLY_QUEUE:-greet.replies}
GREET_DEAD_QUEUE=${GREET_DEAD_QUEUE:-greet.dead}

die() {
    echo "greet-users: $*" >&2
    exit 1
}

# secret VAR: the value of VAR, or of the file VAR_FILE names (one line).
secret() {
    eval "value=\${$1:-} file=\${$1_FILE:-}"
    if [ -n "$value" ] && [ -n "$file" ]; then
        die "$1 and $1_FILE are both set; set one"
    fi
    if [ -n "$file" ]; then
        [ -r "$file" ] || die "$1_FILE: cannot read $file"
        value=$(head -n 1 "$file")
        [ -n "$value" ] || die "$1_FILE: $file is empty"
    fi
    printf '%s' "$value"
}

# esc NAME: NAME with every character a regular expression gives a
# meaning escaped (RabbitMQ's are PCRE); rx NAME: that, anchored.
esc() {
    printf '%s' "$1" | sed 's/[][\.^$*+?(){}|\\]/\\&/g'
}
rx() {
    printf '^%s$' "$(esc "$1")"
}

# json STRING: STRING as a JSON string.
json() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

api_user=${RABBITMQ_API_USER:-}
api_password=$(secret RABBITMQ_API_PASSWORD)
[ -n "${RABBITMQ_API:-}" ] || die "RABBITMQ_API is not set (the management API, e.g. http://127.0.0.1:15672)"
[ -n "$api_user" ] || die "RABBITMQ_API_USER is not set (an administrator of the broker)"
[ -n "$api_password" ] || die "RABBITMQ_API_PASSWORD (or RABBITMQ_API_PASSWORD_FILE) is not set"
vhost=$(printf '%s' "$GREET_VHOST" | sed 's|%|%25|g; s|/|%2F|g')

# curl reads the API login from a file of its own (mode 0600) and each
# request's body, which holds a user's password, from its standard input:
# neither is on its command line, which any local user can read (ps).
umask 077
curl_config=$(mktemp)
trap 'rm -f "$curl_config"' EXIT
printf 'user = "%s"\n' "$(printf '%s' "$api_user:$api_password" | sed 's/\\/\\\\/g; s/"/\\"/g')" >"$curl_config"

# api METHOD PATH BODY: one call; fails with the broker's answer.  A
# broker that is up but whose management listener is not yet (compose
# starts this once the AMQP port answers) is waited for, a minute at most.
api() {
    out=$(printf '%s' "$3" | curl --silent --show-error --max-time 10 --retry 30 --retry-connrefused \
        --retry-delay 2 --config "$curl_config" \
        --header 'content-type: application/json' --request "$1" --data-binary @- \
        --write-out '\n%{http_code}' "${RABBITMQ_API%/}/api/$2") || die "$1 $2: cannot reach $RABBITMQ_API"
    code=$(printf '%s' "$out" | tail -n 1)
    case $code in
    2??) ;;
    *) die "$1 $2: HTTP $code: $(printf '%s' "$out" | sed '$d')" ;;
    esac
}

# grant USER PASSWORD-VAR CONFIGURE WRITE READ
grant() {
    password=$(secret "$2")
    if [ -z "$password" ]; then
        echo "greet-users: $1 left alone ($2 not set)"
        return 0
    fi
    api PUT "users/$1" "{\"password\":$(json "$password"),\"tags\":\"\"}"
    api PUT "permissions/$vhost/$1" \
        "{\"configure\":$(json "$3"),\"write\":$(json "$4"),\"read\":$(json "$5")}"
    echo "greet-users: $1: configure '$3' write '$4' read '$5'"
}

jobs=$(rx "$GREET_JOBS_QUEUE")
replies=$(rx "$GREET_REPLY_QUEUE")
topology="^($(esc "$GREET_JOBS_QUEUE")|$(esc "$GREET_REPLY_QUEUE")|$(esc "$GREET_DEAD_QUEUE"))\$"
default_exchange='^amq\.default$'
private='^amq\.gen-.*'
nothing='^$'

# The producer's configure permission on amq.gen-* (for its exclusive
# reply queues) also lets it declare durable queues of such names, left
# behind on the broker: a policy deletes any of them unused (no consumer,
# no declare) for 10 minutes.  Priority 0: an operator's own policies come
# first.
api PUT "policies/$vhost/greet-private-queues" \
    '{"pattern":"^amq\\.gen-","apply-to":"queues","priority":0,"definition":{"expires":600000}}'
echo "greet-users: policy greet-private-queues: amq.gen-* queues unused for 10 minutes are deleted"

grant greet-admin GREET_ADMIN_AMQP_PASSWORD "$topology" "$default_exchange" "$topology"
grant greet-worker GREET_WORKER_AMQP_PASSWORD "$nothing" "$default_exchange" "$jobs"
grant greet-producer GREET_PRODUCER_AMQP_PASSWORD "$private" "$default_exchange" "$private"
grant greet-subscriber GREET_SUBSCRIBER_AMQP_PASSWORD "$nothing" "$nothing" "$replies"
