# Greet workers.  `make` builds bin/; `make help` lists the other targets.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=

CC       ?= cc
AR       ?= ar
PKG_CONFIG ?= pkg-config

WARNINGS  = -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wno-missing-field-initializers
ifneq ($(CI),)
WARNINGS += -Werror
endif

# Three builds side by side, each in its own directory: release (bin/),
# the sanitizer build the test suite runs (build/asan/), and the fault
# suite's, which adds the fault-injection hooks (GREET_FAULT_* variables)
# that no other build contains.  CFLAGS from the environment or the
# command line wins over each build's default optimisation.
SANITIZERS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(FAULT_INJECTION),1)
BUILD          = build/faults
BUILD_CFLAGS   = -O1 -g
BUILD_FLAGS    = $(SANITIZERS) -DGREET_FAULT_INJECTION
BIN            = build/faults/bin
else ifeq ($(SANITIZE),1)
BUILD          = build/asan
BUILD_CFLAGS   = -O1 -g
BUILD_FLAGS    = $(SANITIZERS)
BIN            = build/asan/bin
else
BUILD          = build/release
BUILD_CFLAGS   = -O2 -g
BUILD_FLAGS    =
BIN            = bin
endif
CFLAGS ?= $(BUILD_CFLAGS)

ALL_CPPFLAGS = -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DGREET_VERSION='"$(VERSION)"' -Icommon -Iproducer -Iworker \
               $(shell $(PKG_CONFIG) --cflags librabbitmq openssl jansson libpq libmicrohttpd libjwt) $(CPPFLAGS)
ALL_CFLAGS   = $(WARNINGS) $(CFLAGS) $(BUILD_FLAGS)
pkg_libs     = $(shell $(PKG_CONFIG) --libs $(1))

# The shared code, built once into a static library; each program links
# only the objects (and the system libraries) it uses.  Pure logic first,
# then the adapters around librabbitmq and libpq.  Only the worker talks
# to PostgreSQL, so only it links libpq: config.c reaches the URL checkers
# (mq_url.c, db_url.c) through the pointers each main() passes in.
COMMON_SRC = common/buf.c common/utf8.c common/log.c common/config.c common/job.c common/greet.c \
             common/jsonw.c common/stdfds.c common/http_addr.c \
             common/reply.c common/clock.c common/backoff.c common/files.c common/confirms.c common/signals.c common/link.c \
             common/mq.c common/mq_url.c common/db.c common/db_url.c common/prom.c common/http.c \
             common/token.c
WORKER_SRC   = worker/main.c worker/worker.c worker/ledger.c worker/fault.c worker/metrics.c \
               worker/status.c
PRODUCER_SRC = producer/main.c producer/producer.c producer/jobsource.c
REPLIES_SRC  = replies/main.c
# greet-admin: the operator's subcommands.  Its pure logic is unit-tested.
ADMIN_PURE_SRC = admin/dead.c admin/migration.c admin/rows.c
ADMIN_SRC    = admin/main.c admin/cmd_status.c admin/cmd_dead.c admin/cmd_migrate.c $(ADMIN_PURE_SRC)
UNIT_SRC     = tests/unit/main.c tests/unit/test_buf.c tests/unit/test_utf8.c tests/unit/test_log.c \
               tests/unit/test_config.c tests/unit/test_mq_url.c tests/unit/test_db_url.c \
               tests/unit/test_job.c tests/unit/test_greet.c \
               tests/unit/test_reply.c tests/unit/test_backoff.c tests/unit/test_jobsource.c \
               tests/unit/test_jsonw.c tests/unit/test_stdfds.c \
               tests/unit/test_confirms.c tests/unit/test_ledger.c tests/unit/test_prom.c \
               tests/unit/test_metrics.c tests/unit/test_token.c
UNIT_SRC    += tests/unit/test_admin_dead.c tests/unit/test_admin_migration.c \
               tests/unit/test_admin_rows.c
TOOL_SRC     = tests/tools/mqtool.c tests/tools/historycheck.c tests/tools/httpabuse.c bench/baseline.c

# libmicrohttpd: the worker's /metrics, /healthz and /readyz (common/http.c).
# libjwt: job tokens (common/token.c), verified by the worker, made by the
# producer with --jwt-key; no other program links it.
# openssl: common/mq.c verifies the broker's certificate through OpenSSL
# itself (librabbitmq's own TLS library; libssl-dev comes with
# librabbitmq-dev).
WORKER_LIBS   = $(call pkg_libs,librabbitmq openssl jansson libpq libmicrohttpd libjwt) -lpthread -lm
PRODUCER_LIBS = $(call pkg_libs,librabbitmq openssl jansson libjwt) -lm
REPLIES_LIBS  = $(call pkg_libs,librabbitmq openssl jansson) -lm
ADMIN_LIBS    = $(call pkg_libs,librabbitmq openssl jansson libpq) -lm
TOOL_LIBS     = $(call pkg_libs,librabbitmq openssl jansson libpq) -lm
UNIT_LIBS     = $(call pkg_libs,check librabbitmq openssl jansson libpq libjwt) -lm

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIB      = $(BUILD)/libgreet.a
PROGRAMS = $(BIN)/greet-worker $(BIN)/greet-producer $(BIN)/greet-replies $(BIN)/greet-admin
UNIT_BIN = $(BUILD)/tests/unit-tests
# Test tools live beside the build they test, never in bin/.
TOOLS    = $(BUILD)/tests/mqtool $(BUILD)/tests/historycheck $(BUILD)/tests/httpabuse \
           $(BUILD)/bench/baseline

.PHONY: all tools unit bench bench-sweep test test-faults test-cluster test-observe test-unit test-integration run demo clean \
        install format format-check help sanitize fuzz fuzz-smoke fuzz-build

all: $(PROGRAMS)

$(LIB): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

link = $(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(1)

$(BIN)/greet-worker: $(call obj,$(WORKER_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(WORKER_LIBS))
$(BIN)/greet-producer: $(call obj,$(PRODUCER_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(PRODUCER_LIBS))
$(BIN)/greet-replies: $(call obj,$(REPLIES_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(REPLIES_LIBS))
$(BIN)/greet-admin: $(call obj,$(ADMIN_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(ADMIN_LIBS))
ALL_CPPFLAGS += -Iadmin
# migrate's default SQL directory: where make install puts sql/.
$(call obj,admin/cmd_migrate.c): ALL_CPPFLAGS += -DGREET_SHARE_SQL='"$(PREFIX)/share/greet/sql"'
$(BUILD)/tests/mqtool: $(call obj,tests/tools/mqtool.c) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(TOOL_LIBS))
$(BUILD)/tests/historycheck: $(call obj,tests/tools/historycheck.c) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(TOOL_LIBS))
$(BUILD)/tests/httpabuse: $(call obj,tests/tools/httpabuse.c) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,-lm)
$(BUILD)/bench/baseline: $(call obj,bench/baseline.c worker/ledger.c) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(TOOL_LIBS))
# Unit tests link the shared modules, never a main.c or a live connection.
$(UNIT_BIN): $(call obj,$(UNIT_SRC) producer/jobsource.c worker/ledger.c worker/metrics.c) $(LIB)
	@mkdir -p $(dir $@)
	$(call link,$(UNIT_LIBS))
$(UNIT_BIN): $(call obj,$(ADMIN_PURE_SRC))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# libFuzzer targets, tests/fuzz/fuzz_<target>.c: built by clang with ASan
# and UBSan into build/fuzz/, beside whichever build the variables above
# chose.  A new target is one more word in FUZZ_TARGETS and its seeds in
# tests/fuzz/corpus/<target>/.
FUZZ_TARGETS = job reply greet config mq_url db_url utf8 http_addr prom token
FUZZ_CC      ?= clang
FUZZ_CFLAGS  ?= -O1 -g
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_FLAGS   = -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
# The modules under test: the pure ones and the URL checkers.
FUZZ_COMMON_SRC = common/buf.c common/files.c common/utf8.c common/log.c common/config.c common/job.c \
                  common/greet.c common/jsonw.c common/http_addr.c common/reply.c \
                  common/prom.c common/mq_url.c common/db_url.c common/token.c
FUZZ_LIBS    = $(call pkg_libs,librabbitmq jansson libpq libjwt openssl) -lm
FUZZ_LIB     = build/fuzz/libgreet.a
FUZZ_BINS    = $(patsubst %,build/fuzz/fuzz-%,$(FUZZ_TARGETS))
fuzz_obj     = $(patsubst %.c,build/fuzz/%.o,$(1))
# clang, unlike gcc, counts a vsnprintf() that forwards its caller's
# format (the set_error() helpers) as a non-literal format.
FUZZ_WARNINGS = $(WARNINGS) -Wno-format-nonliteral

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(ALL_CPPFLAGS) -Itests/fuzz $(FUZZ_WARNINGS) $(FUZZ_CFLAGS) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(call fuzz_obj,$(FUZZ_COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BINS): build/fuzz/fuzz-%: build/fuzz/tests/fuzz/fuzz_%.o build/fuzz/tests/fuzz/fuzz.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_FLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(FUZZ_LIB) $(FUZZ_LIBS)

tools: $(TOOLS)
unit: $(UNIT_BIN)
fuzz-build: $(FUZZ_BINS)

# The ASan/UBSan build of everything, into build/asan/.
sanitize:
	$(MAKE) SANITIZE=1 all tools unit

# The whole suite: unit tests, the integration and fault suites against
# real RabbitMQ and PostgreSQL servers started in a temp dir, a benchmark
# smoke run; sanitizer builds throughout.
test:
	scripts/test.sh

test-unit:
	$(MAKE) SANITIZE=1 unit
	build/asan/tests/unit-tests

# Each fuzz target for FUZZ_SECONDS, its corpus kept in build/fuzz/corpus/
# from run to run; the smoke run (scripts/test.sh) gives each a few
# seconds on the checked-in seeds alone, so that none can rot.
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) FUZZ_SMOKE=1 tests/fuzz/run.sh $(FUZZ_TARGETS)

test-integration:
	$(MAKE) SANITIZE=1 all tools
	GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/integration/run.sh

.PHONY: test-admin test-deploy test-auth
test-deploy: all
	tests/deploy/run.sh
test-admin:
	$(MAKE) SANITIZE=1 all tools
	GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/admin/run.sh

# Authenticated jobs (GREET_AUTH=jwt): signed by greet-producer and by
# another language, every kind of bad token refused before the database.
test-auth:
	$(MAKE) SANITIZE=1 all tools
	GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/auth/run.sh

# TLS on both servers: amqps://, verify-full, logins by client certificate.
.PHONY: test-tls
test-tls:
	$(MAKE) SANITIZE=1 all tools
	GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/tls/run.sh

# Least privilege: the broker users of deploy/rabbitmq/greet-users.sh and
# the database roles, each refused what it has no business doing.
.PHONY: test-security
test-security:
	$(MAKE) SANITIZE=1 all tools
	GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/security/run.sh

test-faults:
	$(MAKE) FAULT_INJECTION=1 all tools
	tests/faults/run.sh

test-cluster:
	$(MAKE) FAULT_INJECTION=1 all tools
	tests/cluster/run.sh

test-observe:
	$(MAKE) FAULT_INJECTION=1 all tools
	tests/observe/run.sh

run demo: all
	scripts/demo.sh

# Throughput and latency next to a broker-only baseline, same run
# (bench/run.sh; BENCH_SMOKE=1 for a quick one).
bench: all tools
	bench/run.sh

bench-sweep: all tools
	BENCH_PREFETCH="10 50 100 200 500 1000" BENCH_RUNS=$${BENCH_RUNS:-1} bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/greet/sql/sample
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 sql/*.sql $(DESTDIR)$(PREFIX)/share/greet/sql/
	install -m 644 sql/sample/*.sql $(DESTDIR)$(PREFIX)/share/greet/sql/sample/

# Every C file of the tree, tests, tools and benchmark included.
FORMAT_SRC = $(sort $(wildcard common/*.[ch] worker/*.[ch] producer/*.[ch] replies/*.[ch] \
                               tests/*/*.[ch] bench/*.[ch]))
FORMAT_SRC += $(wildcard admin/*.[ch])

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build bin

help:
	@echo "make                  build bin/greet-worker, bin/greet-producer, bin/greet-replies, bin/greet-admin"
	@echo "make run (demo)       start local servers, workers, send sample jobs, show replies"
	@echo "make test             the whole test suite (unit, integration, admin, deploy, faults,"
	@echo "                      observability, cluster, bench smoke)"
	@echo "make test-unit        unit tests only (sanitizer build)"
	@echo "make test-integration the integration suite against real servers (sanitizer build)"
	@echo "make test-faults      the fault suite (kills, restarts, freezes real servers)"
	@echo "make test-cluster     the cluster fault suite (3 RabbitMQ nodes, a PostgreSQL standby)"
	@echo "make test-observe     /metrics, /healthz, /readyz: a real Prometheus, outages, bad clients"
	@echo "make test-admin       greet-admin against real servers (sanitizer build)"
	@echo "make test-tls         TLS on both servers: amqps://, verify-full, certificate logins, refusals"
	@echo "make test-auth        authenticated jobs (GREET_AUTH=jwt): good and bad tokens, real servers"
	@echo "make test-security    least privilege: each broker user and database role refused the rest"
	@echo "make test-deploy      the deployment files, checked offline"
	@echo "make fuzz             each libFuzzer target (tests/fuzz/) for FUZZ_SECONDS (default 60)"
	@echo "make fuzz-smoke       each libFuzzer target for a few seconds on its seed corpus"
	@echo "make sanitize         the ASan/UBSan build of everything into build/asan/"
	@echo "make tools            test tools and the benchmark baseline, beside the build"
	@echo "make bench            throughput/latency next to a broker-only baseline (a few minutes)"
	@echo "make bench-sweep      the same over prefetch 10..1000 (the README's curve)"
	@echo "make install          install into PREFIX (default /usr/local), honours DESTDIR"
	@echo "make format           format every C file with .clang-format"
	@echo "make format-check     fail when a C file is not formatted"
	@echo "make clean            remove build output"

# Dependency files of this build only.
-include $(patsubst %.c,$(BUILD)/%.d,$(COMMON_SRC) $(WORKER_SRC) $(PRODUCER_SRC) $(REPLIES_SRC) \
                                      $(UNIT_SRC) $(TOOL_SRC))
-include $(patsubst %.c,$(BUILD)/%.d,$(ADMIN_SRC))
-include $(patsubst %.c,build/fuzz/%.d,$(FUZZ_COMMON_SRC) tests/fuzz/fuzz.c \
                                          $(patsubst %,tests/fuzz/fuzz_%.c,$(FUZZ_TARGETS)))
