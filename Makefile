# diffbench: `make demo` (set-up, build, run the main job) and `make test` (set-up, build, all tests).
# LibTorch comes from PyPI's torch wheel in a per-user virtualenv keyed by the pinned versions, so a
# fresh clone reuses it; LIBTORCH=DIR uses a LibTorch of your own instead (DIR holds share/cmake/Torch).

SHELL := /bin/bash
PYTHON ?= python3
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

DEB_PACKAGES := cmake ninja-build g++ pkg-config python3-venv nlohmann-json3-dev libtomlplusplus-dev \
                libcli11-dev libpng-dev zlib1g-dev libutf8proc-dev libxxhash-dev libgtest-dev libgmock-dev libgloo-dev

# Only tests need these: headless Chromium renders report.html in tests/report, Open MPI's mpirun
# launches tests/dist's two-process run (each skipped without it).
TEST_DEB_PACKAGES := chromium openmpi-bin

VENV_KEY := $(shell cat tools/requirements-torch.txt <($(PYTHON) -c 'import sys;print(sys.version_info[:2])') | sha1sum | cut -c1-12)
VENV ?= $(HOME)/.cache/diffbench/venv-$(VENV_KEY)

ifdef LIBTORCH
TORCH_PREFIX := $(LIBTORCH)
TORCH_DEP :=
else
TORCH_PREFIX = $(shell $(VENV)/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
TORCH_DEP := $(VENV)/.ready
endif

GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo -G Ninja)

.PHONY: all deps venv configure build test demo fuzz clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(VENV)/.ready: tools/requirements-torch.txt
	@echo "creating $(VENV) (torch wheel, a few GB, once per machine)"
	@mkdir -p $(dir $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r tools/requirements-torch.txt
	@touch $@

venv: $(TORCH_DEP)

configure: deps venv
	cmake -S . -B $(BUILD_DIR) $(GENERATOR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_PREFIX_PATH="$(TORCH_PREFIX)" $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(TEST_DEB_PACKAGES)" || \
	  echo "note: without chromium the browser tests of report.html are skipped"
	cd $(BUILD_DIR) && ctest --output-on-failure -j 1

demo: configure  # the command only: the tests are not built
	cmake --build $(BUILD_DIR) -j $(JOBS) --target diffbench_cli
	./tools/demo.sh $(BUILD_DIR)/bin/diffbench

fuzz: deps venv  # libFuzzer targets (clang, ASan + UBSan), each run FUZZ_SECONDS on a seed corpus; fails on any finding
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="clang libclang-rt-dev"
	FUZZ_TORCH="$(TORCH_PREFIX)" ./tools/fuzz.sh $(or $(FUZZ_SECONDS),30) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD_DIR)
