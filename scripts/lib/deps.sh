# deps.sh - make sure the Debian packages the project needs are installed.
# Sourced.  As root it installs what is missing (apt-get update first);
# otherwise it prints the exact command and fails.

GREET_BUILD_PACKAGES="gcc libc6-dev make pkg-config librabbitmq-dev libjansson-dev libpq-dev libmicrohttpd-dev libjwt-dev"
GREET_SERVER_PACKAGES="rabbitmq-server postgresql"
# clang and libclang-rt-14-dev (which clang only recommends) for the
# libFuzzer targets: -fsanitize=fuzzer links compiler-rt's libFuzzer.
GREET_TEST_PACKAGES="check jq openssl docker-compose prometheus curl python3-yaml python3-pika systemd clang libclang-rt-14-dev"

deps_missing() {
    local pkg missing=""
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $pkg"
        fi
    done
    echo "${missing# }"
}

# deps_ensure PACKAGE...
deps_ensure() {
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "greet: not a Debian system; install the equivalents of: $*" >&2
        return 0
    fi
    missing=$(deps_missing "$@")
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "greet: missing Debian packages: $missing" >&2
        echo "greet: install them with: sudo apt-get update && sudo apt-get install -y $missing" >&2
        return 1
    fi
    local log
    log=$(mktemp /tmp/greet-apt.XXXXXX.log)
    echo "greet: installing missing Debian packages: $missing (apt output in $log)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d-less containers would start the system services; ours run
    # in a scratch dir instead, so keep the packaged ones from starting.
    local policy=/usr/sbin/policy-rc.d created_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    apt-get update -q >"$log" 2>&1 && apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1
    local status=$?
    [ -n "$created_policy" ] && rm -f "$policy"
    if [ $status != 0 ]; then
        tail -n 20 "$log" >&2
        echo "greet: apt-get failed (exit $status); the whole output is in $log" >&2
    else
        rm -f "$log"
        echo "greet: installed $missing" >&2
    fi
    return $status
}
