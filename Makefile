# Greet workers.  `make` builds bin/; `make help` lists the other targets.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=

CC       ?= cc
CFLAGS   ?= -O2 -g
PKG_CONFIG ?= pkg-config
PKGS      = librabbitmq jansson libpq

WARNINGS  = -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wno-missing-field-initializers
ifneq ($(CI),)
WARNINGS += -Werror
endif

# The sanitizer build lives beside the normal one so both can exist at
# once; the test suite runs it (`make test` uses SANITIZE=1).  The fault
# suite's build adds the fault-injection hooks (GREET_FAULT_* variables),
# which no other build contains.
SANITIZERS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(FAULT_INJECTION),1)
BUILD     = build/faults
SAN_FLAGS = $(SANITIZERS) -DGREET_FAULT_INJECTION
CFLAGS    = -O1 -g
BIN       = build/faults/bin
else ifeq ($(SANITIZE),1)
BUILD     = build/asan
SAN_FLAGS = $(SANITIZERS)
CFLAGS    = -O1 -g
BIN       = build/asan/bin
else
BUILD     = build/release
SAN_FLAGS =
BIN       = bin
endif

ALL_CPPFLAGS = -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DGREET_VERSION='"$(VERSION)"' -Icommon -Iproducer \
               $(shell $(PKG_CONFIG) --cflags $(PKGS)) $(CPPFLAGS)
ALL_CFLAGS   = $(WARNINGS) $(CFLAGS) $(SAN_FLAGS)
LIBS         = $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm
CHECK_LIBS   = $(shell $(PKG_CONFIG) --libs check)

# Pure logic first, then the adapters around librabbitmq and libpq.
COMMON_SRC = common/buf.c common/utf8.c common/log.c common/config.c common/job.c common/greet.c common/reply.c \
             common/clock.c common/backoff.c common/signals.c common/mq.c common/db.c
WORKER_SRC   = worker/main.c worker/worker.c
PRODUCER_SRC = producer/main.c producer/producer.c producer/jobsource.c
REPLIES_SRC  = replies/main.c
UNIT_SRC     = tests/unit/main.c tests/unit/test_buf.c tests/unit/test_utf8.c tests/unit/test_log.c tests/unit/test_config.c \
               tests/unit/test_job.c tests/unit/test_greet.c tests/unit/test_reply.c \
               tests/unit/test_backoff.c tests/unit/test_jobsource.c
# Unit tests link the pure modules, never a main.c or a live connection.
UNIT_LINK_SRC = common/buf.c common/utf8.c common/log.c common/config.c common/job.c common/greet.c common/reply.c \
                common/clock.c common/backoff.c producer/jobsource.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

PROGRAMS = $(BIN)/greet-worker $(BIN)/greet-producer $(BIN)/greet-replies
UNIT_BIN = $(BUILD)/tests/unit-tests
# Test tools live beside the build they test, never in bin/.
TOOLS    = $(BUILD)/tests/mqtool $(BUILD)/tests/historycheck $(BUILD)/bench/baseline

.PHONY: all tools bench bench-sweep test test-faults test-unit test-integration run demo clean install format format-check help sanitize

all: $(PROGRAMS)

$(BIN)/greet-worker: $(call obj,$(WORKER_SRC) $(COMMON_SRC))
$(BIN)/greet-producer: $(call obj,$(PRODUCER_SRC) $(COMMON_SRC))
$(BIN)/greet-replies: $(call obj,$(REPLIES_SRC) $(COMMON_SRC))
$(PROGRAMS):
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/mqtool: $(call obj,tests/tools/mqtool.c $(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bench/baseline: $(call obj,bench/baseline.c $(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/historycheck: $(call obj,tests/tools/historycheck.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(UNIT_BIN): $(call obj,$(UNIT_SRC) $(UNIT_LINK_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

tools: $(TOOLS)

sanitize:
	$(MAKE) SANITIZE=1 all tools $(UNIT_BIN)

# The whole suite: unit tests, then the integration tests against real
# RabbitMQ and PostgreSQL servers started in a temp dir.  Both run the
# sanitizer build.
test:
	scripts/test.sh

test-unit:
	$(MAKE) SANITIZE=1 build/asan/tests/unit-tests
	build/asan/tests/unit-tests

test-faults:
	$(MAKE) FAULT_INJECTION=1 all tools
	tests/faults/run.sh

test-integration:
	$(MAKE) SANITIZE=1 all tools
	GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/integration/run.sh

run demo: all
	scripts/demo.sh

# Throughput and latency next to a broker-only baseline, same run
# (bench/run.sh; BENCH_SMOKE=1 for a quick one, --sweep for the prefetch curve).
bench: all tools
	bench/run.sh

bench-sweep: all tools
	BENCH_PREFETCH="10 50 100 200 500 1000" BENCH_RUNS=$${BENCH_RUNS:-1} bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/greet/sql/sample
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 sql/*.sql $(DESTDIR)$(PREFIX)/share/greet/sql/
	install -m 644 sql/sample/*.sql $(DESTDIR)$(PREFIX)/share/greet/sql/sample/

format:
	clang-format -i $(wildcard common/*.[ch] worker/*.[ch] producer/*.[ch] replies/*.[ch] tests/unit/*.[ch])

format-check:
	clang-format --dry-run --Werror $(wildcard common/*.[ch] worker/*.[ch] producer/*.[ch] replies/*.[ch] tests/unit/*.[ch])

clean:
	rm -rf build bin

help:
	@echo "make              build bin/greet-worker, bin/greet-producer, bin/greet-replies"
	@echo "make run          start local servers, workers, send sample jobs, show replies"
	@echo "make test         the whole test suite (unit + integration, sanitizer build)"
	@echo "make test-unit    unit tests only"
	@echo "make test-faults  the fault suite (kills, restarts, freezes real servers)"
	@echo "make sanitize     the ASan/UBSan build into build/asan/"
	@echo "make bench        throughput/latency next to a broker-only baseline (a few minutes)"
	@echo "make install      install into PREFIX (default /usr/local), honours DESTDIR"
	@echo "make format       format the sources with .clang-format"
	@echo "make clean        remove build output"

-include $(shell find build -name '*.d' 2>/dev/null)
