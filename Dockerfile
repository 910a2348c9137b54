# Greet programs on Debian 12: build stage, then a slim runtime image
# running as an unprivileged user.  Default command: the worker.
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make pkg-config libc6-dev \
        librabbitmq-dev libjansson-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY worker worker
COPY producer producer
COPY replies replies
COPY sql sql
RUN make -j"$(nproc)" all && make install PREFIX=/usr/local DESTDIR=/out

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends librabbitmq4 libjansson4 libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin greet
COPY --from=build /out/usr/local /usr/local
USER greet
# The worker drains on SIGTERM (GREET_SHUTDOWN_TIMEOUT, default 10 s).
STOPSIGNAL SIGTERM
CMD ["greet-worker"]
