# Greet programs on Debian 12: build stage, then a slim runtime image
# running as an unprivileged user.  Default command: the worker.
#
#   docker build -t greet .
#
# The build stage copies every directory `make all install` reads (the
# deploy suite, tests/deploy/run.sh, checks it against the Makefile); the
# runtime stage installs the runtime package of every library the programs
# link, and curl for the compose healthcheck on the worker's /readyz and
# for greet-users (deploy/rabbitmq/greet-users.sh: the broker's users, set
# through its management API; run by the compose file's broker-users).
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make pkg-config libc6-dev \
        librabbitmq-dev libssl-dev libjansson-dev libpq-dev libmicrohttpd-dev libjwt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY worker worker
COPY producer producer
COPY replies replies
COPY admin admin
COPY sql sql
# One PREFIX for both steps: greet-admin migrate finds sql/ in the
# PREFIX/share/greet/sql it was compiled with.
RUN make -j"$(nproc)" PREFIX=/usr/local all \
 && make PREFIX=/usr/local DESTDIR=/out install

FROM debian:12-slim
# A numeric user (10001), so that Kubernetes' runAsNonRoot can verify it;
# deploy/kubernetes runs the pods as the same uid and gid.
RUN apt-get update \
 && apt-get install -y --no-install-recommends librabbitmq4 libssl3 libjansson4 libpq5 libmicrohttpd12 libjwt0 \
        ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 greet \
 && useradd --system --uid 10001 --gid greet --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin greet
COPY --from=build /out/usr/local /usr/local
# Executable in git (mode 755), so without COPY --chmod (BuildKit only).
COPY deploy/rabbitmq/greet-users.sh /usr/local/bin/greet-users
USER 10001:10001
# The worker's /metrics, /healthz and /readyz when GREET_HTTP_ADDR=:9464.
EXPOSE 9464
# The worker drains on SIGTERM (GREET_SHUTDOWN_TIMEOUT, default 10 s).
STOPSIGNAL SIGTERM
CMD ["greet-worker"]
