#!/usr/bin/env bash
# The system end to end, in about a minute: local RabbitMQ and PostgreSQL
# in a scratch dir (loopback only), the schema and sample users, two
# workers, sample jobs (and one poison job), their replies, the dead
# queue, a signed and an unsigned job to a worker that checks tokens, a
# quick load.  Ctrl-C or the end stops everything it started and
# deletes the servers' data; the logs stay (the last line says where).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/deps.sh
deps_ensure $GREET_BUILD_PACKAGES $GREET_SERVER_PACKAGES || exit 1
make -s all || exit 1
. scripts/lib/servers.sh

# Project-local scratch dir, unless the postgres user cannot reach it.
RUN_DIR="$ROOT/.run/demo"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$ROOT"; then
    RUN_DIR=$(mktemp -d /tmp/greet-demo.XXXXXX)
    chmod 755 "$RUN_DIR"
fi
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
WORKERS=()

stop_all() {
    local pid
    trap - EXIT INT TERM
    echo
    echo "== stopping workers and servers"
    for pid in "${WORKERS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${WORKERS[@]}"; do wait "$pid" 2>/dev/null; done
    for pid in "${WORKERS[@]}"; do
        grep -h 'event=worker.stopped' "$RUN_DIR/worker-$pid.log" 2>/dev/null | sed 's/^/   /'
    done
    servers_stop
    rm -rf "$RUN_DIR/servers"
    echo "   servers stopped, their data deleted; logs kept in $RUN_DIR (rm -rf $RUN_DIR)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

step "starting RabbitMQ and PostgreSQL on loopback (scratch dir $RUN_DIR)"
servers_start "$RUN_DIR/servers" || exit 1
servers_load_schema && servers_load_samples || exit 1
echo "   AMQP_URL=amqp://guest:***@127.0.0.1:$RABBIT_PORT/"
echo "   DATABASE_URL=$DATABASE_URL"
export GREET_STATS_INTERVAL=0

step "starting two workers"
# Each in a session of its own: Ctrl-C reaches this script only, which
# then sends each worker one SIGTERM (a second signal means "exit now").
for n in 1 2; do
    setsid bin/greet-worker >"$RUN_DIR/worker.tmp" 2>&1 &
    pid=$!
    WORKERS+=("$pid")
    sleep 0.2
    mv "$RUN_DIR/worker.tmp" "$RUN_DIR/worker-$pid.log" 2>/dev/null
    echo "   worker $n: pid $pid, log $RUN_DIR/worker-$pid.log"
done
sleep 0.5

step "enqueueing examples/jobs.jsonl (15 jobs) and one poison job"
bin/greet-producer --file examples/jobs.jsonl
echo '{"job_id":"demo-poison","user_id":"not a number"}' | bin/greet-producer --file - --raw

step "the replies on greet.replies (greet-replies prints one JSON line each)"
bin/greet-replies --count 16 --timeout 30

step "the dead-letter queue holds the poison job, with the reason in headers"
bin/greet-replies --reply-queue greet.dead --envelope --count 1 --timeout 10

step "a preference change is seen by the next job"
psql -X -q -d greet -c "UPDATE user_preferences SET language = 'ja', formality = 'formal' WHERE user_id = 1"
bin/greet-producer --user-id 1 --job-id demo-after-change --wait

step "authenticated jobs: a third worker, GREET_AUTH=jwt, on a jobs queue of its own"
# Its own queue: the two workers above would answer an unsigned job.
head -c 32 /dev/urandom >"$RUN_DIR/jwt.key"
GREET_JOBS_QUEUE=greet.signed GREET_AUTH=jwt GREET_JWT_KEY_FILE="$RUN_DIR/jwt.key" \
    setsid bin/greet-worker >"$RUN_DIR/worker.tmp" 2>&1 &
pid=$!
WORKERS+=("$pid")
sleep 0.5
mv "$RUN_DIR/worker.tmp" "$RUN_DIR/worker-$pid.log" 2>/dev/null
echo "   worker 3: pid $pid, key $RUN_DIR/jwt.key (32 random bytes), queue greet.signed"
echo "   a job signed by greet-producer --jwt-key:"
GREET_JOBS_QUEUE=greet.signed bin/greet-producer --user-id 3 --job-id demo-signed \
    --jwt-key "$RUN_DIR/jwt.key" --wait 2>/dev/null | sed 's/^/   /'
echo "   the same job unsigned:"
GREET_JOBS_QUEUE=greet.signed bin/greet-producer --user-id 3 --job-id demo-unsigned --wait \
    2>/dev/null | sed 's/^/   /'

step "a quick load: 20000 jobs through both workers, every reply awaited"
bin/greet-producer --count 20000 --users 12 --wait --timeout 120 >/dev/null
