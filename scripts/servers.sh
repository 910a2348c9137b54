#!/usr/bin/env bash
# The local RabbitMQ and PostgreSQL the README's examples run against,
# left running between commands (the demo and the tests start their own).
#
#   scripts/servers.sh up       start them (schema and sample users loaded),
#                               print the environment to use them
#   eval "$(scripts/servers.sh env)"
#                               AMQP_URL, DATABASE_URL and psql's PG* in
#                               this shell
#   scripts/servers.sh status   running or not, where, on which ports
#   scripts/servers.sh down     stop them and delete their data
#
# Loopback only, on free ports, data in .run/servers (or a /tmp dir when
# the postgres user cannot reach the checkout); GREET_SERVERS_DIR picks
# another.  Installs missing Debian packages when run as root.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib/deps.sh"
. "$ROOT/scripts/lib/servers.sh"

# Where the servers live: remembered in .run/servers.dir once chosen.
servers_dir() {
    local pointer="$ROOT/.run/servers.dir"
    if [ -n "${GREET_SERVERS_DIR:-}" ]; then
        echo "$GREET_SERVERS_DIR"
    elif [ -s "$pointer" ]; then
        cat "$pointer"
    elif [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$ROOT"; then
        mkdir -p "$ROOT/.run"
        mktemp -d /tmp/greet-servers.XXXXXX | tee "$pointer"
    else
        echo "$ROOT/.run/servers"
    fi
}

DIR=$(servers_dir)
STATE="$DIR/state"

# The state file: what servers_stop and the env lines need, as shell.
save_state() {
    {
        printf 'SERVERS_DIR=%q\nRABBIT_NODE=%q\nRABBIT_PORT=%q\nRABBIT_EPMD_PORT=%q\n' \
            "$SERVERS_DIR" "$RABBIT_NODE" "$RABBIT_PORT" "$RABBIT_EPMD_PORT"
        printf 'RABBIT_DIST_PORT=%q\nPG_PORT=%q\nPG_SOCKET=%q\n' "$RABBIT_DIST_PORT" "$PG_PORT" "$PG_SOCKET"
    } >"$STATE"
}

load_state() {
    [ -f "$STATE" ] || return 1
    . "$STATE"
    PG_PID=$(head -n 1 "$SERVERS_DIR/pg/data/postmaster.pid" 2>/dev/null)
}

rabbit_up() { [ -n "$(rabbit_vm_pid)" ] && kill -0 "$(rabbit_vm_pid)" 2>/dev/null; }
pg_up() { [ -n "${PG_PID:-}" ] && kill -0 "$PG_PID" 2>/dev/null; }

print_env() {
    printf "export AMQP_URL='amqp://guest:guest@127.0.0.1:%s/'\n" "$RABBIT_PORT"
    printf "export DATABASE_URL='postgresql://greet_worker@/greet?host=%s&port=%s'\n" "$PG_SOCKET" "$PG_PORT"
    printf "export PGHOST='%s' PGPORT='%s' PGUSER=postgres PGDATABASE=greet\n" "$PG_SOCKET" "$PG_PORT"
}

case "${1:-}" in
up)
    if load_state && rabbit_up && pg_up; then
        echo "servers: already up in $DIR" >&2
    else
        deps_ensure $GREET_BUILD_PACKAGES $GREET_SERVER_PACKAGES || exit 1
        make -s -C "$ROOT" all || exit 1 # greet-admin migrate loads the schema
        if load_state; then # stopped (a reboot, say): start them again as they were
            { pg_up || pg_start; } && { rabbit_up || rabbit_start; } || exit 1
        else
            rm -rf "$DIR"
            servers_start "$DIR" || exit 1
            save_state
            if ! { servers_load_schema && servers_load_samples; }; then
                echo "servers: loading the schema failed" >&2
                exit 1
            fi
        fi
        echo "servers: RabbitMQ on 127.0.0.1:$RABBIT_PORT, PostgreSQL on 127.0.0.1:$PG_PORT; data in $DIR" >&2
    fi
    echo "# use them in this shell:  eval \"\$(scripts/servers.sh env)\"" >&2
    print_env
    ;;
env)
    load_state || { echo "servers: not set up; run: scripts/servers.sh up" >&2; exit 1; }
    print_env
    ;;
status)
    if ! load_state; then
        echo "servers: not set up (scripts/servers.sh up)"
        exit 3
    fi
    up=0
    if rabbit_up; then
        echo "RabbitMQ   up    127.0.0.1:$RABBIT_PORT  pid $(rabbit_vm_pid)  node $RABBIT_NODE"
    else
        echo "RabbitMQ   down"
        up=3
    fi
    if pg_up; then
        echo "PostgreSQL up    127.0.0.1:$PG_PORT  pid $PG_PID  socket $PG_SOCKET"
    else
        echo "PostgreSQL down"
        up=3
    fi
    echo "data       $DIR"
    exit $up
    ;;
down)
    if load_state; then
        servers_stop
        echo "servers: stopped; removed $DIR" >&2
    else
        echo "servers: nothing to stop" >&2
    fi
    rm -rf "$DIR" "$ROOT/.run/servers.dir"
    ;;
*)
    sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
