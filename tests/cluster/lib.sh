# lib.sh - a three-node RabbitMQ cluster and a PostgreSQL 15 primary with a
# streaming hot standby, all on loopback, in one scratch dir.  Sourced by
# the cluster fault suite (tests/cluster/run.sh) and tests/cluster/smoke.sh:
#
#     . tests/cluster/lib.sh       # sources scripts/lib/servers.sh if needed
#     cluster_start "$dir"         # exports AMQP_URL (= AMQP_URLS_LIST, the
#                                  # three nodes), DATABASE_URL (primary and
#                                  # standby), CLUSTER_*, PG_*
#     cluster_node_kill 2          # kill -9 of node 2's VM
#     cluster_node_start 2         # back, rejoined, the cluster whole again
#     cluster_leader_of greet.jobs # the node number leading a quorum queue
#     cluster_pg_stop_primary; cluster_pg_promote_standby
#     cluster_stop                 # exactly what cluster_start started
#
# Only processes this file started are ever signalled, by their PID (epmd,
# a daemon of our own on a port of our own, is asked to end with
# `epmd -port N -kill`).  servers.sh gives free_port, _port_free,
# _as_postgres, PG_BIN, RABBIT_BIN, psql_ and servers_load_schema.
#
# Nodes are numbered 1..CLUSTER_NODES.  Layout of the dir:
#     home/.erlang.cookie   the one cookie (HOME of every node and CLI)
#     nN/                   node N: rabbitmq.conf, enabled_plugins, pid,
#                           mnesia/, log/, server.out, *.out of the CLI
#     pg1/, pg2/            primary, standby: data/, sock/, server.log

if ! declare -F free_port >/dev/null; then
    . "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/lib/servers.sh"
fi

CLUSTER_NODES=3
# Never inherited: a script started by one that runs a cluster must not
# stop that cluster from its own EXIT trap.
CLUSTER_DIR=""
CLUSTER_EPMD_PORT=""
CLUSTER_NODE=()      # [N] node name, greetN@localhost
CLUSTER_PORT=()      # [N] AMQP port
CLUSTER_DIST_PORT=() # [N] Erlang distribution port (the server's alone)
CLUSTER_LAUNCHER=()  # [N] PID of the launcher script (our child)
CLUSTER_WAITERS=()   # subshells waiting for nodes to boot, while they do

# cluster_pid_running PID: PID exists and is not a zombie (a daemonized
# postmaster is reaped by init, maybe late; kill -0 still finds it).
cluster_pid_running() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ]
}

# ---- RabbitMQ ---------------------------------------------------------------

# _cluster_env N CMD...: the environment node N's server and its CLI share.
# The shared HOME holds the one Erlang cookie; ERL_EPMD_PORT is our epmd.
# RABBITMQ_DIST_PORT is the server's alone: given to the CLI, the CLI would
# take that port and the server would die at start.
_cluster_env() {
    local n=$1
    shift
    env -u RABBITMQ_DIST_PORT \
        HOME="$CLUSTER_DIR/home" \
        RABBITMQ_MNESIA_BASE="$CLUSTER_DIR/n$n/mnesia" \
        RABBITMQ_LOG_BASE="$CLUSTER_DIR/n$n/log" \
        RABBITMQ_NODENAME="${CLUSTER_NODE[$n]}" \
        RABBITMQ_CONFIG_FILE="$CLUSTER_DIR/n$n/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$CLUSTER_DIR/n$n/enabled_plugins" \
        RABBITMQ_PID_FILE="$CLUSTER_DIR/n$n/pid" \
        ERL_EPMD_PORT="$CLUSTER_EPMD_PORT" \
        RABBITMQ_NODE_PORT="${CLUSTER_PORT[$n]}" \
        "$@"
}

# cluster_ctl N [timeout SECONDS] ARGS...: rabbitmqctl against node N.
cluster_ctl() {
    local n=$1 limit=60
    shift
    if [ "${1:-}" = timeout ]; then
        limit=$2
        shift 2
    fi
    _cluster_env "$n" timeout "$limit" "$RABBIT_BIN/rabbitmqctl" -n "${CLUSTER_NODE[$n]}" "$@"
}

# cluster_vm_pid N: node N's Erlang VM, as its pid file says.
cluster_vm_pid() {
    cat "$CLUSTER_DIR/n$1/pid" 2>/dev/null
}

# cluster_node_alive N: node N's VM runs (says nothing of its broker app).
cluster_node_alive() {
    local pid
    pid=$(cluster_vm_pid "$1")
    [ -n "$pid" ] && cluster_pid_running "$pid"
}

_cluster_write_config() {
    local n=$1
    mkdir -p "$CLUSTER_DIR/n$n/mnesia" "$CLUSTER_DIR/n$n/log"
    cat >"$CLUSTER_DIR/n$n/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:${CLUSTER_PORT[$n]}
loopback_users = none
log.console = false
log.file.level = warning
CONF
    echo '[].' >"$CLUSTER_DIR/n$n/enabled_plugins"
}

# _cluster_launch N: starts node N's server in the background, not waiting.
# (Three VMs on two cores: RabbitMQ's defaults already keep the schedulers
# from busy-waiting, +sbwt none.)
_cluster_launch() {
    local n=$1
    rm -f "$CLUSTER_DIR/n$n/pid" # a stale one would fool `rabbitmqctl wait`
    _cluster_env "$n" RABBITMQ_DIST_PORT="${CLUSTER_DIST_PORT[$n]}" \
        setsid "$RABBIT_BIN/rabbitmq-server" >>"$CLUSTER_DIR/n$n/server.out" 2>&1 </dev/null &
    CLUSTER_LAUNCHER[$n]=$!
}

# _cluster_wait N: until node N's broker application runs.
_cluster_wait() {
    local n=$1
    if ! cluster_ctl "$n" timeout 120 wait "$CLUSTER_DIR/n$n/pid" >>"$CLUSTER_DIR/n$n/wait.out" 2>&1; then
        echo "cluster: node $n (${CLUSTER_NODE[$n]}) did not start; see $CLUSTER_DIR/n$n/" >&2
        tail -n 20 "$CLUSTER_DIR/n$n/server.out" >&2
        return 1
    fi
}

# _cluster_join N: node N (running alone) joins node 1's cluster.
_cluster_join() {
    local n=$1
    local out="$CLUSTER_DIR/n$n/join.out"
    cluster_ctl "$n" timeout 60 stop_app >>"$out" 2>&1 &&
        cluster_ctl "$n" timeout 60 join_cluster "${CLUSTER_NODE[1]}" >>"$out" 2>&1 &&
        cluster_ctl "$n" timeout 120 start_app >>"$out" 2>&1 || {
        echo "cluster: node $n did not join ${CLUSTER_NODE[1]}; see $out" >&2
        tail -n 10 "$out" >&2
        return 1
    }
}

# cluster_running_nodes [FROM]: how many nodes `cluster_status` on node
# FROM (default: the first whose VM runs) lists as running.
cluster_running_nodes() {
    local from=${1:-} n
    if [ -z "$from" ]; then
        for n in $(seq 1 "$CLUSTER_NODES"); do
            cluster_node_alive "$n" && from=$n && break
        done
    fi
    local count=""
    [ -n "$from" ] &&
        count=$(cluster_ctl "$from" timeout 30 cluster_status --formatter json 2>/dev/null |
            jq -r '.running_nodes | length' 2>/dev/null)
    echo "${count:-0}"
}

# cluster_wait_running COUNT [FROM] [SECONDS]: until node FROM sees COUNT
# nodes running.
cluster_wait_running() {
    local want=$1 from=${2:-} limit=${3:-60} start=$SECONDS
    until [ "$(cluster_running_nodes "$from")" = "$want" ]; do
        [ $((SECONDS - start)) -ge "$limit" ] && return 1
        sleep 0.5
    done
}

# The RabbitMQ cluster, in two halves so that PostgreSQL is set up while
# the nodes boot (cluster_start calls both, once the ports are chosen):
# _cluster_rabbit_launch: the cookie, epmd, three nodes launched at once;
# _cluster_rabbit_form: waits for the three, joins nodes 2 and 3 to node 1
# (stop_app, join_cluster, start_app), until node 1 sees three running.
_cluster_rabbit_launch() {
    local n
    mkdir -p "$CLUSTER_DIR/home"
    # One cookie, before any node or CLI starts (each would make its own).
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' >"$CLUSTER_DIR/home/.erlang.cookie")
    chmod 600 "$CLUSTER_DIR/home/.erlang.cookie"
    # Our own epmd, loopback only: a node started alone would start one,
    # three at once would race for it.
    ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$CLUSTER_EPMD_PORT" -daemon || return 1
    for _ in $(seq 1 50); do
        _port_free "$CLUSTER_EPMD_PORT" || break
        sleep 0.1
    done
    for n in $(seq 1 "$CLUSTER_NODES"); do
        _cluster_write_config "$n"
        _cluster_launch "$n"
    done
}

_cluster_rabbit_form() {
    local n status=0
    # Each wait is a CLI VM of its own: side by side.
    CLUSTER_WAITERS=()
    for n in $(seq 1 "$CLUSTER_NODES"); do
        _cluster_wait "$n" 2>"$CLUSTER_DIR/n$n/wait.err" &
        CLUSTER_WAITERS+=($!)
    done
    for n in "${CLUSTER_WAITERS[@]}"; do
        wait "$n" || status=1
    done
    CLUSTER_WAITERS=()
    [ $status = 0 ] || {
        cat "$CLUSTER_DIR"/n*/wait.err >&2
        return 1
    }
    # One join at a time: two schema changes at once on node 1 is asking
    # for trouble, and a join is quick.
    for n in $(seq 2 "$CLUSTER_NODES"); do
        _cluster_join "$n" || return 1
    done
    if ! cluster_wait_running "$CLUSTER_NODES" 1 30; then
        echo "cluster: node 1 does not see $CLUSTER_NODES running nodes" >&2
        cluster_ctl 1 timeout 30 cluster_status >&2
        return 1
    fi
}

# cluster_node_kill N: kill -9 of node N's VM and, in the same breath, of
# its children (erl_child_setup, inet_gethost: they would end with it
# anyway); its launcher script then ends.  The pid file goes: a stale PID
# must never be signalled later.
cluster_node_kill() {
    local n=$1 pid
    pid=$(cluster_vm_pid "$n")
    [ -n "$pid" ] || return 1
    if cluster_pid_running "$pid"; then
        # shellcheck disable=SC2046
        kill -KILL "$pid" $(ps -o pid= --ppid "$pid" 2>/dev/null) 2>/dev/null
        while cluster_pid_running "$pid"; do sleep 0.05; done
    fi
    rm -f "$CLUSTER_DIR/n$n/pid"
    _cluster_reap "$n"
    return 0
}

# _cluster_reap N: node N's launcher script, once its VM is gone.
_cluster_reap() {
    local l=${CLUSTER_LAUNCHER[$1]:-} i
    [ -n "$l" ] || return 0
    for i in $(seq 1 50); do
        cluster_pid_running "$l" || break
        sleep 0.1
    done
    cluster_pid_running "$l" && kill -KILL "$l" 2>/dev/null
    wait "$l" 2>/dev/null
    CLUSTER_LAUNCHER[$1]=""
}

# cluster_node_stop N: a graceful stop (`rabbitmqctl stop` waits for the VM
# to end); kill -9 if that fails.
cluster_node_stop() {
    local n=$1
    cluster_node_alive "$n" || return 0
    cluster_ctl "$n" timeout 90 stop "$CLUSTER_DIR/n$n/pid" >>"$CLUSTER_DIR/n$n/stop.out" 2>&1 ||
        cluster_node_kill "$n"
    cluster_node_alive "$n" || rm -f "$CLUSTER_DIR/n$n/pid"
    _cluster_reap "$n"
    return 0
}

# cluster_node_term N: a graceful stop of node N at once: SIGTERM to its
# VM, which RabbitMQ takes as "stop" (closing client connections with
# CONNECTION_FORCED), without the seconds a CLI VM takes to boot first.
cluster_node_term() {
    local n=$1 pid waited=0
    pid=$(cluster_vm_pid "$n")
    [ -n "$pid" ] && cluster_pid_running "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    while cluster_pid_running "$pid" && [ $waited -lt 600 ]; do
        sleep 0.05
        waited=$((waited + 1))
    done
    cluster_pid_running "$pid" && cluster_node_kill "$n"
    rm -f "$CLUSTER_DIR/n$n/pid"
    _cluster_reap "$n"
    return 0
}

# cluster_node_start N: node N started again (same name, ports, cookie and
# data: a member already, it rejoins by itself); returns once its broker
# runs and it sees every node running.
cluster_node_start() {
    local n=$1
    cluster_node_alive "$n" && return 0
    _cluster_reap "$n"
    _cluster_launch "$n"
    _cluster_wait "$n" || return 1
    cluster_wait_running "$CLUSTER_NODES" "$n" 60 || {
        echo "cluster: node $n is back but does not see $CLUSTER_NODES running nodes" >&2
        return 1
    }
}

# cluster_node_of NAME: the number of the node named NAME (greet2@localhost).
cluster_node_of() {
    local n
    for n in $(seq 1 "$CLUSTER_NODES"); do
        [ "${CLUSTER_NODE[$n]}" = "$1" ] && echo "$n" && return 0
    done
    return 1
}

# _cluster_queue_info QUEUE ITEM: ITEM of QUEUE (list_queues) as the first
# live node tells.
_cluster_queue_info() {
    local n
    for n in $(seq 1 "$CLUSTER_NODES"); do
        cluster_node_alive "$n" || continue
        cluster_ctl "$n" timeout 30 list_queues -q --no-table-headers name "$2" 2>/dev/null |
            awk -F '\t' -v q="$1" '$1 == q { print $2; found = 1 } END { exit !found }' && return 0
    done
    return 1
}

# cluster_leader_of QUEUE: the number of the node leading the quorum queue
# QUEUE.
cluster_leader_of() {
    local leader
    leader=$(_cluster_queue_info "$1" leader) || return 1
    cluster_node_of "$leader"
}

# cluster_members_of QUEUE: how many nodes hold a member of QUEUE.
cluster_members_of() {
    _cluster_queue_info "$1" members | grep -o '@' | wc -l
}

# ---- PostgreSQL: a primary and a streaming hot standby ---------------------

# _cluster_pg_start NAME: starts pg1 (primary) or pg2 (standby); its port
# and socket dir are in its postgresql.conf.
_cluster_pg_start() {
    local dir="$CLUSTER_DIR/$1"
    _as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        >"$dir/start.out" 2>&1 || {
        echo "cluster: PostgreSQL $1 did not start; see $dir/" >&2
        tail -n 20 "$dir/server.log" >&2
        return 1
    }
}

# _cluster_pg_stop NAME: a fast stop, kill -9 of the postmaster if that fails.
_cluster_pg_stop() {
    local dir="$CLUSTER_DIR/$1" pid i
    [ -e "$dir/data/postmaster.pid" ] || return 0
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null
    _as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1
    [ -n "$pid" ] || return 0
    # pg_ctl returns once the pid file is gone, a moment before the
    # postmaster has exited.
    for i in $(seq 1 50); do
        cluster_pid_running "$pid" || break
        sleep 0.1
    done
    if cluster_pid_running "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        rm -f "$dir/data/postmaster.pid"
    fi
    return 0
}

# cluster_pg_sql PORT SQL: one value from the greet database on PORT (TCP).
cluster_pg_sql() {
    psql -X -A -t -q -h 127.0.0.1 -p "$1" -U postgres -d greet -c "$2" 2>/dev/null
}

# cluster_pg_in_recovery PORT: "t" on a standby, "f" on a primary.
cluster_pg_in_recovery() {
    cluster_pg_sql "$1" "SELECT pg_is_in_recovery()"
}

# cluster_pg_streaming: how many standbys stream from the primary.
cluster_pg_streaming() {
    cluster_pg_sql "$PG_PRIMARY_PORT" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
}

# _cluster_pg_admin PORT NAME: psql_, servers_load_schema and the admin URL
# go to the server on PORT (its socket dir in NAME).
_cluster_pg_admin() {
    export PGHOST="$CLUSTER_DIR/$2/sock" PGPORT="$1" PGUSER=postgres
    export GREET_ADMIN_DATABASE_URL="postgresql://postgres@127.0.0.1:$1/greet"
}

_cluster_pg_setup() {
    local primary="$CLUSTER_DIR/pg1" standby="$CLUSTER_DIR/pg2" start
    mkdir -p "$primary/data" "$primary/sock" "$standby/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres "$primary" "$standby"
    _as_postgres "$PG_BIN/initdb" -D "$primary/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
        >"$primary/initdb.out" 2>&1 || {
        echo "cluster: initdb failed; see $primary/initdb.out" >&2
        return 1
    }
    # Throwaway data: no fsync.  Trust on the socket and loopback, for
    # replication too (pg_basebackup copies both files to the standby).
    _as_postgres tee -a "$primary/data/postgresql.conf" >/dev/null <<CONF
# cluster lib
listen_addresses = '127.0.0.1'
port = $PG_PRIMARY_PORT
unix_socket_directories = '$primary/sock'
max_connections = 200
fsync = off
wal_level = replica
max_wal_senders = 10
wal_keep_size = 128MB
hot_standby = on
CONF
    _as_postgres tee "$primary/data/pg_hba.conf" >/dev/null <<HBA
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
HBA
    _cluster_pg_start pg1 || return 1
    _cluster_pg_admin "$PG_PRIMARY_PORT" pg1
    servers_load_schema && servers_load_samples || {
        echo "cluster: the schema did not load on the primary" >&2
        return 1
    }
    # The standby: a base backup that streams from the primary (-R writes
    # primary_conninfo and standby.signal); its own port and socket dir.
    _as_postgres "$PG_BIN/pg_basebackup" -D "$standby/data" -h 127.0.0.1 -p "$PG_PRIMARY_PORT" \
        -U postgres -X stream -R -c fast >"$standby/basebackup.out" 2>&1 || {
        echo "cluster: pg_basebackup failed; see $standby/basebackup.out" >&2
        return 1
    }
    _as_postgres tee -a "$standby/data/postgresql.conf" >/dev/null <<CONF
# cluster lib: the standby
port = $PG_STANDBY_PORT
unix_socket_directories = '$standby/sock'
CONF
    _cluster_pg_start pg2 || return 1
    start=$SECONDS
    until [ "$(cluster_pg_streaming)" = 1 ] &&
        [ "$(cluster_pg_in_recovery "$PG_STANDBY_PORT")" = t ] &&
        [ "$(cluster_pg_sql "$PG_STANDBY_PORT" "SELECT count(*) > 0 FROM greeting_templates")" = t ]; do
        [ $((SECONDS - start)) -ge 30 ] && {
            echo "cluster: the standby does not stream or lacks the schema; see $standby/server.log" >&2
            return 1
        }
        sleep 0.2
    done
    # The workers only read: any server will do (target_session_attrs=any),
    # a standby included, so a lost primary costs no wait for a promotion.
    export DATABASE_URL="postgresql://greet_worker@127.0.0.1:$PG_PRIMARY_PORT,127.0.0.1:$PG_STANDBY_PORT/greet?target_session_attrs=any&connect_timeout=2"
}

# cluster_pg_stop_primary: a fast stop of the primary.
cluster_pg_stop_primary() {
    _cluster_pg_stop pg1
}

# cluster_pg_promote_standby: the standby promoted; returns once it takes
# writes (pg_is_in_recovery() false).  psql_, PGHOST/PGPORT and
# GREET_ADMIN_DATABASE_URL follow it.
cluster_pg_promote_standby() {
    local start=$SECONDS
    _as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/pg2/data" -w -t 60 promote \
        >"$CLUSTER_DIR/pg2/promote.out" 2>&1 || return 1
    until [ "$(cluster_pg_in_recovery "$PG_STANDBY_PORT")" = f ]; do
        [ $((SECONDS - start)) -ge 30 ] && return 1
        sleep 0.1
    done
    _cluster_pg_admin "$PG_STANDBY_PORT" pg2
}

# ---- the whole ----------------------------------------------------------------

# cluster_start DIR: everything, in DIR (created; its parents must be
# searchable by the postgres user).  Exports:
#   AMQP_URLS_LIST, AMQP_URL   amqp://guest:guest@127.0.0.1:P1/,...P2/,...P3/
#   CLUSTER_NODE_1..3          greet1@localhost ...
#   CLUSTER_PORT_1..3          the AMQP ports (also the arrays CLUSTER_NODE,
#                              CLUSTER_PORT, CLUSTER_DIST_PORT, [1..3])
#   CLUSTER_EPMD_PORT          (CLUSTER_DIR is set, not exported)
#   DATABASE_URL               greet_worker on primary,standby (libpq multi-host)
#   PG_PRIMARY_PORT, PG_STANDBY_PORT
#   GREET_ADMIN_DATABASE_URL   postgres on the primary; PGHOST, PGPORT, PGUSER
#                              (socket) likewise, for psql_ and psql
cluster_start() {
    local SERVERS_DIR=$1 n # free_port keeps its ports in SERVERS_DIR/ports
    CLUSTER_DIR=$1
    servers_prepare_dir "$CLUSTER_DIR" || return 1
    CLUSTER_EPMD_PORT=$(free_port) || return 1
    for n in $(seq 1 "$CLUSTER_NODES"); do
        CLUSTER_NODE[$n]="greet$n@localhost"
        CLUSTER_PORT[$n]=$(free_port) || return 1
        CLUSTER_DIST_PORT[$n]=$(free_port) || return 1
    done
    PG_PRIMARY_PORT=$(free_port) || return 1
    PG_STANDBY_PORT=$(free_port) || return 1
    export CLUSTER_EPMD_PORT PG_PRIMARY_PORT PG_STANDBY_PORT
    # The nodes boot while PostgreSQL is set up.
    _cluster_rabbit_launch || return 1
    _cluster_pg_setup || return 1
    _cluster_rabbit_form || return 1
    AMQP_URLS_LIST=""
    for n in $(seq 1 "$CLUSTER_NODES"); do
        AMQP_URLS_LIST+="${AMQP_URLS_LIST:+,}amqp://guest:guest@127.0.0.1:${CLUSTER_PORT[$n]}/"
        export "CLUSTER_NODE_$n=${CLUSTER_NODE[$n]}" "CLUSTER_PORT_$n=${CLUSTER_PORT[$n]}"
    done
    export AMQP_URLS_LIST AMQP_URL=$AMQP_URLS_LIST
}

# cluster_stop: stops what cluster_start started: every node still running
# (SIGTERM to each VM at once, kill -9 after 30 s), then epmd (it would not
# end while a node is registered), then standby and primary.  Safe to call
# twice, from an EXIT trap, after a partial start, with nodes already dead.
cluster_stop() {
    local n pid pids=() i
    [ -n "$CLUSTER_DIR" ] || return 0
    # Interrupted while waiting for the nodes to boot: those waits (each a
    # subshell running timeout, running the CLI) end first; the subshell
    # ends once its timeout has.
    for pid in "${CLUSTER_WAITERS[@]}"; do
        for i in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
            kill -TERM "$i" 2>/dev/null
        done
    done
    for pid in "${CLUSTER_WAITERS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    CLUSTER_WAITERS=()
    for n in $(seq 1 "$CLUSTER_NODES"); do
        pid=$(cluster_vm_pid "$n")
        if [ -n "$pid" ] && cluster_pid_running "$pid"; then
            kill -CONT "$pid" 2>/dev/null
            kill -TERM "$pid" 2>/dev/null
            pids+=("$n:$pid")
        fi
    done
    for i in "${pids[@]}"; do
        n=${i%%:*} pid=${i#*:}
        for _ in $(seq 1 300); do
            cluster_pid_running "$pid" || break
            sleep 0.1
        done
        cluster_pid_running "$pid" && cluster_node_kill "$n"
    done
    for n in $(seq 1 "$CLUSTER_NODES"); do
        _cluster_reap "$n"
        rm -f "$CLUSTER_DIR/n$n/pid"
    done
    if [ -n "$CLUSTER_EPMD_PORT" ]; then
        for _ in $(seq 1 50); do
            _port_free "$CLUSTER_EPMD_PORT" && break
            ERL_EPMD_PORT=$CLUSTER_EPMD_PORT epmd -port "$CLUSTER_EPMD_PORT" -kill >/dev/null 2>&1
            sleep 0.1
        done
    fi
    _cluster_pg_stop pg2
    _cluster_pg_stop pg1
    CLUSTER_DIR=""
}
