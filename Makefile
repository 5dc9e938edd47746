# Two commands do everything on a fresh machine (Python 3.11 + pip):
#   make demo   - set up, then run the main job on the embedded default
#   make test   - set up, then run the test suite
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup system-deps demo test bench lint clean gpu-check-prepare

setup: system-deps .venv/.synced

# Debian's Chromium + ChromeDriver drive the web page's browser tests
# (tests/test_webapp_browser.py); installed once, as root or through sudo.
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }
	@# terraform fmt's formatter (hclwrite as WebAssembly): no terraform binary installs offline
	@test -d .tools/node_modules/@cdktf/hcl-tools || npm install --silent --no-audit --no-fund \
	  --prefix .tools @cdktf/hcl-tools@0.21.0

# uv comes from PyPI through pip; it then installs exactly what uv.lock pins,
# compiled to bytecode: uv installs without it, and where Python may not write
# it (PYTHONDONTWRITEBYTECODE, a read-only venv) every command compiled Beam's
# ~1,900 modules afresh: 2.7 s of CPU of `unibed build`'s start-up
# (benchmarks/bench_fixed_cost.py, DESIGN.md "Fixed cost").
.venv/.synced: pyproject.toml uv.lock
	$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras --python 3.11 --compile-bytecode
	touch $@

demo: setup
	.venv/bin/unibed demo --workdir out

test: setup
	.venv/bin/pytest -n 2 --dist loadfile

# Printed figures, never pass/fail (see benchmarks/README.md); about 2 hours on 2 cores.
bench: setup
	.venv/bin/python -m benchmarks.bench_preprocess
	.venv/bin/python -m benchmarks.bench_hamming_search
	.venv/bin/python -m benchmarks.bench_dedup_threshold
	.venv/bin/python -m benchmarks.bench_csv_rows
	.venv/bin/python -m benchmarks.bench_generic_readers
	.venv/bin/python -m benchmarks.bench_build
	.venv/bin/python -m benchmarks.bench_fetch
	.venv/bin/python -m benchmarks.bench_input_pipeline
	.venv/bin/python -m benchmarks.bench_train_step
	.venv/bin/python -m benchmarks.bench_heads
	.venv/bin/python -m benchmarks.bench_retrieval
	.venv/bin/python -m benchmarks.bench_open_set
	.venv/bin/python -m benchmarks.bench_hostile_members
	.venv/bin/python -m benchmarks.bench_hostile_jpeg
	.venv/bin/python -m benchmarks.bench_dedup_edits
	.venv/bin/python -m benchmarks.bench_fixed_cost
	.venv/bin/python -m benchmarks.bench_build_scale
	.venv/bin/python -m benchmarks.bench_dataflow_job

# What benchmarks/gpu_check.sh needs on a GPU machine without network or TensorFlow:
# keras / keras-hub wheels for CPython 3.12 and the sample as arrays, in .gpu_check/ (~35 MiB)
gpu-check-prepare: setup
	.venv/bin/python -m benchmarks.gpu_check_prepare --out .gpu_check

lint: setup
	.venv/bin/ruff check .

clean:
	rm -rf out .pytest_cache
