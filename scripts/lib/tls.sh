# tls.sh - throwaway certificates and the servers' TLS settings, for the
# TLS tests and the benchmark.  Sourced after servers.sh:
#
#     . scripts/lib/servers.sh
#     . scripts/lib/tls.sh
#     tls_ca "$certs" ca && tls_sign "$certs" server ca /CN=localhost server
#     tls_servers "$certs" "$rabbit_dir" "$pg_dir"   # sets the servers.sh hooks
#     servers_start "$dir"
#     AMQP_URL=$(tls_amqp_url) DATABASE_URL=$(tls_database_url) ...
#
# The certificates are EC P-256, made with openssl, valid two days: for a
# test run, never for a real deployment.

# _tls_cnf CERTS: the openssl ca configuration; one CA_<name> section per
# CA (ca, wrong-ca), and the extensions a certificate can be signed with:
# server (localhost and 127.0.0.1), other_host, client.
_tls_cnf() {
    local certs=$1 ca
    for ca in ca wrong-ca; do
        cat <<CNF
[ CA_$ca ]
database = $certs/$ca.db/index.txt
serial = $certs/$ca.db/serial
new_certs_dir = $certs/$ca.db
certificate = $certs/$ca.pem
private_key = $certs/$ca.key
default_md = sha256
policy = any
unique_subject = no
CNF
    done
    cat <<'CNF'
[ ca ]
default_ca = CA_ca
[ any ]
commonName = supplied
[ server ]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[ other_host ]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[ client ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
CNF
}

# tls_ca CERTS NAME: a self-signed CA, CERTS/NAME.pem and CERTS/NAME.key
# (NAME: ca or wrong-ca).
tls_ca() {
    local certs=$1 name=$2
    mkdir -p "$certs/$name.db" && : >"$certs/$name.db/index.txt" && echo 1000 >"$certs/$name.db/serial" &&
        _tls_cnf "$certs" >"$certs/ca.cnf" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout "$certs/$name.key" -out "$certs/$name.pem" -subj "/CN=greet $name (throwaway)" \
            2>"$certs/openssl.err" || { cat "$certs/openssl.err" >&2; return 1; }
}

# tls_sign CERTS NAME CA SUBJECT EXTENSIONS [openssl ca dates...]:
# CERTS/NAME.key and CERTS/NAME.pem, signed by CA with the extensions
# section named.  openssl ca rather than openssl x509: OpenSSL 3.0's x509
# cannot set a start date, and an expired certificate needs one in the past.
tls_sign() {
    local certs=$1 name=$2 ca=$3 subject=$4 ext=$5
    shift 5
    [ $# -gt 0 ] || set -- -days 2
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$certs/$name.key" -out "$certs/$name.csr" -subj "$subject" 2>"$certs/openssl.err" &&
        openssl ca -batch -notext -config "$certs/ca.cnf" -name "CA_$ca" -extensions "$ext" "$@" \
            -in "$certs/$name.csr" -out "$certs/$name.pem" 2>"$certs/openssl.err" ||
        { cat "$certs/openssl.err" >&2; return 1; }
}

# tls_servers CERTS RABBIT-DIR PG-DIR: copies the CA and the server
# certificate into a directory for each server (PostgreSQL wants its key
# owned by its own user, mode 0600) and sets the servers.sh hooks for a
# RabbitMQ TLS listener on a free port (TLS_PORT) and PostgreSQL with
# ssl=on.  Call after servers_prepare_dir, before pg_start/rabbit_start;
# a caller may add to RABBIT_EXTRA_CONF and RABBIT_PLUGINS.
tls_servers() {
    local certs=$1 rabbit=$2 pg=$3
    mkdir -p "$rabbit" "$pg" &&
        cp "$certs/ca.pem" "$certs/server.pem" "$certs/server.key" "$rabbit/" &&
        cp "$certs/ca.pem" "$certs/server.pem" "$certs/server.key" "$pg/" &&
        chmod 600 "$pg/server.key" || return 1
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$pg" || return 1; fi
    TLS_PORT=$(free_port) || return 1
    TLS_CA=$certs/ca.pem
    RABBIT_EXTRA_CONF="listeners.ssl.1 = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $rabbit/ca.pem
ssl_options.certfile = $rabbit/server.pem
ssl_options.keyfile = $rabbit/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false"
    PG_EXTRA_OPTS="-c ssl=on -c ssl_cert_file=$pg/server.pem -c ssl_key_file=$pg/server.key -c ssl_ca_file=$pg/ca.pem"
}

# The URLs of the started servers: over TLS, verified (the certificate is
# for localhost), and the same servers over plain loopback TCP.
tls_amqp_url() { echo "amqps://guest:guest@localhost:$TLS_PORT/"; }
tls_database_url() {
    echo "postgresql://greet_worker@localhost:$PG_PORT/greet?sslmode=verify-full&sslrootcert=$TLS_CA"
}
tcp_amqp_url() { echo "amqp://guest:guest@127.0.0.1:$RABBIT_PORT/"; }
tcp_database_url() { echo "postgresql://greet_worker@127.0.0.1:$PG_PORT/greet?sslmode=disable"; }
