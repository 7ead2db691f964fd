# hookstream — the two commands for a fresh machine are `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
HS     := $(VENV)/bin/hookstream

.PHONY: install run test unit lint lock bench stack-up stack-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The whole pipeline with a demo partner: the stack, every service as `hookstream run <name>`, signed sample webhooks.
run: install
	$(HS) demo

test: install
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# The image's locks (hash-pinned, every platform): the runtime dependencies and the build tools. Rerun
# after changing pyproject.toml's dependencies; tests/deploy/test_image.py says when it is due.
LOCK := $(VENV)/bin/uv pip compile --universal --python-version 3.11 --generate-hashes --no-header --annotation-style line
lock: install
	$(LOCK) pyproject.toml -o requirements.lock
	$(PY) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')" \
		| $(LOCK) - -o build.lock

# Needs a running stack (`hookstream dev up`), Go (loadgen) and wrk (Debian) for the ingress runs.
bench: install
	$(PY) bench/devstack_start.py
	$(PY) bench/ingress.py
	$(PY) bench/normalizer.py
	$(PY) bench/delivery.py
	$(PY) bench/e2e.py

stack-up: install
	$(HS) dev up

stack-down: install
	$(HS) dev down

# Stops the local servers and removes their data; the jar cache (~/.cache/hookstream) stays.
clean:
	-@test -x $(HS) && $(HS) dev down
	rm -rf .hookstream .pytest_cache .mypy_cache .ruff_cache
