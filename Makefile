# The two commands README promises: `make demo` and `make test`. Both bootstrap everything they
# need (uv, pinned at the version below, then the locked environment) on a fresh machine.
UV_VERSION := 0.13.9
TOOLS := .cache/tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test lint types unit slow system bench soak sync constraints clean

demo: sync
	$(UV) run --frozen coder-task-agent-dev demo

test: lint types unit

lint: sync
	$(UV) run --frozen ruff format --check agent devkit tests bench
	$(UV) run --frozen ruff check agent devkit tests bench

types: sync
	$(UV) run --frozen mypy

# Three workers on two cores: most tests wait on real subprocesses and sockets, not the CPU.
# worksteal: an idle worker takes half of a busy one's queue, so the run ends when the work
# does (`load` hands a quarter of the tests out up front, and one worker can be left with the
# slow ones; tests/conftest.py orders the longest first). Bytecode is written even where the
# environment says not to: otherwise every worker rewrites every test module's assertions, and
# every `python -m agent` the tests start compiles its modules again, on every run.
unit: sync
	env -u PYTHONDONTWRITEBYTECODE $(UV) run --frozen pytest -n 3 --dist worksteal --cov --cov-report=term

# The long property runs and the whole containment matrix (a real subprocess per row): spread
# over three workers like `unit`.
slow: sync
	env -u PYTHONDONTWRITEBYTECODE $(UV) run --frozen pytest -m slow -q -n 3 --dist worksteal

system: sync
	$(UV) run --frozen pytest -m system tests/system -v

bench: sync
	$(UV) run --frozen python -m bench

# 30 minutes of everything at once against the stand-ins; writes bench/results/soak.json.
soak: sync
	$(UV) run --frozen python -m bench.soak

sync: $(UV)
	$(UV) sync --frozen --quiet

# The locked versions of the product's runtime dependencies, for `pip install -c constraints.txt`
# (docs/deploy.md): a wheel's metadata holds only the lower bounds of pyproject.toml.
# tests/test_constraints.py fails when this file and uv.lock disagree.
constraints: $(UV)
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --quiet -o constraints.txt

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage .coverage.* dist devkit/dist htmlcov
