# The two commands: `make run` serves the site, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# `make test PYTEST_WORKERS=2` runs on two processes (pytest-xdist; a test file stays on
# one, so its module-scoped servers start once). The default is one process: under a second
# process's load, the relay-rate test's arrival jitter can pass its tolerance.
PYTEST_WORKERS ?= 0
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
CHROMIUM_BIN ?= /usr/bin/chromium
PORT   ?= 5000

.PHONY: run test browser-deps mta-deps test-deployed lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# Reinstall when the dependencies change.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: export NEWSLETTER_DEBUG ?= 1
run: export NEWSLETTER_SEND_IN_WEB ?= 1
run: export NEWSLETTER_BASE_URL ?= http://127.0.0.1:$(PORT)
run: $(VENV)/.installed-run
	$(BIN)/newsletter db upgrade
	$(BIN)/newsletter seed-demo --if-empty
	$(BIN)/newsletter admin demo
	$(BIN)/newsletter serve --host 127.0.0.1 --port $(PORT)

# Debian's Chromium for the browser tests (tests/browser use $(CHROMIUM_BIN)) and Debian's
# SpamAssassin for the digest's offline spam score (tests/integration/test_digest_spam.py).
# Each is installed only when missing and apt is usable (root); otherwise its tests skip and
# say why.
browser-deps:
	@[ -x $(CHROMIUM_BIN) ] || \
	{ [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } || \
	echo "make: could not install chromium; browser tests will be skipped" >&2
	@command -v spamassassin >/dev/null || \
	{ [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spamassassin; }; } || \
	echo "make: could not install spamassassin; the digest spam test will be skipped" >&2

# Debian's Postfix and swaks for the deployed lane (tests/deployed runs private Postfix
# instances on loopback; the system's own instance is left unconfigured and never started).
# Installed only when missing and apt is usable (root); otherwise this fails: the lane needs them.
mta-deps:
	@{ [ -x /usr/sbin/postfix ] || command -v postfix >/dev/null; } && command -v swaks >/dev/null || \
	{ [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && \
	  { echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix swaks; }; } || \
	{ echo "make: could not install postfix and swaks, which the deployed lane needs" >&2; exit 1; }

# pytest exits 5 when it collected no test: that is a failure here, with a clear word.
# The deployed lane (tests/deployed) runs by `make test-deployed` only.
test: $(VENV)/.installed-test browser-deps
	@$(BIN)/python -m pytest --ignore=tests/deployed $(XDIST) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

# The product as deployed: gunicorn, workers, PostgreSQL, Redis and a real Postfix.
test-deployed: $(VENV)/.installed-test mta-deps
	@$(BIN)/python -m pytest tests/deployed $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-deployed: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) instance .pytest_cache test-artifacts

bench: $(VENV)/.installed-test
	$(BIN)/python bench/mail_path.py
	$(BIN)/python bench/delivery.py
