#!/usr/bin/env bash
# Authenticated jobs (GREET_AUTH=jwt) against real RabbitMQ and PostgreSQL
# servers started here in a temp dir: settings refused at start; jobs
# signed by greet-producer (single, file, synthetic; HS256 and ES256) and
# by the README's Python producer answered ok; every kind of bad token
# answered unauthorized, with a dead copy saying why, and never looked up;
# a token that expired while its job was held by a worker killed with
# kill -9 is answered ok on redelivery, and one that expired in the queue
# is refused.
#
#     GREET_BIN=bin GREET_TOOLS=build/release/tests tests/auth/run.sh
#     GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/auth/run.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/release/tests}
MINT="$ROOT/tests/auth/mint.py"
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-auth.XXXXXX")
chmod 755 "$WORK" # the servers run as their own users
WORKER_PIDS=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GREET_HEARTBEAT=5 GREET_STATS_INTERVAL=0
unset GREET_JOBS_QUEUE GREET_REPLY_QUEUE GREET_DEAD_QUEUE GREET_AUTH GREET_JWT_KEY_FILE \
    GREET_JWT_ALG GREET_JWT_ISSUER GREET_JWT_AUDIENCE GREET_JWT_LEEWAY

cleanup() {
    stop_pids "${WORKER_PIDS[@]}"
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# starting RabbitMQ and PostgreSQL in $WORK"
check "servers start" servers_start "$WORK/servers" || exit 1
check "schema and sample users load" eval 'servers_load_schema && servers_load_samples' || exit 1

# The keys: an HMAC secret (32 random bytes, as the README makes it), an
# ES256 pair, and a secret nobody configured.
head -c 32 /dev/urandom >"$WORK/hs.key"
head -c 32 /dev/urandom >"$WORK/other.key"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/es.pem" 2>/dev/null
openssl pkey -in "$WORK/es.pem" -pubout -out "$WORK/es.pub" 2>/dev/null
ISS=greet-tests
AUD=greet-workers
JWT_ENV=(GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/hs.key" GREET_JWT_ISSUER=$ISS GREET_JWT_AUDIENCE=$AUD)
SIGN=(--jwt-key "$WORK/hs.key" --jwt-issuer $ISS --jwt-audience $AUD)

PY=/usr/bin/python3 # Debian's, with python3-pika

# produce ARGS...: greet-producer ARGS --wait (job lines, if any, on
# stdin); the replies, sorted.
produce() {
    "$BIN/greet-producer" --wait --timeout 30 "$@" 2>>"$WORK/producer.err" | LC_ALL=C sort
}

# mint KEY-FILE|- HEADER CLAIMS: a token, by tests/auth/mint.py.
mint() {
    "$PY" "$MINT" "$@"
}

# claims SUB [MORE]: the claims greet-producer would write for SUB, the
# suite's issuer and audience, issued at T, valid for 10 minutes; MORE
# (',"k":v...') replaces or adds claims (a JSON object's last key wins
# in jansson, as in libjwt).
claims() {
    echo "{\"sub\":\"$1\",\"iat\":$T,\"nbf\":$T,\"exp\":$((T + 600)),\"iss\":\"$ISS\",\"aud\":\"$AUD\"${2:-}}"
}

# job ID USER_ID TOKEN: a job line.
job() {
    echo "{\"job_id\":\"$1\",\"user_id\":$2,\"token\":\"$3\"}"
}

unauthorized() { # unauthorized JOB_ID DETAIL: the reply expected
    echo "{\"job_id\":\"$1\",\"status\":\"error\",\"error\":\"unauthorized\",\"detail\":\"$2\"}"
}

# dead_copies N: the next N messages of the dead queue, each as
# "job_id|x-greet-error|x-greet-detail|token kept", sorted.
dead_copies() {
    "$BIN/greet-replies" --reply-queue greet.dead --envelope --count "$1" --timeout 20 2>/dev/null |
        jq -r '"\(.body.job_id)|\(.headers["x-greet-error"])|\(.headers["x-greet-detail"])|\(.body | has("token"))"' |
        LC_ALL=C sort
}

# stopped_stat NAME KEY: KEY in the worker.stopped line of NAME's log.
stopped_stat() {
    sed -n "s/.*event=worker.stopped.* $2=\([0-9]*\).*/\1/p" "$WORK/$1.log"
}

stop_worker() { # stop_worker PID: SIGTERM, and wait for it
    kill -TERM "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

depth_is() { # depth_is QUEUE N
    [ "$("$TOOLS/mqtool" depth "$1")" = "$2" ]
}

echo "# settings refused at start (exit 2, naming the setting)"
# start_refused NAME WANT VAR=value...: greet-worker exits 2 at once, its
# stderr saying WANT.
start_refused() {
    local name=$1 want=$2 status
    shift 2
    env "$@" "$BIN/greet-worker" >"$WORK/refused-$name.out" 2>"$WORK/refused-$name.err"
    status=$?
    cat "$WORK/refused-$name.err"
    [ "$status" = 2 ] && grep -qF -- "$want" "$WORK/refused-$name.err"
}
check "GREET_AUTH=jwt without a key file" \
    start_refused no-key "GREET_AUTH=jwt needs GREET_JWT_KEY_FILE (--jwt-key-file)" GREET_AUTH=jwt
check "an unreadable key file" \
    start_refused unreadable "GREET_JWT_KEY_FILE (--jwt-key-file): cannot read '$WORK/none.key'" \
    GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/none.key"
head -c 16 /dev/urandom >"$WORK/short.key"
check "an HS256 secret shorter than 32 bytes" \
    start_refused short "an HS256 secret must be at least 32 bytes, got 16" \
    GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/short.key"
check "a PEM public key as an HS256 secret (the alg confusion's key)" \
    start_refused pem-secret "holds a PEM key, but HS256 takes a shared secret" \
    GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/es.pub"
check "the private key on a worker" \
    start_refused private "holds a private key: a worker takes only the public key" \
    GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/es.pem" GREET_JWT_ALG=ES256
check "an EC key for RS256" start_refused rsa "RS256 takes an RSA key" \
    GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/es.pub" GREET_JWT_ALG=RS256
check "EdDSA, which libjwt 1.10 lacks" \
    start_refused eddsa "GREET_JWT_ALG (--jwt-alg): 'EdDSA': EdDSA is not supported by libjwt 1.10" \
    GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/es.pub" GREET_JWT_ALG=EdDSA
check "a key file without GREET_AUTH=jwt" \
    start_refused auth-none "GREET_JWT_KEY_FILE (--jwt-key-file) is set but GREET_AUTH is none" \
    GREET_JWT_KEY_FILE="$WORK/hs.key"
"$BIN/greet-producer" --user-id 3 --jwt-key "$WORK/es.pub" --jwt-alg ES256 >/dev/null 2>"$WORK/p-pub.err"
check_eq "greet-producer --jwt-key with a public key: exit 2" "$?" 2
check "naming what it needs" grep -q -- "--jwt-key: holds no PEM private key" "$WORK/p-pub.err"
echo '{"job_id":"raw"}' | "$BIN/greet-producer" --file - --raw "${SIGN[@]}" >/dev/null 2>"$WORK/p-raw.err"
check_eq "--raw with --jwt-key: exit 2" "$?" 2
check_eq "and nothing was sent" "$("$TOOLS/mqtool" depth greet.jobs 2>/dev/null || echo 0)" 0

T=$(date +%s)

echo "# HS256: jobs signed by greet-producer are answered"
check "a worker with GREET_AUTH=jwt starts" start_worker w1 "${JWT_ENV[@]}"
W1=$LAST_PID
check "its config line shows the setting" grep -q 'event=config.* GREET_AUTH=jwt' "$WORK/w1.log"
check_eq "a job from flags" "$(produce --user-id 4 --job-id one-1 "${SIGN[@]}")" \
    '{"job_id":"one-1","status":"ok","message":"Bonjour, Jean.","language":"fr"}'
# file-2 brings a good token of its own, file-3 one for another user:
# kept as they are, or file-3 would be answered ok.
check_eq "jobs from a file: signed, or their own token kept" \
    "$(printf '%s\n' '{"job_id":"file-1","user_id":3}' \
        "$(job file-2 4 "$(mint "$WORK/hs.key" '{"alg":"HS256"}' "$(claims 4)")")" \
        "$(job file-3 5 "$(mint "$WORK/hs.key" '{"alg":"HS256"}' "$(claims 4)")")" |
        produce --file - "${SIGN[@]}")" \
    "$(printf '%s\n' '{"job_id":"file-1","status":"ok","message":"Salut, Amélie !","language":"fr"}' \
        '{"job_id":"file-2","status":"ok","message":"Bonjour, Jean.","language":"fr"}' \
        "$(unauthorized file-3 "token for user 4, job for user 5")")"
"$BIN/greet-producer" --count 500 --users 12 --id-prefix synth --wait --timeout 60 "${SIGN[@]}" \
    >"$WORK/synthetic.out" 2>"$WORK/synthetic.err"
check_eq "a synthetic load of 500 jobs over 12 users: every one answered ok" \
    "$? $(jq -r .status "$WORK/synthetic.out" | sort | uniq -c | awk '{print $1, $2}')" "0 500 ok"
check_eq "an unsigned job" "$(produce --user-id 3 --job-id unsigned-1)" \
    "$(unauthorized unsigned-1 "no token")"
check_eq "a signed job without user_id" "$(produce --job-id anon-1 "${SIGN[@]}" 2>/dev/null)" \
    "$(unauthorized anon-1 "a job without user_id cannot be authorized")"
check "greet-producer warned that it could not sign it" \
    grep -q 'warning: a job without a user_id gets no token' "$WORK/producer.err"

# The README's producer in another language, run as written.
awk '/saved as `produce_signed.py`/ { found = 1 }
     found && /^```python$/ { code = 1; next }
     code && /^```$/ { exit }
     code' "$ROOT/README.md" >"$WORK/produce_signed.py"
check "the README has a Python producer that signs" grep -q 'hmac.new' "$WORK/produce_signed.py"
"$TOOLS/mqtool" purge greet.replies >/dev/null
py_job=$(cd "$WORK" && GREET_JWT_KEY_FILE="$WORK/hs.key" GREET_JWT_ISSUER=$ISS GREET_JWT_AUDIENCE=$AUD \
    "$PY" produce_signed.py 3 2>"$WORK/python.err")
check "it publishes a job" test -n "$py_job"
check_eq "the worker answers it ok" \
    "$("$BIN/greet-replies" --count 1 --timeout 20 2>/dev/null)" \
    "{\"job_id\":\"$py_job\",\"status\":\"ok\",\"message\":\"Salut, Amélie !\",\"language\":\"fr\"}"
stop_worker "$W1"
check "the signed jobs were looked up" test "$(stopped_stat w1 lookups)" -gt 0

echo "# bad tokens: an unauthorized reply, a dead copy saying why, never the database"
"$TOOLS/mqtool" purge greet.dead greet.replies >/dev/null
check "a fresh worker starts" start_worker w2 "${JWT_ENV[@]}"
W2=$LAST_PID
T=$(date +%s)
HDR='{"alg":"HS256","typ":"JWT"}'
pad=$(head -c 6200 /dev/zero | tr '\0' x)
nbf_at=$(date -u -d "@$((T + 3600))" +%Y-%m-%dT%H:%M:%SZ)
BAD_LINES=(
    "$(job bad-signature 3 "$(mint "$WORK/other.key" "$HDR" "$(claims 3)")")"
    "$(job bad-alg-none 3 "$(mint - '{"alg":"none"}' "$(claims 3)")")"
    "$(job bad-alg-lower 3 "$(mint "$WORK/hs.key" '{"alg":"hs256"}' "$(claims 3)")")"
    "$(job bad-other-user 3 "$(mint "$WORK/hs.key" "$HDR" "$(claims 7)")")"
    "$(job bad-expired 3 "$(mint "$WORK/hs.key" "$HDR" "$(claims 3 ",\"exp\":$((T - 100))")")")"
    "$(job bad-not-yet 3 "$(mint "$WORK/hs.key" "$HDR" "$(claims 3 ",\"nbf\":$((T + 3600)),\"exp\":$((T + 7200))")")")"
    "$(job bad-audience 3 "$(mint "$WORK/hs.key" "$HDR" "$(claims 3 ',"aud":"someone-else"')")")"
    "$(job bad-issuer 3 "$(mint "$WORK/hs.key" "$HDR" "$(claims 3 ',"iss":"mallory"')")")"
    "$(job bad-too-long 3 "$(mint "$WORK/hs.key" "$HDR" "$(claims 3 ",\"pad\":\"$pad\"")")")"
    "$(job bad-malformed 3 not-a-token)"
    "$(job bad-base64 3 'e30.e3+/.abcd')"
    '{"job_id":"bad-no-token","user_id":3}'
    '{"job_id":"bad-not-a-string","user_id":3,"token":42}'
)
BAD_DETAILS=(
    "bad-signature|signature does not verify"
    "bad-alg-none|alg none refused"
    "bad-alg-lower|alg hs256, expected HS256"
    "bad-other-user|token for user 7, job for user 3"
    "bad-expired|expired 1NN s ago"
    "bad-not-yet|not valid before $nbf_at"
    "bad-audience|audience does not include '$AUD'"
    "bad-issuer|issuer is not '$ISS'"
    "bad-too-long|token longer than 8 KiB"
    "bad-malformed|malformed token: not three parts separated by '.'"
    "bad-base64|malformed token: not base64url"
    "bad-no-token|no token"
    "bad-not-a-string|token is not a string"
)
N_BAD=${#BAD_LINES[@]}
check "the too-long token is a good one, only long" test "${#BAD_LINES[8]}" -gt 8250
# The expired one's age depends on when it is checked: written as 1NN.
printf '%s\n' "${BAD_LINES[@]}" | produce --file - |
    sed -E 's/"expired 1[0-9][0-9] s ago"/"expired 1NN s ago"/' >"$WORK/bad.replies"
check_eq "each is answered unauthorized, and says why" "$(cat "$WORK/bad.replies")" \
    "$(for d in "${BAD_DETAILS[@]}"; do unauthorized "${d%%|*}" "${d#*|}"; done | LC_ALL=C sort)"
dead_copies "$N_BAD" | sed -E 's/\|expired 1[0-9][0-9] s ago\|/|expired 1NN s ago|/' >"$WORK/bad.dead"
check_eq "each has a dead copy: x-greet-error unauthorized, the reason, the token kept" \
    "$(cat "$WORK/bad.dead")" \
    "$(for d in "${BAD_DETAILS[@]}"; do
        kept=true
        [ "${d%%|*}" = bad-no-token ] && kept=false
        echo "${d%%|*}|unauthorized|${d#*|}|$kept"
    done | LC_ALL=C sort)"
check_eq "nothing left in the jobs queue" "$("$TOOLS/mqtool" depth greet.jobs)" 0
stop_worker "$W2"
check_eq "the worker counted them unauthorized, as dead jobs" \
    "$(stopped_stat w2 jobs_unauthorized) $(stopped_stat w2 jobs_failed) $(stopped_stat w2 jobs_ok)" \
    "$N_BAD $N_BAD 0"
check_eq "and looked none of them up" "$(stopped_stat w2 lookups)" 0
sig=$(mint "$WORK/hs.key" "$HDR" "$(claims 7)")
check "no token is logged" bash -c "! grep -qF -- '${sig##*.}' '$WORK/w2.log'"

echo "# ES256: the producer holds the private key, the worker the public one"
"$TOOLS/mqtool" purge greet.dead >/dev/null
check "a worker with GREET_JWT_ALG=ES256 starts" \
    start_worker w3 GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/es.pub" GREET_JWT_ALG=ES256
W3=$LAST_PID
check_eq "a job signed ES256" \
    "$(produce --user-id 3 --job-id es-1 --jwt-key "$WORK/es.pem" --jwt-alg ES256)" \
    '{"job_id":"es-1","status":"ok","message":"Salut, Amélie !","language":"fr"}'
check_eq "an HS256 token keyed with the worker's public key (alg confusion)" \
    "$(job es-confused 3 "$(mint "$WORK/es.pub" "$HDR" "$(claims 3)")" | produce --file -)" \
    "$(unauthorized es-confused "alg HS256, expected ES256")"
check_eq "an HS256 token from greet-producer" \
    "$(produce --user-id 3 --job-id es-hs "${SIGN[@]}")" \
    "$(unauthorized es-hs "alg HS256, expected ES256")"
stop_worker "$W3"

echo "# expiry: checked on a first delivery; a redelivery soon after is forgiven"
"$TOOLS/mqtool" purge greet.dead greet.replies >/dev/null
SHORT=(GREET_AUTH=jwt GREET_JWT_KEY_FILE="$WORK/hs.key" GREET_JWT_LEEWAY=0)
# A token that expires while its job waits in the queue: refused.
"$BIN/greet-producer" --user-id 3 --job-id expired-in-queue --jwt-key "$WORK/hs.key" --jwt-ttl 1 \
    >/dev/null 2>>"$WORK/producer.err"
sleep 2.5
check "a worker starts after the token expired" start_worker w4 "${SHORT[@]}"
W4=$LAST_PID
check_match "the job is answered unauthorized: expired" \
    "$("$BIN/greet-replies" --count 1 --timeout 20 2>/dev/null)" \
    '^\{"job_id":"expired-in-queue","status":"error","error":"unauthorized","detail":"expired [1-9] s ago"\}$'
check_match "and is dead, saying so" "$(dead_copies 1)" \
    '^expired-in-queue\|unauthorized\|expired [1-9] s ago\|true$'
# A token that expires while a worker holds its job (the lock holds its
# lookup), the worker killed: the broker redelivers it to another worker,
# which answers it ok.
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(9); COMMIT;" \
    >/dev/null 2>&1 &
locker=$!
locked() {
    [ "$(psql_ -At -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                       WHERE c.relname = 'user_preferences' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]
}
check "the preferences table is locked" wait_for 10 locked
"$BIN/greet-producer" --user-id 3 --job-id expires-in-hand --jwt-key "$WORK/hs.key" --jwt-ttl 2 \
    >/dev/null 2>>"$WORK/producer.err"
sent=$(date +%s)
check "the worker takes the job (the queue holds none ready)" wait_for 10 depth_is greet.jobs 0
sleep $((sent + 3 - $(date +%s)))
check "the token has expired, the job is not answered yet" \
    eval '[ "$(date +%s)" -ge $((sent + 3)) ] && depth_is greet.replies 0'
kill -KILL "$W4"
wait "$W4" 2>/dev/null
check "another worker starts" start_worker w5 "${SHORT[@]}"
W5=$LAST_PID
check_eq "the redelivered job is answered ok, not unauthorized" \
    "$("$BIN/greet-replies" --count 1 --timeout 30 2>/dev/null)" \
    '{"job_id":"expires-in-hand","status":"ok","message":"Salut, Amélie !","language":"fr"}'
check "it came as a redelivery" grep -q 'event=suspect.run' "$WORK/w5.log"
check_eq "and has no dead copy" "$("$TOOLS/mqtool" depth greet.dead)" 0
wait "$locker"
stop_worker "$W5"
check_eq "the new worker refused nothing" "$(stopped_stat w5 jobs_unauthorized)" 0

echo "# sanitizers"
check "no sanitizer report in any log" no_sanitizer_report "$WORK"/*.log "$WORK"/*.err

tests_summary
