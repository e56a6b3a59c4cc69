# `make bench` (issue 8, docs/design.md §7): not part of `make check`. One invocation: builds the
# release library and the C bench programs, starts a fresh testbed on its own loopback
# addresses/ports (override any of the variables below), runs bench/bench.py inside it, and
# writes docs/BENCHMARKS.md, docs/bench.png (if matplotlib installs) and bench/results.json.
BENCH_DNS_ADDR     ?= 127.0.17.1
BENCH_DNS_PORT     ?= 5361
BENCH_PROXY_PORT   ?= 5370
BENCH_WEB_ADDR     ?= 127.0.47.1
BENCH_RUNS         ?= 5
BENCH_SCALE        ?= 1000 10000
BENCH_TESTBED_ENV  ?= DNS_ADDR=$(BENCH_DNS_ADDR) DNS_PORT=$(BENCH_DNS_PORT) DNS_ADDR6= MAIL_ADDR6= \
  DEAD_NS=127.0.17.9:$(BENCH_DNS_PORT) IMAP_PORT=17143 IMAPS_PORT=17993 POP3_PORT=17110 \
  POP3S_PORT=17995 SUBMISSION_PORT=17587 SUBMISSIONS_PORT=17465 \
  WEB_ADDR=$(BENCH_WEB_ADDR) WEB_SLOW_ADDR=$(basename $(BENCH_WEB_ADDR)).9 RELAY_ADDR=127.0.37.1
BENCH_BUILD := bench/build

.PHONY: bench bench-deps bench-programs

bench-deps:
	@$(PYTHON) -c 'import dns.resolver' 2>/dev/null || $(PYTHON) -m pip install -q dnspython
	@$(PYTHON) -c 'import matplotlib' 2>/dev/null || $(PYTHON) -m pip install -q matplotlib || \
	  echo "bench: matplotlib did not install; the report will have no plot" >&2

bench-programs: all
	@mkdir -p $(BENCH_BUILD)
	$(CC) -std=c11 -O2 -Wall -Wextra -Iinclude bench/certcheck_bench.c -o $(BENCH_BUILD)/certcheck_bench \
	  -L$(RELEASE_DIR) -lmailsrv -lssl -lcrypto -pthread -Wl,-rpath,$(abspath $(RELEASE_DIR))
	$(CC) -std=c11 -O2 -Wall -Wextra -Iinclude bench/footprint.c -o $(BENCH_BUILD)/footprint \
	  -L$(RELEASE_DIR) -lmailsrv -pthread -Wl,-rpath,$(abspath $(RELEASE_DIR))

bench: bench-deps bench-programs
	env $(BENCH_TESTBED_ENV) testbed/run.sh env \
	  MAILSRV_LIBRARY=$(abspath $(RELEASE_DIR))/libmailsrv.so MAILSRV_CLI=$(abspath $(RELEASE_DIR))/mailsrv \
	  BENCH_BIN=$(abspath $(BENCH_BUILD)) BENCH_RUNS=$(BENCH_RUNS) BENCH_SCALE="$(BENCH_SCALE)" \
	  BENCH_PROXY_ADDR=$(BENCH_DNS_ADDR) BENCH_PROXY_PORT=$(BENCH_PROXY_PORT) \
	  $(PYTHON) bench/bench.py

# Only the discovery rows (DNSKEY and DS anchors, roadblock detection), into
# bench/results-discovery.json; the report and results.json are left alone.
.PHONY: bench-discovery
bench-discovery: all
	@$(PYTHON) -c 'import dns.resolver' 2>/dev/null || $(PYTHON) -m pip install -q dnspython
	env $(BENCH_TESTBED_ENV) TESTBED_PARTS=dns testbed/run.sh env BENCH_ONLY=discovery \
	  MAILSRV_LIBRARY=$(abspath $(RELEASE_DIR))/libmailsrv.so MAILSRV_CLI=$(abspath $(RELEASE_DIR))/mailsrv \
	  BENCH_RUNS=$(BENCH_RUNS) BENCH_PROXY_ADDR=$(BENCH_DNS_ADDR) BENCH_PROXY_PORT=$(BENCH_PROXY_PORT) \
	  $(PYTHON) bench/bench.py

# Only the whole-account rows (issue 16: account discovery against the slowest source it
# needs; knotd, nginx and the mail servers), into bench/results-account.json, printed as the
# report's table; the report and results.json are left alone.
.PHONY: bench-account
bench-account: all
	@$(PYTHON) -c 'import dns.resolver' 2>/dev/null || $(PYTHON) -m pip install -q dnspython
	env $(BENCH_TESTBED_ENV) testbed/run.sh env BENCH_ONLY=account \
	  MAILSRV_LIBRARY=$(abspath $(RELEASE_DIR))/libmailsrv.so MAILSRV_CLI=$(abspath $(RELEASE_DIR))/mailsrv \
	  BENCH_RUNS=$(BENCH_RUNS) BENCH_PROXY_ADDR=$(BENCH_DNS_ADDR) BENCH_PROXY_PORT=$(BENCH_PROXY_PORT) \
	  $(PYTHON) bench/bench.py
