# servers.sh - throwaway RabbitMQ and PostgreSQL servers in a scratch dir,
# on free loopback ports.  Sourced by the demo, the tests and the
# benchmark:
#
#     . scripts/lib/servers.sh
#     servers_start "$dir"        # exports AMQP_URL, DATABASE_URL, ...
#     servers_load_schema         # sql/*.sql, then sql/sample/*.sql if asked
#     servers_stop                # stops exactly what servers_start started
#
# Only processes this file started are ever signalled, by their PID.
#
# Optional hooks (tests/tls/run.sh), empty by default: RABBIT_EXTRA_CONF,
# lines added to rabbitmq.conf (a TLS listener, say); RABBIT_PLUGINS, the
# plugins to enable, comma-separated; PG_EXTRA_OPTS, more server options
# for PostgreSQL ("-c ssl=on -c ...").

GREET_ROOT=${GREET_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}

_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free port below the kernel's ephemeral range (32768-60999 by default);
# the caller binds it soon after.  Not inside that range: between the
# check and the bind, any outgoing connection on the machine may be given
# the port as its local one (a cluster node once failed to start with its
# distribution port taken, "not_erlang").
free_port() {
    local port tries=0 low=32768 span
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
    span=$((low - 10000))
    [ "$span" -lt 2000 ] && span=2000 # a machine with a wide ephemeral range: take the risk
    while [ $tries -lt 200 ]; do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        if _port_free "$port" && ! grep -qx "$port" "$SERVERS_DIR/ports" 2>/dev/null; then
            echo "$port" >>"$SERVERS_DIR/ports"
            echo "$port"
            return 0
        fi
        tries=$((tries + 1))
    done
    echo "servers: no free port found" >&2
    return 1
}

_as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The environment the RabbitMQ CLI and server share.  RABBITMQ_DIST_PORT
# is the server's alone: given to the CLI, the CLI would take that port
# and the server would die at start.
_rabbit_env() {
    env -u RABBITMQ_DIST_PORT HOME="$SERVERS_DIR/rabbit/home" \
        RABBITMQ_MNESIA_BASE="$SERVERS_DIR/rabbit/mnesia" \
        RABBITMQ_LOG_BASE="$SERVERS_DIR/rabbit/log" \
        RABBITMQ_NODENAME="$RABBIT_NODE" \
        RABBITMQ_CONFIG_FILE="$SERVERS_DIR/rabbit/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$SERVERS_DIR/rabbit/enabled_plugins" \
        RABBITMQ_PID_FILE="$SERVERS_DIR/rabbit/pid" \
        ERL_EPMD_PORT="$RABBIT_EPMD_PORT" \
        RABBITMQ_NODE_PORT="$RABBIT_PORT" \
        "$@"
}

# rabbitmqctl_ [timeout SECONDS] ARGS...: the CLI against our node.
rabbitmqctl_() {
    local limit=60
    if [ "$1" = timeout ]; then
        limit=$2
        shift 2
    fi
    _rabbit_env timeout "$limit" "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" "$@"
}

# Starts the broker; started again after rabbit_stop it keeps its node
# name, ports and data, so durable queues and their messages survive.
rabbit_start() {
    mkdir -p "$SERVERS_DIR/rabbit/home" "$SERVERS_DIR/rabbit/mnesia" "$SERVERS_DIR/rabbit/log"
    if [ -z "${RABBIT_NODE:-}" ]; then
        RABBIT_PORT=${RABBIT_PORT:-$(free_port)} || return 1
        RABBIT_EPMD_PORT=$(free_port) || return 1
        RABBIT_DIST_PORT=$(free_port) || return 1
        RABBIT_NODE="greet$$r$RANDOM@localhost"
    fi
    cat >"$SERVERS_DIR/rabbit/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$RABBIT_PORT
loopback_users = none
log.console = false
log.file.level = warning
CONF
    [ -n "${RABBIT_EXTRA_CONF:-}" ] && printf '%s\n' "$RABBIT_EXTRA_CONF" >>"$SERVERS_DIR/rabbit/rabbitmq.conf"
    echo "[${RABBIT_PLUGINS:-}]." >"$SERVERS_DIR/rabbit/enabled_plugins"
    _rabbit_env RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" setsid "$RABBIT_BIN/rabbitmq-server" \
        >"$SERVERS_DIR/rabbit/server.out" 2>&1 </dev/null &
    RABBIT_PID=$!
    if ! rabbitmqctl_ timeout 90 wait "$SERVERS_DIR/rabbit/pid" >"$SERVERS_DIR/rabbit/wait.out" 2>&1; then
        echo "servers: RabbitMQ did not start; see $SERVERS_DIR/rabbit/" >&2
        tail -n 20 "$SERVERS_DIR/rabbit/server.out" >&2
        return 1
    fi
    export AMQP_URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/"
}

# The Erlang VM's own PID (the launcher script may have exec'd into it).
rabbit_vm_pid() {
    cat "$SERVERS_DIR/rabbit/pid" 2>/dev/null
}

# A fast, still orderly stop: SIGTERM to the VM (rabbitmqctl stop first
# starts a whole Erlang VM of its own).
rabbit_stop_now() {
    local pid waited=0
    pid=$(rabbit_vm_pid)
    [ -n "$pid" ] || return 1
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 300 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    [ -n "${RABBIT_PID:-}" ] && wait "$RABBIT_PID" 2>/dev/null
    RABBIT_PID=""
    return 0
}

rabbit_stop() {
    local pid
    [ -n "${RABBIT_NODE:-}" ] || return 0
    pid=$(rabbit_vm_pid)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -CONT "$pid" 2>/dev/null
        rabbitmqctl_ timeout 60 stop "$SERVERS_DIR/rabbit/pid" >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null
    fi
    [ -n "${RABBIT_PID:-}" ] && kill "$RABBIT_PID" 2>/dev/null
    [ -n "${RABBIT_PID:-}" ] && wait "$RABBIT_PID" 2>/dev/null
    RABBIT_PID=""
    [ -n "${RABBIT_EPMD_PORT:-}" ] && epmd -port "$RABBIT_EPMD_PORT" -kill >/dev/null 2>&1
}

# Creates the cluster the first time; started again after pg_stop it
# keeps its data, port and socket.
pg_start() {
    local data="$SERVERS_DIR/pg/data"
    if [ ! -e "$data/PG_VERSION" ]; then
        mkdir -p "$data" "$SERVERS_DIR/pg/sock"
        [ "$(id -u)" = 0 ] && chown -R postgres "$SERVERS_DIR/pg"
        PG_PORT=${PG_PORT:-$(free_port)} || return 1
        PG_SOCKET="$SERVERS_DIR/pg/sock"
        if ! _as_postgres "$PG_BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
            >"$SERVERS_DIR/pg/initdb.out" 2>&1; then
            echo "servers: initdb failed; see $SERVERS_DIR/pg/initdb.out" >&2
            return 1
        fi
    fi
    # Throwaway data: no fsync.  Loopback TCP and a private socket dir.
    if ! _as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$SERVERS_DIR/pg/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_SOCKET -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 ${PG_EXTRA_OPTS:-}" \
        start >"$SERVERS_DIR/pg/start.out" 2>&1; then
        echo "servers: PostgreSQL did not start; see $SERVERS_DIR/pg/" >&2
        tail -n 20 "$SERVERS_DIR/pg/server.log" >&2
        return 1
    fi
    PG_PID=$(head -n 1 "$data/postmaster.pid")
    export PGHOST="$PG_SOCKET" PGPORT="$PG_PORT" PGUSER=postgres
    export DATABASE_URL="postgresql://greet_worker@/greet?host=$PG_SOCKET&port=$PG_PORT"
    export GREET_ADMIN_DATABASE_URL="postgresql://postgres@/greet?host=$PG_SOCKET&port=$PG_PORT"
}

pg_stop() {
    [ -n "${PG_PID:-}" ] || return 0
    kill -CONT "$PG_PID" 2>/dev/null
    _as_postgres "$PG_BIN/pg_ctl" -D "$SERVERS_DIR/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        kill -KILL "$PG_PID" 2>/dev/null
    PG_PID=""
}

# psql as the superuser on the greet database.
psql_() {
    psql -X -q -v ON_ERROR_STOP=1 -d greet "$@"
}

# _migrate [--sample]: sql/ applied by greet-admin migrate, as an operator
# would, as the superuser; the build under test when the caller set BIN.
_migrate() {
    local out
    out=$(DATABASE_URL="$GREET_ADMIN_DATABASE_URL" GREET_SQL_DIR="$GREET_ROOT/sql" \
        "${BIN:-$GREET_ROOT/bin}/greet-admin" migrate "$@" 2>&1) || {
        echo "$out" >&2
        return 1
    }
}

# The database itself is the server's to create; migrate fills it.
servers_load_schema() {
    psql -X -q -d postgres -c "CREATE DATABASE greet" >/dev/null || return 1
    _migrate
}

servers_load_samples() {
    _migrate --sample
}

# servers_prepare_dir DIR: the scratch dir of a set of servers, with an
# empty list of the ports taken (free_port); also tests/cluster/lib.sh's.
servers_prepare_dir() {
    mkdir -p "$1"
    chmod 755 "$1"
    # PostgreSQL runs as its own user: it must be able to reach the dir.
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$1"; then
        echo "servers: user postgres cannot reach $1; make its parents world-searchable (chmod o+x)" >&2
        return 1
    fi
    : >"$1/ports"
}

servers_start() {
    SERVERS_DIR=$1
    servers_prepare_dir "$SERVERS_DIR" && pg_start && rabbit_start
}

servers_stop() {
    rabbit_stop
    pg_stop
}
