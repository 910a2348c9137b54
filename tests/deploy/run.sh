#!/usr/bin/env bash
# The deployment files, checked offline in seconds: the systemd unit
# (deploy/systemd), the Kubernetes manifests (deploy/kubernetes), the
# compose file with the secrets scripts/compose-secrets.sh makes for it (in
# a scratch copy), and the Dockerfile, against each other and against what
# the programs and the Makefile say (greet-worker --help, make -n install).
# No Docker engine, no cluster, no network, no root beyond what is
# installed.  Then copies broken on purpose, one fault each, must fail the
# check that covers it.
#
#     tests/deploy/run.sh           (after make all: reads bin/)
#
# Needs python3 with PyYAML (Debian's python3-yaml), docker-compose, and
# for some checks systemd-analyze (systemd), kubectl (kustomize), dpkg and
# objdump (binutils); a missing tool's checks are skipped, and say so.
# shellcheck disable=SC2016 # sed scripts: $ is sed's, not the shell's
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
BIN=$(cd "$BIN" 2>/dev/null && pwd || echo "$BIN") # absolute: it becomes a unit's ExecStart
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-deploy.XXXXXX") || {
    echo "not ok - a scratch directory (set TMPDIR to a writable one)"
    echo "0 passed, 1 failed"
    exit 1
}
trap 'finish_workdir "$WORK"' EXIT
trap 'exit 130' INT TERM

# A python3 that has PyYAML: Debian's (python3-yaml) before any other.
PYTHON=
for candidate in /usr/bin/python3 python3; do
    if "$candidate" -c 'import yaml' 2>/dev/null; then
        PYTHON=$candidate
        break
    fi
done
have() { command -v "$1" >/dev/null 2>&1; }

# c CHECK [ROOT [CONFIG]]: one check of checks.py, on the tree ROOT.
c() {
    "$PYTHON" "$ROOT/tests/deploy/checks.py" "$1" "${2:-$ROOT}" ${3:+"$3"}
}

echo "# facts from the programs and the Makefile"
[ -x "$BIN/greet-worker" ]
_record $? "greet-worker is built in $BIN (make all)"
HELP=$("$BIN/greet-worker" --help 2>&1)
help_default() { # help_default VAR: the "(default X)" of the option reading VAR
    sed -n "s/.*\[$1\] (default \([^)]*\)).*/\1/p" <<<"$HELP" | head -n 1
}
export GREET_SHUTDOWN_DEFAULT GREET_JOBS_QUEUE_DEFAULT GREET_WORKER_VARS GREET_PREFIX \
    GREET_SOURCE_DIRS GREET_BUILD_PACKAGES GREET_RUNTIME_PACKAGES
GREET_SHUTDOWN_DEFAULT=$(help_default GREET_SHUTDOWN_TIMEOUT)
GREET_JOBS_QUEUE_DEFAULT=$(help_default GREET_JOBS_QUEUE)
# "[VAR]", or for a secret "[VAR, or a file named by VAR_FILE]": both read.
GREET_WORKER_VARS=$(grep -oE '\[[A-Z][A-Z0-9_]*(, or a file named by [A-Z][A-Z0-9_]*)?\]' <<<"$HELP" |
    grep -oE '[A-Z][A-Z0-9_]{2,}' | sort -u | tr '\n' ' ')
check_match "greet-worker --help: default shutdown deadline (seconds) and jobs queue" \
    "$GREET_SHUTDOWN_DEFAULT $GREET_JOBS_QUEUE_DEFAULT" '^[0-9]+ [^ ]+$'
[ -n "$PYTHON" ]
_record $? "python3 with PyYAML (Debian: python3-yaml)"
[ -n "$PYTHON" ] || {
    tests_summary
    exit 1
}

GREET_PREFIX=$(make -s -C "$ROOT" -pn help 2>/dev/null | sed -n 's/^PREFIX = //p' | tail -n 1)
check_match "Makefile: PREFIX" "$GREET_PREFIX" '^/'

# What make all install reads and writes, from its own commands (make -n
# -B: every command, run none): each relative path whose first component
# is a directory of the repository is a directory the image build needs;
# install -m 755 names the programs.
MAKE_N=$WORK/make-n.txt
make -C "$ROOT" -n -B install DESTDIR="$WORK/destdir" >"$MAKE_N" 2>"$WORK/make-n.err"
make_status=$?
SOURCE_DIRS=
PROGRAMS=
LINK_LIBS=
while read -r line; do
    set -f
    # shellcheck disable=SC2086 # words of a command line
    set -- $line
    set +f
    if [ "${1:-}" = install ] && [ "${2:-}" = -m ] && [ "${3:-}" = 755 ]; then
        shift 3
        while [ $# -gt 1 ]; do
            PROGRAMS+=" $1"
            shift
        done
        continue
    fi
    for word; do
        case $word in
        -l*) LINK_LIBS+=" ${word#-l}" ;;
        esac
        word=${word#-I}
        word=${word#./}
        case $word in /* | -* | '' | build/* | bin/*) continue ;; esac
        top=${word%%/*}
        [ "$top" != "$word" ] && [ -d "$ROOT/$top" ] && SOURCE_DIRS+=" $top"
    done
done <"$MAKE_N"
words() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -u | paste -s -d ' '; }
GREET_SOURCE_DIRS=$(words "$SOURCE_DIRS")
PROGRAMS=$(words "$PROGRAMS")
LINK_LIBS=$(words "$LINK_LIBS")
check_match "make -n install: source directories, programs, libraries (exit $make_status)" \
    "$make_status|$GREET_SOURCE_DIRS|$PROGRAMS|$LINK_LIBS" '^0\|.*common.*\|.*greet-worker.*\|.+'

# The Debian packages behind the libraries: -lX's libX.so (or .a) for the
# build stage, each program's DT_NEEDED sonames for the runtime stage.
# libc6 is in every Debian image.
deb_of() { # deb_of PATH: the package that ships PATH (usrmerge: /lib or /usr/lib)
    local p
    for p in "$1" "/usr${1#/usr}" "${1#/usr}"; do
        dpkg -S "$p" 2>/dev/null | sed -n '1s/[:,].*//p' | grep . && return 0
    done
    return 1
}
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig) # not in a user's PATH
if have dpkg && have objdump && [ -x "$LDCONFIG" ]; then
    GREET_BUILD_PACKAGES="gcc make"
    grep -q 'pkg-config' "$ROOT/Makefile" && GREET_BUILD_PACKAGES+=" pkg-config"
    unresolved=
    for lib in $LINK_LIBS; do
        pkg=
        for ext in so a; do
            path=$(${CC:-cc} -print-file-name="lib$lib.$ext")
            case $path in /*) pkg=$(deb_of "$(realpath -s "$path")") && break ;; esac
        done
        [ -n "$pkg" ] && GREET_BUILD_PACKAGES+=" $pkg" || unresolved+=" -l$lib"
    done
    GREET_RUNTIME_PACKAGES=
    for program in $PROGRAMS; do
        if [ ! -x "$ROOT/$program" ]; then
            unresolved+=" $program(not built: make all)"
            continue
        fi
        for soname in $(objdump -p "$ROOT/$program" | awk '$1 == "NEEDED" { print $2 }'); do
            case $soname in libasan* | libubsan* | liblsan* | libtsan*) continue ;; esac
            path=$("$LDCONFIG" -p | awk -v s="$soname" '$1 == s { print $NF; exit }')
            pkg=$([ -n "$path" ] && deb_of "$path")
            [ -n "$pkg" ] && GREET_RUNTIME_PACKAGES+=" $pkg" || unresolved+=" $soname"
        done
    done
    GREET_BUILD_PACKAGES=$(words "$GREET_BUILD_PACKAGES")
    GREET_RUNTIME_PACKAGES=$(words "$GREET_RUNTIME_PACKAGES" | tr ' ' '\n' | grep -vx libc6 | paste -s -d ' ')
    check_eq "libraries traced to Debian packages (build: $GREET_BUILD_PACKAGES; run: $GREET_RUNTIME_PACKAGES)" \
        "${unresolved:-none}" none
    HAVE_PACKAGES=1
else
    skip "libraries traced to Debian packages" "needs dpkg, objdump (binutils), ldconfig"
    HAVE_PACKAGES=
fi

# ---------------------------------------------------------------- systemd
echo "# systemd: deploy/systemd"

# verify_unit ROOT: systemd-analyze verify of instance 1, with ExecStart
# pointed at the built worker (verify checks that it is executable).  An
# unknown key or a bad value is only a warning to systemd: any line that
# names the unit fails the check.
verify_unit() {
    local dir out status
    dir=$(mktemp -d "$WORK/unit.XXXXXX")
    sed "s|^ExecStart=$GREET_PREFIX/bin/greet-worker|ExecStart=$BIN/greet-worker|" \
        "$1/deploy/systemd/greet-worker@.service" >"$dir/greet-worker@.service"
    out=$(systemd-analyze verify --man=no --generators=no "$dir/greet-worker@1.service" 2>&1)
    status=$?
    if [ $status != 0 ] || grep -q 'greet-worker' <<<"$out"; then
        echo "$out"
        return 1
    fi
}
# unit_exposure ROOT: systemd's own hardening score, offline; 0-100, where
# the unit's overall exposure 2.0 is 20 ("OK" goes up to 3.9).
unit_exposure() {
    local dir
    dir=$(mktemp -d "$WORK/unit.XXXXXX")
    sed "s|^ExecStart=$GREET_PREFIX/bin/greet-worker|ExecStart=$BIN/greet-worker|" \
        "$1/deploy/systemd/greet-worker@.service" >"$dir/greet-worker@.service"
    systemd-analyze security --offline=yes --man=no --threshold=20 "$dir/greet-worker@1.service" 2>&1 |
        grep -v '✓'
    return "${PIPESTATUS[0]}"
}
if have systemd-analyze; then
    check "systemd-analyze verify greet-worker@1.service: no error, no warning" verify_unit "$ROOT"
    check "systemd-analyze security --offline: exposure at most 2.0" unit_exposure "$ROOT"
else
    skip "systemd-analyze verify greet-worker@1.service" "systemd-analyze is not installed (Debian: systemd)"
    skip "systemd-analyze security --offline" "systemd-analyze is not installed (Debian: systemd)"
fi
check "unit: TimeoutStopSec above the shutdown deadline (--help: ${GREET_SHUTDOWN_DEFAULT:-?} s)" c unit-timeout
check "unit: SIGTERM, Restart=on-failure, shared + per-instance env files, ExecStart at PREFIX, hardening" \
    c unit-settings
check "worker.env.example: only variables the worker reads; no shared GREET_HTTP_ADDR" c env-example

# ---------------------------------------------------------------- Kubernetes
echo "# Kubernetes: deploy/kubernetes"
check "every YAML parses; apiVersion, kind, metadata.name in each" c k8s-parse
check "kustomization.yaml lists every manifest and only existing ones" c k8s-kustomization
check "Deployment: /healthz and /readyz probes on GREET_HTTP_ADDR's port (named), scrape annotations agree" \
    c k8s-probes
check "Deployment: terminationGracePeriodSeconds above the shutdown deadline" c k8s-grace
check "Deployment, Job: the image's numeric user, non-root, read-only root, no capabilities, memory bounds" \
    c k8s-security
check "URLs and passwords from read-only Secret volumes (*_FILE), keys defined, readable by the pod's user; placeholders" \
    c k8s-secret-refs
check "least-privilege users: workers and KEDA greet-worker/greet_worker; a Job runs greet-users, then declare as greet-admin" \
    c k8s-users
check "ScaledObject: the Deployment, rabbitmq on the worker's jobs queue (${GREET_JOBS_QUEUE_DEFAULT:-?}), QueueLength, auth from a Secret" \
    c k8s-scaledobject
check "migrate Job: greet-admin migrate, the workers' image, the owner's DATABASE_URL_FILE from its own Secret" c k8s-job
check "Deployment and Job images are the one kustomization.yaml sets" c k8s-images
kustomize_build() {
    kubectl kustomize "$ROOT/deploy/kubernetes" >"$WORK/kustomized.yaml" &&
        "$PYTHON" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
print(len(docs), "objects:", " ".join(kinds))
need = {"Deployment", "Job", "ScaledObject", "TriggerAuthentication", "Secret"}
sys.exit(0 if need <= set(kinds) else 1)' "$WORK/kustomized.yaml"
}
if have kubectl && kubectl kustomize --help >/dev/null 2>&1; then
    check "kubectl kustomize deploy/kubernetes builds every object" kustomize_build
else
    skip "kubectl kustomize deploy/kubernetes" "kubectl is not installed"
fi

# ---------------------------------------------------------------- compose
echo "# docker-compose.yml"
# copy_tree DIR: the deployment files (not the repository's own secrets/,
# if any) into DIR, the way compose and the image build see them.
copy_tree() {
    mkdir -p "$1/scripts" &&
        cp -r "$ROOT/deploy" "$ROOT/docker" "$ROOT/Dockerfile" "$ROOT/docker-compose.yml" "$1/" &&
        cp "$ROOT/scripts/compose-secrets.sh" "$1/scripts/" &&
        { [ ! -e "$ROOT/.dockerignore" ] || cp "$ROOT/.dockerignore" "$1/"; } &&
        touch "$1/.dockerignore"
}
# make_secrets ROOT: scripts/compose-secrets.sh of ROOT, into ROOT/secrets.
make_secrets() {
    "$1/scripts/compose-secrets.sh" "$1/secrets"
}
TREE=$WORK/tree
copy_tree "$TREE"
# secrets_script ROOT: ROOT's script makes the files (0644) in a 0700
# ROOT/secrets, says what it made, and a second run makes nothing and
# changes nothing.
secrets_script() {
    local dir=$1/secrets first second before after
    rm -rf "$dir"
    first=$(make_secrets "$1") || return 1
    echo "$first"
    [ "$(stat -c %a "$dir")" = 700 ] || {
        echo "secrets/ is mode $(stat -c %a "$dir"), expected 700"
        return 1
    }
    grep -q 'created .*/postgres-password' <<<"$first" || {
        echo "the first run says nothing of what it created"
        return 1
    }
    before=$(cd "$dir" && stat -c '%n %a' -- * && cat -- *)
    second=$(make_secrets "$1") || {
        echo "a second run failed (it must keep what exists, and agree with it)"
        return 1
    }
    after=$(cd "$dir" && stat -c '%n %a' -- * && cat -- *)
    if [ "$before" != "$after" ] || grep -q 'created /' <<<"$second"; then
        echo "a second run changed ./secrets/: $second"
        return 1
    fi
}
check "scripts/compose-secrets.sh: ./secrets/ (0700), its files (0644), passwords and URLs; idempotent" \
    secrets_script "$TREE"
# hand_written_password: a password written into its file by hand, with
# characters a URL gives a meaning (and UTF-8), comes back out of the URL
# built from it, percent-decoded, the same.
hand_written_password() {
    # shellcheck disable=SC1003 # a backslash ends it, no quote escaped
    local tree=$WORK/hand-tree pw='p@ss/w:rd%#?é x"\\'
    copy_tree "$tree" && mkdir -p "$tree/secrets" && chmod 700 "$tree/secrets" &&
        printf '%s\n' "$pw" >"$tree/secrets/greet-worker-amqp-password" &&
        printf '%s\n' "$pw" >"$tree/secrets/greet-worker-db-password" &&
        make_secrets "$tree" >/dev/null || return 1
    python3 - "$pw" "$tree/secrets/greet-worker-amqp-url" "$tree/secrets/greet-worker-db-url" <<'PY'
import sys, urllib.parse
pw = sys.argv[1]
for path in sys.argv[2:]:
    url = open(path).readline().rstrip("\n")
    parts = urllib.parse.urlsplit(url)
    got = urllib.parse.unquote(parts.password or "")
    if got != pw or parts.hostname not in ("rabbitmq", "postgres"):
        sys.exit(f"{path}: {url!r}: password {got!r}, host {parts.hostname!r}")
PY
}
check "compose-secrets.sh: a hand-written password is percent-encoded in the URLs" hand_written_password
# compose_config ROOT OUT: docker-compose config of ROOT's file, resolved, into OUT.
compose_config() {
    (cd "$1" && docker-compose -f docker-compose.yml config >"$2")
}
# compose_check ROOT CHECK: a checks.py check of ROOT's resolved compose file.
compose_check() {
    local root=$1 check=$2 out
    out=$(mktemp "$WORK/compose.XXXXXX") || return 1
    compose_config "$root" "$out" && c "$check" "$root" "$out"
}
if have docker-compose; then
    check "docker-compose config (with the secrets scripts/compose-secrets.sh makes)" \
        compose_config "$TREE" "$WORK/compose.yaml"
    check "compose worker: healthcheck on /readyz at GREET_HTTP_ADDR's port, curl in the image, scalable ports, grace" \
        c compose-worker "$TREE" "$WORK/compose.yaml"
    check "compose: one-shot greet-admin migrate as the owner; worker waits for its success" \
        c compose-migrate "$TREE" "$WORK/compose.yaml"
    check "compose: greet services read *_URL_FILE; secrets defined at top level, files the script makes; none in env" \
        c compose-secrets "$TREE" "$WORK/compose.yaml"
    check "compose: each URL names its least-privilege user, with the password that user is given" \
        c compose-users "$TREE" "$WORK/compose.yaml"
    check "compose: broker-users (greet-users, in the image), then declare, then worker/producer/replies" \
        c compose-order "$TREE" "$WORK/compose.yaml"
else
    skip "docker-compose config" "docker-compose is not installed"
fi
SCRIPTS=("$ROOT/docker/initdb.sh" "$ROOT/scripts/compose-secrets.sh" "$ROOT/deploy/rabbitmq/greet-users.sh")
check "docker/initdb.sh, scripts/compose-secrets.sh, deploy/rabbitmq/greet-users.sh: sh -n" \
    sh -c 'for f; do sh -n "$f" || exit 1; done' sh "${SCRIPTS[@]}"
# initdb_password VAR=value...: the password docker/initdb.sh passes to psql
# in its environment (a psql stub prints it, then its arguments on a
# line), with only the given variables set.
initdb_password() {
    local stub
    stub=$(mktemp -d "$WORK/initdb.XXXXXX")
    printf '#!/bin/sh\necho "${GREET_ROLE_PASSWORD:-}"\necho "args: $*"\n' >"$stub/psql"
    chmod +x "$stub/psql"
    env -i PATH="$stub:/usr/bin:/bin" POSTGRES_USER=postgres POSTGRES_DB=greet "$@" sh "$ROOT/docker/initdb.sh" </dev/null
}
initdb_forms() {
    local pw=$WORK/initdb-pw
    printf 'from-file\n' >"$pw"
    [ "$(initdb_password GREET_WORKER_PASSWORD=plain | head -n 1)" = plain ] &&
        [ "$(initdb_password GREET_WORKER_PASSWORD_FILE="$pw" | head -n 1)" = from-file ] &&
        ! initdb_password GREET_WORKER_PASSWORD=plain GREET_WORKER_PASSWORD_FILE="$pw" &&
        ! initdb_password
}
check "docker/initdb.sh: GREET_WORKER_PASSWORD or GREET_WORKER_PASSWORD_FILE, one of them" initdb_forms
check "docker/initdb.sh: the password is not on psql's command line" \
    eval '! initdb_password GREET_WORKER_PASSWORD=s3cret-on-cmdline | grep "^args:" | grep -q s3cret'
check "  and psql is given it as \\getenv reads it" grep -q 'getenv password GREET_ROLE_PASSWORD' "$ROOT/docker/initdb.sh"
if have shellcheck; then
    check "shellcheck docker/initdb.sh scripts/compose-secrets.sh deploy/rabbitmq/greet-users.sh tests/deploy/run.sh" \
        shellcheck -x -P "$ROOT" "${SCRIPTS[@]}" "$ROOT/tests/deploy/run.sh"
else
    skip "shellcheck" "shellcheck is not installed"
fi

# ---------------------------------------------------------------- Dockerfile
echo "# Dockerfile"
check "build stage copies every directory make all install reads ($GREET_SOURCE_DIRS), none .dockerignored" \
    c dockerfile-copies
if [ -n "$HAVE_PACKAGES" ]; then
    check "build stage installs each library's package, runtime stage each program's" c dockerfile-packages
else
    skip "Dockerfile packages" "needs dpkg, objdump, ldconfig"
fi
check "numeric USER, STOPSIGNAL SIGTERM, one PREFIX for make all and install, greet-worker by default" \
    c dockerfile-misc

# ---------------------------------------------------------------- broken copies
# Each copy has one fault; the check that covers it must fail, and say why.
echo "# broken copies: each fault must be caught, for its reason"
N=0
# broken NAME FILE SED-SCRIPT EXPECT CHECK-COMMAND...: copy the deployment
# files, make their secrets (scripts/compose-secrets.sh), apply SED-SCRIPT
# to FILE (one of the secrets/ too; when FILE is the script, the secrets
# are made again by the broken script), then CHECK-COMMAND (@B@ in it
# stands for the copy) must fail with output matching the extended regex
# EXPECT.  A SED-SCRIPT that changes nothing, or a copy that cannot be
# made, fails.
broken() {
    local name=$1 file=$2 script=$3 expect=$4 out copy
    shift 4
    N=$((N + 1))
    copy=$WORK/broken-$N
    # (deploy/'s checks read no secrets/: none made for them.)
    if ! { copy_tree "$copy" && { [ "${file#deploy/}" != "$file" ] || make_secrets "$copy" >/dev/null; } &&
        cp "$copy/$file" "$copy/$file.orig" &&
        sed -e "$script" "$copy/$file.orig" >"$copy/$file"; }; then
        _record 1 "caught: $name"
        echo "    the broken copy could not be made in $copy"
        return
    fi
    if cmp -s "$copy/$file" "$copy/$file.orig" || [ ! -s "$copy/$file" ]; then
        _record 1 "caught: $name"
        echo "    the fault was not made: '$script' changes nothing in $file"
        return
    fi
    rm "$copy/$file.orig"
    if [ "$file" = scripts/compose-secrets.sh ]; then
        rm -rf "$copy/secrets"
        make_secrets "$copy" >/dev/null 2>&1
    fi
    if out=$("${@//@B@/$copy}" 2>&1); then
        _record 1 "caught: $name"
        echo "    passed on the broken copy $copy: $*"
    elif ! grep -Eq -- "$expect" <<<"$out"; then
        _record 1 "caught: $name"
        echo "    failed, but not for the fault (expected /$expect/):"
        sed -n '1,5s/^/    | /p' <<<"$out"
    else
        _record 0 "caught: $name"
        grep -E -m 1 -- "$expect" <<<"$out" | sed 's/^ */    # /'
    fi
}
U=deploy/systemd/greet-worker@.service
E=deploy/systemd/worker.env.example
K=deploy/kubernetes
if have systemd-analyze; then
    broken "unit: a misspelt key (KilMode=)" $U 's/^KillMode=/KilMode=/' "Unknown key 'KilMode'" verify_unit @B@
    broken "unit: hardening removed" $U '/^DynamicUser=/,/^SystemCallErrorNumber=/d' \
        'Overall exposure level .*(MEDIUM|EXPOSED|UNSAFE)' unit_exposure @B@
fi
broken "unit: TimeoutStopSec equal to the shutdown deadline" $U \
    "s/^TimeoutStopSec=.*/TimeoutStopSec=${GREET_SHUTDOWN_DEFAULT}s/" 'is not above' c unit-timeout @B@
broken "unit: the example env raises the deadline past TimeoutStopSec" $E \
    's/^GREET_SHUTDOWN_TIMEOUT=.*/GREET_SHUTDOWN_TIMEOUT=60/' 'deadline of 60 s' c unit-timeout @B@
broken "unit: no per-instance EnvironmentFile" $U '/^EnvironmentFile=-/d' 'per-instance' c unit-settings @B@
broken "unit: ExecStart elsewhere than make install puts it" $U 's|^ExecStart=.*|ExecStart=/usr/bin/greet-worker|' \
    'ExecStart=' c unit-settings @B@
broken "env example: GREET_HTTP_ADDR shared by every instance" $E '$a GREET_HTTP_ADDR=127.0.0.1:9464' \
    'same port' c env-example @B@
broken "env example: a misspelt variable" $E 's/^GREET_SHUTDOWN_TIMEOUT=/GREET_SHUTDOWN_TIMOUT=/' \
    'GREET_SHUTDOWN_TIMOUT is not a variable' c env-example @B@
broken "k8s: liveness probe path typo (/healtz)" $K/deployment.yaml 's|path: /healthz|path: /healtz|' \
    "livenessProbe path '/healtz'" c k8s-probes @B@
broken "k8s: readiness probe on /healthz" $K/deployment.yaml 's|path: /readyz|path: /healthz|' \
    "readinessProbe path '/healthz'" c k8s-probes @B@
broken "k8s: the worker listens on another port than the probes" $K/deployment.yaml \
    's|value: ":9464"|value: ":9465"|' "Probe port .* is not the worker's port 9465" c k8s-probes @B@
broken "k8s: the worker listens on loopback only" $K/deployment.yaml 's|value: ":9464"|value: "127.0.0.1:9464"|' \
    'every interface' c k8s-probes @B@
broken "k8s: scrape annotation on another port" $K/deployment.yaml \
    's|prometheus.io/port: "9464"|prometheus.io/port: "9465"|' "prometheus.io/port='9465'" c k8s-probes @B@
broken "k8s: terminationGracePeriodSeconds below the deadline" $K/deployment.yaml \
    's/terminationGracePeriodSeconds: .*/terminationGracePeriodSeconds: 5/' 'terminationGracePeriodSeconds 5' \
    c k8s-grace @B@
broken "k8s: the pod's GREET_SHUTDOWN_TIMEOUT past the grace period" $K/deployment.yaml \
    '/name: GREET_SHUTDOWN_TIMEOUT/{n;s/value: .*/value: "45"/}' 'deadline of 45 s' c k8s-grace @B@
broken "k8s: runAsUser not the image's user" $K/deployment.yaml 's/runAsUser: .*/runAsUser: 1000/' \
    "runAsUser 1000, the image's USER is" c k8s-security @B@
broken "k8s: readOnlyRootFilesystem off in the Job" $K/migrate-job.yaml \
    's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' 'Job greet-migrate container migrate: readOnlyRootFilesystem' \
    c k8s-security @B@
broken "k8s: a Secret volume item with a missing key" $K/deployment.yaml 's/key: DATABASE_URL/key: DATABASE_URI/' \
    "no key 'DATABASE_URI'" c k8s-secret-refs @B@
broken "k8s: a Secret value that is no marked placeholder" $K/secret.yaml 's/greet-worker:CHANGE-ME@rabbitmq/greet-worker:hunter2@rabbitmq/' \
    'not a marked placeholder' c k8s-secret-refs @B@
broken "k8s: ScaledObject on another queue (greet.job)" $K/scaledobject.yaml 's/queueName: .*/queueName: greet.job/' \
    "queueName 'greet.job', the worker consumes 'greet.jobs'" c k8s-scaledobject @B@
broken "k8s: the workers consume another queue than KEDA watches" $K/deployment.yaml \
    's/^\( *\)- name: GREET_LOG_LEVEL$/\1- name: GREET_JOBS_QUEUE\n\1  value: greet.jobs.v2\n&/' \
    "the worker consumes 'greet.jobs.v2'" c k8s-scaledobject @B@
broken "k8s: ScaledObject targets a Deployment that does not exist" $K/scaledobject.yaml \
    '/scaleTargetRef:/,/name:/s/name: .*/name: greet-workers/' "scaleTargetRef.name 'greet-workers'" \
    c k8s-scaledobject @B@
broken "k8s: ScaledObject mode QueueLenght" $K/scaledobject.yaml 's/mode: QueueLength/mode: QueueLenght/' \
    "mode 'QueueLenght'" c k8s-scaledobject @B@
broken "k8s: TriggerAuthentication reads a key the Secret lacks" $K/triggerauthentication.yaml \
    's/key: .*/key: RABBITMQ_URL/' "no key 'RABBITMQ_URL'" c k8s-scaledobject @B@
broken "k8s: authenticationRef names no TriggerAuthentication" $K/scaledobject.yaml \
    '/authenticationRef:/,/name:/s/name: .*/name: greet-amqp/' "'greet-amqp' is not defined" c k8s-scaledobject @B@
broken "k8s: the Deployment sets replicas (fights the autoscaler)" $K/deployment.yaml \
    's/^  revisionHistoryLimit:/  replicas: 3\n&/' 'sets replicas' c k8s-scaledobject @B@
broken "k8s: migrate Job with the workers' read-only URL" $K/migrate-job.yaml \
    's/secretName: greet-migrate$/secretName: greet-worker/' \
    "uses the workers' DATABASE_URL" c k8s-job @B@
broken "k8s: the worker's AMQP_URL in the environment again" $K/deployment.yaml \
    's/- name: AMQP_URL_FILE$/- name: AMQP_URL/' 'AMQP_URL in the environment; use AMQP_URL_FILE' c k8s-secret-refs @B@
broken "k8s: AMQP_URL_FILE names a file the Secret volume does not project" $K/deployment.yaml \
    's|value: /run/secrets/greet/AMQP_URL$|value: /run/secrets/greet/AMQP_URI|' "projects no 'AMQP_URI'" \
    c k8s-secret-refs @B@
broken "k8s: DATABASE_URL_FILE outside the Secret's mount" $K/migrate-job.yaml \
    's|value: /run/secrets/greet/DATABASE_URL$|value: /etc/greet/DATABASE_URL|' 'is in no volume mounted' \
    c k8s-secret-refs @B@
broken "k8s: Secret files (0440) with no fsGroup: unreadable by uid 10001" $K/deployment.yaml '/fsGroup:/d' \
    'mode 0o440 is not readable' c k8s-secret-refs @B@
broken "k8s: the Secret volume mounted writable" $K/migrate-job.yaml 's/readOnly: true/readOnly: false/' \
    'not mounted readOnly' c k8s-secret-refs @B@
broken "k8s: the broker-setup Job mounts a Secret that does not exist" $K/broker-setup-job.yaml \
    's/secretName: greet-broker$/secretName: greet-brokers/' "Secret 'greet-brokers' is not defined" c k8s-secret-refs @B@
broken "k8s: the workers' AMQP_URL as greet-admin" $K/secret.yaml '/^  AMQP_URL:/s/greet-worker:/greet-admin:/' \
    "is user 'greet-admin', expected the least-privilege 'greet-worker'" c k8s-users @B@
broken "k8s: the workers' DATABASE_URL as the owner" $K/secret.yaml '/^  DATABASE_URL:/s/greet_worker:/greet_owner:/' \
    "is user 'greet_owner', expected the least-privilege 'greet_worker'" c k8s-users @B@
broken "k8s: KEDA as the old shared user" $K/secret.yaml '/^  KEDA_RABBITMQ_HOST:/s/greet-worker:/greet:/' \
    "host is user 'greet', expected greet-worker" c k8s-users @B@
broken "k8s: declare as greet-producer" $K/secret-broker.yaml '/GREET_ADMIN_AMQP_URL:/s/greet-admin:/greet-producer:/' \
    "is user 'greet-producer', expected the least-privilege 'greet-admin'" c k8s-users @B@
broken "k8s: greet-users beside declare, not before it" $K/broker-setup-job.yaml 's/^      initContainers:$/      containers:/' \
    'greet-users' c k8s-users @B@
broken "k8s: greet-users without a user's password" $K/broker-setup-job.yaml '/name: GREET_PRODUCER_AMQP_PASSWORD_FILE/,+1d' \
    'GREET_PRODUCER_AMQP_PASSWORD_FILE is not set' c k8s-users @B@
broken "k8s: migrate Job's owner URL replaced by greet_worker" $K/secret-migrate.yaml 's/greet_owner:/greet_worker:/' \
    'greet_worker, which may only read' c k8s-job @B@
broken "k8s: migrate Job on another image" $K/migrate-job.yaml 's/image: greet:.*/image: greet-admin:0.1.0/' \
    'differs from the workers' c k8s-job @B@
broken "k8s: kustomization.yaml forgets scaledobject.yaml" $K/kustomization.yaml '/scaledobject.yaml/d' \
    'scaledobject.yaml is not listed' c k8s-kustomization @B@
broken "k8s: kustomization.yaml lists a missing file" $K/kustomization.yaml 's/- namespace.yaml/- namespaces.yaml/' \
    'lists namespaces.yaml, which does not exist' c k8s-kustomization @B@
broken "k8s: a YAML syntax error" $K/triggerauthentication.yaml 's/^spec:$/spec: [/' 'triggerauthentication.yaml: ' \
    c k8s-parse @B@
broken "k8s: a manifest without metadata.name" $K/namespace.yaml '/name:/d' 'namespace.yaml document 1: no metadata.name' \
    c k8s-parse @B@
if have docker-compose; then
    broken "compose: healthcheck on /ready" docker-compose.yml 's|9464/readyz|9464/ready|' "path '/ready'" \
        compose_check @B@ compose-worker
    broken "compose: healthcheck on another port" docker-compose.yml 's|127.0.0.1:9464/readyz|127.0.0.1:9465/readyz|' \
        'healthcheck port 9465' compose_check @B@ compose-worker
    broken "compose: a fixed host port (collides with --scale)" docker-compose.yml \
        's|"127.0.0.1::9464"|"127.0.0.1:9464:9464"|' 'fixes the host port' compose_check @B@ compose-worker
    broken "compose: the metrics port published on every interface" docker-compose.yml \
        's|"127.0.0.1::9464"|"9464"|' 'beyond the host' compose_check @B@ compose-worker
    broken "compose: stop_grace_period below the deadline" docker-compose.yml 's/stop_grace_period: .*/stop_grace_period: 5s/' \
        'stop_grace_period 5s' compose_check @B@ compose-worker
    broken "compose: curl not in the runtime image" Dockerfile 's/ curl / /' 'runs curl, which' \
        compose_check @B@ compose-worker
    broken "compose: the worker does not wait for migrate's success" docker-compose.yml \
        '/migrate:$/{n;s/service_completed_successfully/service_started/}' "condition 'service_started'" \
        compose_check @B@ compose-migrate
    broken "compose: migrate as greet_worker" docker-compose.yml \
        's|DATABASE_URL_FILE: /run/secrets/postgres-db-url|DATABASE_URL_FILE: /run/secrets/greet-worker-db-url|; s|- postgres-db-url$|- greet-worker-db-url|' \
        'may only read' compose_check @B@ compose-migrate
    broken "compose: postgres healthy during its init scripts" docker-compose.yml 's/"pg_isready", "-h", "127.0.0.1",/"pg_isready",/' \
        'init scripts' compose_check @B@ compose-migrate
    # Secrets from files.
    broken "compose: the worker's AMQP_URL in plain, with a password" docker-compose.yml \
        's|AMQP_URL_FILE: /run/secrets/greet-worker-amqp-url|AMQP_URL: amqp://greet-worker:pw@rabbitmq:5672/|' \
        'plain AMQP_URL with a password' compose_check @B@ compose-secrets
    broken "compose: POSTGRES_PASSWORD in the environment" docker-compose.yml \
        's|POSTGRES_PASSWORD_FILE: /run/secrets/postgres-password|POSTGRES_PASSWORD: greet|' \
        'POSTGRES_PASSWORD holds a secret in the environment' compose_check @B@ compose-secrets
    # (docker-compose config refuses an undefined secret too; the check reads the file itself.)
    broken "compose: a service's secret not defined at top level" docker-compose.yml \
        '/^  greet-worker-db-url:$/,/file:/d' "secret 'greet-worker-db-url' is not defined at top level" \
        c compose-secrets @B@ @B@/docker-compose.yml
    broken "compose: a secret file scripts/compose-secrets.sh does not make" docker-compose.yml \
        's|file: ./secrets/greet-worker-db-url$|file: ./secrets/greet-worker-db.url|' \
        'greet-worker-db.url is not a file scripts/compose-secrets.sh creates' \
        c compose-secrets @B@ @B@/docker-compose.yml
    broken "compose: replies' AMQP_URL_FILE names a secret it does not mount" docker-compose.yml \
        '/^  replies:/,/^  [a-z]/{/^      - greet-subscriber-amqp-url$/d}' 'is no secret mounted in replies' \
        c compose-secrets @B@ @B@/docker-compose.yml
    broken "compose-secrets.sh: files made 0600 (uid 10001 could not read them)" scripts/compose-secrets.sh \
        's/chmod 644 /chmod 600 /g' 'mode 0o600, expected 0644' compose_check @B@ compose-secrets
    broken "compose-secrets.sh: not idempotent (overwrites a password)" scripts/compose-secrets.sh \
        's/^    if \[ -e "\$DIR\/\$1" \]; then$/    if false; then/' 'a second run (changed|failed)' secrets_script @B@
    broken "compose-secrets.sh: a password file no service uses" scripts/compose-secrets.sh \
        's/^put postgres-password /put postgres-password2 "$(password)" "spare"\n&/' \
        'creates postgres-password2, which no service uses' compose_check @B@ compose-secrets
    # Users and passwords.
    broken "compose: the worker connects as greet-producer" docker-compose.yml \
        's|AMQP_URL_FILE: /run/secrets/greet-worker-amqp-url|AMQP_URL_FILE: /run/secrets/greet-producer-amqp-url|; s|- greet-worker-amqp-url$|- greet-producer-amqp-url|' \
        "worker: AMQP_URL is user 'greet-producer', expected the least-privilege 'greet-worker'" \
        compose_check @B@ compose-users
    broken "compose: declare as greet-worker" docker-compose.yml \
        's|AMQP_URL_FILE: /run/secrets/greet-admin-amqp-url|AMQP_URL_FILE: /run/secrets/greet-worker-amqp-url|; s|- greet-admin-amqp-url$|- greet-worker-amqp-url|' \
        "declare: AMQP_URL is user 'greet-worker', expected the least-privilege 'greet-admin'" \
        compose_check @B@ compose-users
    broken "compose: the worker's AMQP URL file with another password" secrets/greet-worker-amqp-url \
        's/@rabbitmq/x@rabbitmq/' "AMQP_URL's password for greet-worker is not the one" compose_check @B@ compose-users
    broken "compose-secrets.sh: greet_worker's URL with the owner's password" scripts/compose-secrets.sh \
        's/value greet-worker-db-password/value postgres-password/' \
        "DATABASE_URL's password for greet_worker is not the one" compose_check @B@ compose-users
    broken "compose-secrets.sh: URLs to a host that is no service" scripts/compose-secrets.sh \
        's/^DB_HOST=postgres:5432/DB_HOST=db:5432/' 'expected the postgres service' compose_check @B@ compose-users
    broken "compose: broker-users logs in with another password than the broker's" secrets/rabbitmq-admin.conf \
        's/^default_pass = /&x/' "not the administrator's default_pass" compose_check @B@ compose-users
    broken "compose: the broker without greet.conf (messages up to 128 MiB)" docker-compose.yml \
        '/30-greet.conf/d' 'no max_message_size in a conf.d file' compose_check @B@ compose-users
    broken "compose: the broker's administrator without the administrator tag" secrets/rabbitmq-admin.conf \
        '/^default_user_tags/d' 'administrator is not true' compose_check @B@ compose-users
    # Order.
    broken "compose: declare does not wait for broker-users' success" docker-compose.yml \
        '/^      broker-users:$/{n;s/service_completed_successfully/service_started/}' \
        "declare: depends_on broker-users condition 'service_started'" compose_check @B@ compose-order
    broken "compose: replies does not wait for declare" docker-compose.yml \
        '/^  replies:/,/^  [a-z]/{/^      declare:$/,/condition:/d}' \
        "replies: depends_on declare condition None" compose_check @B@ compose-order
    broken "compose: broker-users restarts when done" docker-compose.yml \
        '/^  broker-users:/,/^  [a-z]/s/restart: "no"/restart: unless-stopped/' \
        "broker-users: restart 'unless-stopped'" compose_check @B@ compose-order
    broken "compose: rabbitmq without the management API" docker-compose.yml \
        's/image: rabbitmq:3.13-management/image: rabbitmq:3.13/' 'has no management API' \
        compose_check @B@ compose-order
    broken "Dockerfile: greet-users not in the image" Dockerfile '/greet-users.sh \/usr\/local\/bin/d' \
        'does not COPY deploy/rabbitmq/greet-users.sh' compose_check @B@ compose-order
    broken "compose: invalid file" docker-compose.yml 's/^services:/servics:/' 'invalid' compose_config @B@ /dev/null
fi
broken "Dockerfile: admin/ not copied" Dockerfile '/^COPY admin /d' 'does not COPY admin/' c dockerfile-copies @B@
broken "Dockerfile: a directory copied to the wrong place" Dockerfile 's/^COPY common common/COPY common src\/common/' \
    'COPY common src/common' c dockerfile-copies @B@
broken ".dockerignore excludes common/" .dockerignore '$a common' '.dockerignore excludes common/' c dockerfile-copies @B@
if [ -n "$HAVE_PACKAGES" ]; then
    broken "Dockerfile: libmicrohttpd12 not in the runtime stage" Dockerfile 's/ libmicrohttpd12//' \
        'runtime stage does not install libmicrohttpd12' c dockerfile-packages @B@
    broken "Dockerfile: libmicrohttpd-dev not in the build stage" Dockerfile 's/ libmicrohttpd-dev//' \
        'build stage does not install libmicrohttpd-dev' c dockerfile-packages @B@
fi
broken "Dockerfile: USER by name" Dockerfile 's/^USER .*/USER greet/' 'not a numeric' c dockerfile-misc @B@
broken "Dockerfile: installed under another PREFIX than compiled" Dockerfile \
    's/PREFIX=\/usr\/local DESTDIR/PREFIX=\/opt\/greet DESTDIR/' 'several PREFIXes' c dockerfile-misc @B@

tests_summary
