#!/usr/bin/env bash
# TLS on both servers: a throwaway CA and certificates made here with
# openssl, RabbitMQ with a TLS listener (and the rabbitmq_auth_mechanism_ssl
# plugin for logins by certificate), PostgreSQL with ssl=on, all in a temp
# dir on free loopback ports.  The worker, the producer and the subscriber
# run over amqps:// and sslmode=verify-full; every way a link can fail to
# be verified (another CA, another host name, an expired certificate, plain
# AMQP at the TLS port) is refused with an error naming the cause, and a
# worker never takes a job over such a link.  Ends with a drain rate over
# TLS next to plain TCP, printed, not judged.
#
#     GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/tls/run.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/release/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/scripts/lib/tls.sh"
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-tls.XXXXXX")
chmod 755 "$WORK" # the servers run as their own users
WORKER_PIDS=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GREET_HEARTBEAT=5 GREET_STATS_INTERVAL=0
unset GREET_JOBS_QUEUE GREET_REPLY_QUEUE GREET_DEAD_QUEUE AMQP_CACERT AMQP_CERT AMQP_KEY
DRAIN_JOBS=${TLS_DRAIN_JOBS:-20000}

cleanup() {
    stop_pids "${WORKER_PIDS[@]}"
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CERTS=$WORK/certs

make_certs() {
    mkdir -p "$CERTS" &&
        tls_ca "$CERTS" ca && tls_ca "$CERTS" wrong-ca &&
        tls_sign "$CERTS" server ca /CN=localhost server &&
        tls_sign "$CERTS" other-host ca /CN=other.example other_host &&
        tls_sign "$CERTS" expired ca /CN=localhost server -startdate 20200101000000Z -enddate 20200102000000Z &&
        tls_sign "$CERTS" client ca /CN=greet-tls-worker client &&
        tls_sign "$CERTS" client-wrong-ca wrong-ca /CN=greet-tls-worker client &&
        tls_sign "$CERTS" client-nobody ca /CN=greet-nobody client &&
        openssl verify -CAfile "$CERTS/ca.pem" "$CERTS/server.pem" "$CERTS/client.pem" &&
        ! openssl verify -CAfile "$CERTS/ca.pem" "$CERTS/expired.pem"
}

echo "# a throwaway CA and certificates, made with openssl in $CERTS"
check "CA, server (localhost, 127.0.0.1), other-host, expired, client certificates, another CA" \
    make_certs || exit 1

# The broker reads its certificate from RABBIT_TLS; tests swap the files
# and clear its PEM cache to make it present another one (RabbitMQ's way
# of rotating certificates without a restart).
RABBIT_TLS=$WORK/rabbit-tls

start_tls_servers() {
    SERVERS_DIR=$WORK/servers
    servers_prepare_dir "$SERVERS_DIR" && tls_servers "$CERTS" "$RABBIT_TLS" "$WORK/pg-tls" || return 1
    RABBIT_PLUGINS=rabbitmq_auth_mechanism_ssl
    RABBIT_EXTRA_CONF="$RABBIT_EXTRA_CONF
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name"
    pg_start && rabbit_start
}

echo "# RabbitMQ with a TLS listener, PostgreSQL with ssl=on, in $WORK"
check "servers start (TLS listener, EXTERNAL plugin, ssl=on)" start_tls_servers || exit 1
check "schema and sample users load" eval 'servers_load_schema && servers_load_samples' || exit 1

PLAIN_URL=$AMQP_URL
TLS_URL=$(tls_amqp_url)
CA=$TLS_CA
TLS_DB=$(tls_database_url)
PLAIN_DB=$(tcp_database_url)

# broker_subject: the subject of the certificate the broker presents now.
broker_subject() {
    openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -subject -enddate 2>/dev/null | tr '\n' ' '
}

# present NAME: the broker presents certificate NAME from its next
# connection on.
present() {
    cp "$CERTS/$1.pem" "$RABBIT_TLS/server.pem" && cp "$CERTS/$1.key" "$RABBIT_TLS/server.key" &&
        rabbitmqctl_ eval 'ssl:clear_pem_cache().' >/dev/null
}

# presents NAME TEXT: the broker is made to present certificate NAME, and
# what it presents holds TEXT (its subject or dates).
presents() {
    present "$1" && [[ "$(broker_subject)" == *"$2"* ]]
}

depth() {
    "$TOOLS/mqtool" depth "$1"
}

queue_empty() {
    [ "$(depth "$1")" = 0 ]
}

# connections: the broker's client connections as JSON lines (user, TLS,
# login mechanism, port, the name the client gave).
connections() {
    rabbitmqctl_ list_connections --formatter json user ssl auth_mechanism port client_properties 2>/dev/null |
        jq -c '.[] | {user, ssl, auth_mechanism, port,
                      name: ([.client_properties[] | select(.[0] == "connection_name") | .[2]][0])}'
}

# tls_connection_of NAME [USER MECHANISM]: NAME is connected over TLS to
# the TLS port (as USER, logged in by MECHANISM).
tls_connection_of() {
    connections | jq -e --arg name "$1" --arg user "${2:-guest}" --arg mech "${3:-PLAIN}" \
        --argjson port "$TLS_PORT" -s \
        'map(select(.name == $name)) | length == 1 and .[0].ssl == true and .[0].port == $port
         and .[0].user == $user and .[0].auth_mechanism == $mech' >/dev/null
}

# tls_producer ARGS...: greet-producer over amqps:// with the test CA.
tls_producer() {
    AMQP_URL=$TLS_URL AMQP_CACERT=$CA "$BIN/greet-producer" "$@"
}

echo "# the servers' TLS, as openssl sees it"
check_match "the broker presents the test server certificate" "$(broker_subject)" 'subject=CN = localhost'
check "it verifies against the test CA for localhost" bash -c "openssl s_client -connect 127.0.0.1:$TLS_PORT \
    -CAfile '$CA' -verify_hostname localhost -verify_return_error </dev/null 2>&1 | grep -q 'Verify return code: 0'"
check "PostgreSQL accepts verify-full connections" \
    psql -X -q -d "postgresql://postgres@localhost:$PG_PORT/greet?sslmode=verify-full&sslrootcert=$CA" -c "SELECT 1"

echo "# worker, producer and subscriber over amqps:// and sslmode=verify-full"
check "worker starts over amqps:// with AMQP_CACERT and a verify-full DATABASE_URL" \
    start_worker tls-w1 AMQP_URL="$TLS_URL" AMQP_CACERT="$CA" DATABASE_URL="$TLS_DB"
TLS_WORKER=$LAST_PID
check "the broker lists the worker's connection on the TLS port, ssl true" tls_connection_of greet-worker
check_eq "pg_stat_ssl: the worker's backend is on TLS" \
    "$(psql_ -At -c "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                     WHERE a.application_name = 'greet-worker'")" t
tls_producer --count 50 --users 12 >/dev/null 2>"$WORK/count.err"
check_eq "greet-producer --count 50 over amqps:// exits 0" "$?" 0
check_match "and every job was confirmed" "$(tail -n 1 "$WORK/count.err")" '50 jobs confirmed'
AMQP_URL=$TLS_URL AMQP_CACERT=$CA "$BIN/greet-replies" --count 50 --timeout 30 >"$WORK/replies.out" 2>"$WORK/replies.err"
check_eq "greet-replies over amqps:// reads the 50 replies" "$?" 0
check_eq "all ok" "$(jq -s 'map(select(.status == "ok")) | length' "$WORK/replies.out")" 50
tls_producer --count 20 --users 12 --wait --timeout 30 >"$WORK/wait.out" 2>"$WORK/wait.err"
check_eq "greet-producer --wait over amqps:// exits 0 (every reply ok)" "$?" 0
check_eq "one reply line per job" "$(jq -s 'map(select(.status == "ok")) | length' "$WORK/wait.out")" 20
AMQP_URL="amqps://guest:guest@127.0.0.1:$TLS_PORT/" AMQP_CACERT=$CA \
    "$BIN/greet-producer" --user-id 4 --job-id ip-san --wait --timeout 15 >"$WORK/ip.out" 2>"$WORK/ip.err"
check_eq "amqps://127.0.0.1: verified by the certificate's IP address SAN" \
    "$(jq -c . "$WORK/ip.out" 2>/dev/null)" \
    '{"job_id":"ip-san","status":"ok","message":"Bonjour, Jean.","language":"fr"}'
check "the worker logged the amqps:// URL, password masked" \
    grep -q "event=broker.connected url=amqps://guest:\*\*\*@localhost:$TLS_PORT/" "$WORK/tls-w1.log"
stop_pids "$TLS_WORKER"

# A worker that must never get a verified link: started with
# refused_worker_start NAME VAR=value... (its pid in REFUSED_PIDS[NAME]),
# judged by refused_worker_check: it logs the cause on each attempt, keeps
# retrying, never consumes (the jobs queue keeps its PRELOADED jobs), and
# exits 0 on SIGTERM.
declare -A REFUSED_PIDS
refused_worker_start() {
    local name=$1
    shift
    env "$@" "$BIN/greet-worker" >"$WORK/$name.log" 2>&1 &
    REFUSED_PIDS[$name]=$!
    WORKER_PIDS+=("$!")
}

# logged_twice FILE EVENT CAUSE-REGEX: two EVENT lines or more name CAUSE.
logged_twice() {
    [ "$(grep "event=$2 " "$1" | grep -c -E -- "$3")" -ge 2 ]
}

# refused_worker_check NAME WHAT CAUSE-REGEX [EVENT]
refused_worker_check() {
    local name=$1 what=$2 cause=$3 event=${4:-broker.connect_failed} pid=${REFUSED_PIDS[$1]} status
    check "worker, $what: logs $event naming the cause, twice or more (retrying)" \
        wait_for 20 logged_twice "$WORK/$name.log" "$event" "$cause"
    check "worker, $what: still running" kill -0 "$pid"
    check "worker, $what: never consumed" bash -c "! grep -q 'event=consumer.started' '$WORK/$name.log'"
    check_eq "worker, $what: the jobs queue still holds its $PRELOADED jobs" "$(depth greet.jobs)" "$PRELOADED"
    kill -TERM "$pid"
    wait "$pid"
    status=$?
    check_eq "worker, $what: exits 0 on SIGTERM" "$status" 0
}

# refused_producer WHAT CAUSE-REGEX [VAR=value...]: greet-producer exits 1
# and its message names the cause.
refused_producer() {
    local what=$1 cause=$2 status
    shift 2
    env "$@" "$BIN/greet-producer" --job-id refused >"$WORK/refused.out" 2>"$WORK/refused.err"
    status=$?
    check_eq "producer, $what: exit 1" "$status" 1
    check "producer, $what: the message names the cause" grep -q -E -- "$cause" "$WORK/refused.err"
}

# Jobs waiting for a worker; a worker that consumed any of them over an
# unverified link would show in the queue's depth.
PRELOADED=5
"$TOOLS/mqtool" purge greet.jobs greet.replies >/dev/null
AMQP_URL=$PLAIN_URL "$BIN/greet-producer" --count "$PRELOADED" >/dev/null 2>&1
echo "# another CA: AMQP_CACERT that did not sign the broker's certificate"
# The broker sends its CA with its certificate: "self-signed certificate
# in certificate chain" (a CA we do not trust), else "unable to get local
# issuer certificate".
WRONG_CA_CAUSE='certificate verify failed: (self-signed certificate in certificate chain|unable to get local issuer certificate)'
refused_worker_start wrong-ca AMQP_URL="$TLS_URL" AMQP_CACERT="$CERTS/wrong-ca.pem" DATABASE_URL="$TLS_DB"
refused_producer "another CA" "$WRONG_CA_CAUSE" AMQP_URL="$TLS_URL" AMQP_CACERT="$CERTS/wrong-ca.pem"
refused_worker_check wrong-ca "another CA" "$WRONG_CA_CAUSE"

echo "# plain amqp:// pointed at the TLS port, and amqps:// at the plain one"
PLAIN_AT_TLS_CAUSE="dropped the connection before a word of AMQP, as a TLS listener does: if port $TLS_PORT is one, use amqps://"
refused_worker_start plain-at-tls AMQP_URL="amqp://guest:guest@localhost:$TLS_PORT/" DATABASE_URL="$TLS_DB"
refused_producer "amqp:// at the TLS port" "$PLAIN_AT_TLS_CAUSE" AMQP_URL="amqp://guest:guest@localhost:$TLS_PORT/"
refused_worker_check plain-at-tls "amqp:// at the TLS port" "$PLAIN_AT_TLS_CAUSE"
refused_producer "amqps:// at the plain port" 'does not speak TLS on this port' \
    AMQP_URL="amqps://guest:guest@localhost:$RABBIT_PORT/" AMQP_CACERT="$CA"

echo "# the broker presents a certificate for another host name"
check "the broker now presents other.example's certificate" \
    presents other-host "CN = other.example"
MISMATCH_CAUSE='certificate verify failed: hostname mismatch'
refused_worker_start mismatch AMQP_URL="$TLS_URL" AMQP_CACERT="$CA" DATABASE_URL="$TLS_DB"
refused_producer "host name mismatch" "$MISMATCH_CAUSE" AMQP_URL="$TLS_URL" AMQP_CACERT="$CA"
refused_worker_check mismatch "host name mismatch" "$MISMATCH_CAUSE"

echo "# the broker presents an expired certificate"
check "the broker now presents the expired certificate" \
    presents expired "notAfter=Jan  2 00:00:00 2020"
EXPIRED_CAUSE='certificate verify failed: certificate has expired'
refused_producer "expired certificate" "$EXPIRED_CAUSE" AMQP_URL="$TLS_URL" AMQP_CACERT="$CA"
# This worker stays: once the broker's certificate is good again, it must
# connect by itself and take the jobs it was kept from.
refused_worker_start expired AMQP_URL="$TLS_URL" AMQP_CACERT="$CA" DATABASE_URL="$TLS_DB"
check "worker, expired certificate: logs broker.connect_failed naming the cause, twice or more (retrying)" \
    wait_for 20 logged_twice "$WORK/expired.log" broker.connect_failed "$EXPIRED_CAUSE"
check "worker, expired certificate: never consumed" bash -c "! grep -q 'event=consumer.started' '$WORK/expired.log'"
check_eq "worker, expired certificate: the jobs queue still holds its $PRELOADED jobs" "$(depth greet.jobs)" "$PRELOADED"
check "the broker presents the good certificate again" \
    presents server "CN = localhost"
check "the retrying worker connects by itself once the certificate verifies" \
    wait_for 15 grep -q 'event=consumer.started' "$WORK/expired.log"
check "and answers the $PRELOADED jobs it was kept from" "$TOOLS/mqtool" wait greet.replies "$PRELOADED" 20
check "and acks them: the jobs queue is empty" wait_for 5 queue_empty greet.jobs
stop_pids "${REFUSED_PIDS[expired]}"

echo "# a CA bundle that cannot be read"
"$BIN/greet-producer" --amqp-url "$TLS_URL" --amqp-cacert "$WORK/no-such-ca.pem" --job-id x 2>"$WORK/noca.err"
check_eq "unreadable AMQP_CACERT with amqps://: bad configuration, exit 2" "$?" 2
check "the message names the variable and the path" \
    grep -q "AMQP_CACERT (--amqp-cacert): cannot read '$WORK/no-such-ca.pem': No such file or directory" "$WORK/noca.err"
"$BIN/greet-producer" --amqp-url "$PLAIN_URL" --amqp-cacert "$WORK/no-such-ca.pem" --job-id plain-noca >/dev/null 2>&1
check_eq "with amqp:// the CA bundle is not needed: exit 0" "$?" 0
# Read at every connect: a bundle gone while a worker runs is named at its
# next reconnect (it used to be skipped, and every verification failed).
cp "$CA" "$WORK/ca-copy.pem"
check "worker starts with a copy of the CA bundle" \
    start_worker ca-gone AMQP_URL="$TLS_URL" AMQP_CACERT="$WORK/ca-copy.pem" DATABASE_URL="$TLS_DB"
CA_GONE_PID=$LAST_PID
rm -f "$WORK/ca-copy.pem"
rabbitmqctl_ close_all_connections "test: CA bundle removed" >/dev/null 2>&1
check "its reconnect fails naming AMQP_CACERT and the path" \
    wait_for 15 grep -q "event=broker.connect_failed error=\"TLS: AMQP_CACERT (--amqp-cacert): cannot read '$WORK/ca-copy.pem': No such file or directory\"" "$WORK/ca-gone.log"
cp "$CA" "$WORK/ca-copy.pem"
check "and it connects again once the bundle is back" \
    wait_for 15 bash -c "[ \$(grep -c 'event=consumer.started' '$WORK/ca-gone.log') -ge 2 ]"
stop_pids "$CA_GONE_PID"

echo "# PostgreSQL: sslmode=verify-full refuses another CA and another host name"
"$TOOLS/mqtool" purge greet.jobs >/dev/null
AMQP_URL=$PLAIN_URL "$BIN/greet-producer" --count "$PRELOADED" >/dev/null 2>&1
refused_worker_start pg-wrong-ca AMQP_URL="$TLS_URL" AMQP_CACERT="$CA" \
    DATABASE_URL="postgresql://greet_worker@localhost:$PG_PORT/greet?sslmode=verify-full&sslrootcert=$CERTS/wrong-ca.pem"
refused_worker_start pg-mismatch AMQP_URL="$TLS_URL" AMQP_CACERT="$CA" \
    DATABASE_URL="host=other.example hostaddr=127.0.0.1 port=$PG_PORT user=greet_worker dbname=greet sslmode=verify-full sslrootcert=$CA"
refused_worker_check pg-wrong-ca "database signed by another CA" 'certificate verify failed' db.connect_failed
refused_worker_check pg-mismatch "database host name mismatch" \
    'server certificate for .*localhost.* does not match host name .*other.example' db.connect_failed

echo "# a login by client certificate (SASL EXTERNAL), no password"
# The user the broker maps the client certificate to (its CN); the
# password set to make it is cleared at once.
add_cert_user() {
    rabbitmqctl_ add_user greet-tls-worker "unused-$RANDOM$RANDOM" &&
        rabbitmqctl_ clear_password greet-tls-worker &&
        rabbitmqctl_ set_permissions -p / greet-tls-worker '.*' '.*' '.*'
}
check "RabbitMQ user greet-tls-worker (the client certificate's CN), no password" add_cert_user
CERT_URL="amqps://localhost:$TLS_PORT/"
check "worker starts with AMQP_CERT and AMQP_KEY and no password in AMQP_URL" \
    start_worker cert-w1 AMQP_URL="$CERT_URL" AMQP_CACERT="$CA" AMQP_CERT="$CERTS/client.pem" \
    AMQP_KEY="$CERTS/client.key" DATABASE_URL="$TLS_DB"
CERT_WORKER=$LAST_PID
check "the broker shows it logged in as greet-tls-worker by EXTERNAL, over TLS" \
    tls_connection_of greet-worker greet-tls-worker EXTERNAL
check "its log says the login was by certificate, and whose" grep -q -F \
    "event=broker.connected url=\"amqps://guest:***@localhost:$TLS_PORT/ (login by certificate, CN=greet-tls-worker)\"" \
    "$WORK/cert-w1.log"
check_eq "it answers jobs" "$(tls_producer --user-id 3 --job-id by-cert --wait --timeout 15 2>/dev/null)" \
    '{"job_id":"by-cert","status":"ok","message":"Salut, Amélie !","language":"fr"}'
"$BIN/greet-producer" --amqp-url "$CERT_URL" --amqp-cacert "$CA" --amqp-cert "$CERTS/client.pem" \
    --amqp-key "$CERTS/client.key" --user-id 5 --job-id flags-cert --wait --timeout 15 >"$WORK/flags.out" 2>"$WORK/flags.err"
check_eq "greet-producer logs in by certificate with --amqp-cert and --amqp-key" "$?" 0
check_eq "and gets its reply" "$(jq -r .job_id "$WORK/flags.out" 2>/dev/null)" flags-cert
stop_pids "$CERT_WORKER"
# With a password in the URL the login stays PLAIN, the certificate only
# shown (mutual TLS): greet-replies held open on a queue of its own.
AMQP_URL=$TLS_URL AMQP_CACERT=$CA AMQP_CERT="$CERTS/client.pem" AMQP_KEY="$CERTS/client.key" \
    "$BIN/greet-replies" --reply-queue tls.probe --timeout 30 >/dev/null 2>"$WORK/probe.err" &
PROBE_PID=$!
check "a certificate with a password in AMQP_URL: the login is PLAIN, as guest, over TLS" \
    wait_for 10 tls_connection_of greet-replies guest PLAIN
stop_pids "$PROBE_PID"

"$TOOLS/mqtool" purge greet.jobs >/dev/null
AMQP_URL=$PLAIN_URL "$BIN/greet-producer" --count "$PRELOADED" >/dev/null 2>&1
# TLS 1.3: the broker judges the client certificate after the handshake;
# its alert ("unknown ca") is often lost to the reset that follows it.
CLIENT_WRONG_CA_CAUSE="refuses a client certificate: is AMQP_CERT '$CERTS/client-wrong-ca.pem' signed by a CA the broker trusts"
refused_worker_start cert-wrong-ca AMQP_URL="$CERT_URL" AMQP_CACERT="$CA" \
    AMQP_CERT="$CERTS/client-wrong-ca.pem" AMQP_KEY="$CERTS/client-wrong-ca.key" DATABASE_URL="$TLS_DB"
refused_producer "client certificate from another CA" "$CLIENT_WRONG_CA_CAUSE" AMQP_URL="$CERT_URL" \
    AMQP_CACERT="$CA" AMQP_CERT="$CERTS/client-wrong-ca.pem" AMQP_KEY="$CERTS/client-wrong-ca.key"
refused_worker_check cert-wrong-ca "client certificate from another CA" "$CLIENT_WRONG_CA_CAUSE"
refused_producer "a certificate whose CN is no broker user" \
    '403 ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL' AMQP_URL="$CERT_URL" \
    AMQP_CACERT="$CA" AMQP_CERT="$CERTS/client-nobody.pem" AMQP_KEY="$CERTS/client-nobody.key"

echo "# certificate settings that stop start-up (exit 2, the setting named)"
for bad in "AMQP_CERT=$CERTS/client.pem|AMQP_CERT (--amqp-cert) is set but AMQP_KEY (--amqp-key) is not" \
    "AMQP_KEY=$CERTS/client.key|AMQP_KEY (--amqp-key) is set but AMQP_CERT (--amqp-cert) is not" \
    "AMQP_URL=$PLAIN_URL AMQP_CERT=$CERTS/client.pem AMQP_KEY=$CERTS/client.key|needs TLS, but AMQP_URL is amqp://" \
    "AMQP_CERT=$WORK/none.pem AMQP_KEY=$CERTS/client.key|AMQP_CERT (--amqp-cert): cannot read '$WORK/none.pem'" \
    "AMQP_CERT=$CERTS/client.pem AMQP_KEY=$CERTS|AMQP_KEY (--amqp-key): cannot read '$CERTS': Is a directory"; do
    # shellcheck disable=SC2086 # the VAR=value words split on purpose
    env AMQP_URL="$CERT_URL" AMQP_CACERT="$CA" ${bad%%|*} "$BIN/greet-worker" >/dev/null 2>"$WORK/badcert.err"
    check_eq "exit 2: ${bad#*|}" "$?" 2
    check "the message says so" grep -q -F -- "${bad#*|}" "$WORK/badcert.err"
done
env AMQP_URL="$CERT_URL" AMQP_CACERT="$CA" AMQP_CERT="$CERTS/client.pem" AMQP_KEY="$CERTS/other-host.key" \
    "$BIN/greet-producer" --job-id x >/dev/null 2>"$WORK/mismatch-key.err"
check_eq "a key that is not the certificate's: exit 1" "$?" 1
check "and says the two do not go together" grep -q "cannot use the client certificate .* key values mismatch" \
    "$WORK/mismatch-key.err"
openssl pkey -in "$CERTS/client.key" -aes256 -passout pass:not-asked -out "$CERTS/client-encrypted.key"
env AMQP_URL="$CERT_URL" AMQP_CACERT="$CA" AMQP_CERT="$CERTS/client.pem" AMQP_KEY="$CERTS/client-encrypted.key" \
    timeout 20 "$BIN/greet-producer" --job-id x >/dev/null 2>"$WORK/encrypted-key.err" </dev/null
check_eq "an encrypted key: exit 1, no passphrase asked" "$?" 1
check "and says it is encrypted" grep -q "(AMQP_KEY): bad password read (an encrypted key" "$WORK/encrypted-key.err"

echo "# drain rate over TLS and over plain TCP, the same run (printed, not judged)"
# drain NAME AMQP-URL DATABASE-URL: DRAIN_JOBS jobs queued first, then one
# worker drains them; prints jobs/s, from the worker's start (connecting
# included: the TLS handshakes are part of the price) to the last reply.
drain() {
    local name=$1 url=$2 db=$3 started finished pid
    "$TOOLS/mqtool" purge greet.jobs greet.replies >/dev/null
    AMQP_URL=$PLAIN_URL "$BIN/greet-producer" --count "$DRAIN_JOBS" --users 1000 >/dev/null 2>&1 || return 1
    started=$(date +%s.%N)
    env AMQP_URL="$url" AMQP_CACERT="$CA" DATABASE_URL="$db" "$BIN/greet-worker" >"$WORK/$name.log" 2>&1 &
    pid=$!
    WORKER_PIDS+=("$pid")
    "$TOOLS/mqtool" wait greet.replies "$DRAIN_JOBS" 300 >/dev/null || {
        stop_pids "$pid"
        return 1
    }
    finished=$(date +%s.%N)
    stop_pids "$pid"
    awk -v n="$DRAIN_JOBS" -v a="$started" -v b="$finished" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}
drained=0
for round in 1 2; do
    plain=$(drain "drain-plain-$round" "$PLAIN_URL" "$PLAIN_DB") && drained=$((drained + 1))
    tls=$(drain "drain-tls-$round" "$TLS_URL" "$TLS_DB") && drained=$((drained + 1))
    echo "# round $round: $DRAIN_JOBS jobs drained by one worker ($BIN): plain TCP ${plain:-?} jobs/s," \
        "TLS (amqps://, verify-full) ${tls:-?} jobs/s, TLS/plain" \
        "$(awk -v p="${plain:-0}" -v t="${tls:-0}" 'BEGIN { printf "%.2f", (p > 0 ? t / p : 0) }')"
done
check_eq "every drain finished (2 rounds, plain and TLS)" "$drained" 4

check "no sanitizer report in any log" no_sanitizer_report "$WORK"/*.log "$WORK"/*.err
tests_summary
