# nn: build, test, install.  `make help` lists the targets.
#
# Sources are found by folder, so a new .c file needs no Makefile change:
# base/ ops/ io/ nn/ train/ make the library, tools/ the `nn` command, and
# each tests/test_<name>.c one Check suite (it defines `Suite *suite_<name>(void)`).
# Files named *_avx2.c / *_avx512.c get those instruction sets; the rest of the
# build targets plain x86-64 and picks SIMD paths at run time (base/cpu.h).

PREFIX ?= /usr/local
SAN ?= 0
TSAN ?= 0
# One build folder per configuration; a second compiler gets its own with
# BUILD=, e.g. `make test CC=clang BUILD=build-clang`.
BUILD ?= $(if $(filter 1,$(SAN)),build-san,$(if $(filter 1,$(TSAN)),build-tsan,build))

CC ?= cc
PKGS := openblas libjpeg libpng
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CFLAGS ?= -O3 -g
CFLAGS += -std=c11 -Wall -Wextra -Wno-unused-parameter -fPIC -pthread -D_GNU_SOURCE -I. $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lm -pthread
# float-cast-overflow (a double out of an integer's range converted to it) is
# in clang's -fsanitize=undefined but not in gcc's; named, gcc checks it too.
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined,float-cast-overflow
endif
ifeq ($(TSAN),1)
CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

AVX2_FLAGS := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx512vnni -mfma -mf16c -mavx2

LIB_SRC := $(sort $(wildcard base/*.c ops/*.c io/*.c nn/*.c train/*.c))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_HELPERS := $(filter-out $(TEST_SRC),$(sort $(wildcard tests/*.c)))
SUITES := $(patsubst tests/test_%.c,%,$(TEST_SRC))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o) $(TEST_HELPERS:%.c=$(BUILD)/%.o)

.PHONY: all deps test bench install uninstall clean help demo
all: $(BUILD)/libnn.a $(BUILD)/libnn.so $(BUILD)/bin/nn

help:
	@echo "make            build libnn.a, libnn.so and the nn command, in $(BUILD)/"
	@echo "make deps       install missing Debian packages (as root) or say which to install"
	@echo "make test       build and run the Check suites (SAN=1: under ASan + UBSan; TSAN=1: the"
	@echo "                concurrency tests under ThreadSanitizer; CC=clang BUILD=build-clang: with clang)"
	@echo "make bench      nn against PyTorch, side by side"
	@echo "make demo       fine-tune, evaluate, export and use a model (real photos if ../shared exists, else synthetic; minutes)"
	@echo "make install    PREFIX=$(PREFIX)"

deps:
	@tools/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libnn.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libnn.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/nn: $(TOOL_OBJ) $(BUILD)/libnn.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libnn.a $(LDLIBS)

# The suite table is generated from the file names.
$(BUILD)/tests/suites.h: $(TEST_SRC)
	@mkdir -p $(dir $@)
	@{ for s in $(SUITES); do echo "SUITE($$s)"; done; } > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/main.o: $(BUILD)/tests/suites.h
$(BUILD)/tests/main.o: CFLAGS += -I$(BUILD)/tests
$(TEST_OBJ): CFLAGS += $(CHECK_CFLAGS)

$(BUILD)/nn_tests: $(TEST_OBJ) $(BUILD)/libnn.a $(BUILD)/bin/nn
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libnn.a $(LDLIBS) $(CHECK_LIBS)

# NN_BIN lets CLI tests run the nn built alongside them.
# Then the kernels and the golden network again on every lower SIMD path the
# CPU has (NN_SIMD caps the level; base/cpu.h).
SIMD_SUITES := gemm gemm_lowp conv batchnorm pool ops fused golden $(filter winograd,$(SUITES))
ifeq ($(TSAN),1)
# Under ThreadSanitizer only what runs threads: every suite's "concurrency"
# case (contexts from 8 threads on one model, concurrent GEMM callers, the
# pool resized under load) and the server suite (nn serve, built with TSan
# too, under concurrent clients). A race ends the test at once (exit 66),
# and a race in the server makes its exit status fail the test. No
# suppressions. NN_SAN=thread tells timing-based tests that all runs ~10x slower.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	CK_TIMEOUT_MULTIPLIER=10 NN_BIN=$(abspath $(BUILD)/bin/nn) NN_BUILD=$(BUILD) NN_SAN=thread
test: deps
	@$(MAKE) --no-print-directory $(BUILD)/nn_tests
	$(TSAN_ENV) CK_RUN_CASE=concurrency $(BUILD)/nn_tests
	$(TSAN_ENV) CK_RUN_SUITE=serve $(BUILD)/nn_tests
else
test: deps
	@$(MAKE) --no-print-directory $(BUILD)/nn_tests
	NN_BIN=$(abspath $(BUILD)/bin/nn) NN_BUILD=$(BUILD) NN_SAN=$(SAN) NN_CC="$(CC)" $(BUILD)/nn_tests
	@for simd in avx2 scalar; do for suite in $(SIMD_SUITES); do \
	    echo "NN_SIMD=$$simd CK_RUN_SUITE=$$suite"; \
	    NN_SIMD=$$simd CK_RUN_SUITE=$$suite CK_VERBOSITY=silent $(BUILD)/nn_tests || exit 1; \
	done; done
endif

# nn against PyTorch side by side (RUNS=5 THREADS=2 by default; see tools/scripts/bench.sh).
# Speed is measured here, never in tests.
bench: all
	tools/scripts/bench.sh $(BUILD)/bin/nn

# nn's main job end to end: import ImageNet weights, finetune on real photos (hymenoptera in
# ../shared), eval, export, predict; without ../shared the same path on generated photos
# (tools/scripts/demo.sh). A few minutes on 2 cores. Results in $(BUILD)/demo. Like `make test`,
# it installs missing packages first; the sub-make then sees their compiler flags.
DEMO_DATA ?= ../shared/data/hymenoptera
DEMO_WEIGHTS ?= ../shared/weights/inception_v3_imagenet2015.safetensors
demo: deps
	@$(MAKE) --no-print-directory all
	tools/scripts/demo.sh $(BUILD)/bin/nn $(DEMO_DATA) $(DEMO_WEIGHTS) $(BUILD)/demo

# nn_gemm against OpenBLAS, with OPENBLAS_CORETYPE=Haswell and unset (ARGS: see tools/scripts/bench_gemm.c).
.PHONY: bench-gemm
bench-gemm: $(BUILD)/bench_gemm
	OPENBLAS_CORETYPE=Haswell $(BUILD)/bench_gemm $(ARGS)
	env -u OPENBLAS_CORETYPE $(BUILD)/bench_gemm $(ARGS)

$(BUILD)/bench_gemm: tools/scripts/bench_gemm.c $(BUILD)/libnn.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libnn.a $(LDLIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/nn/base $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libnn.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libnn.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 nn/nn.h $(DESTDIR)$(PREFIX)/include/nn/
	install -d $(DESTDIR)$(PREFIX)/share/nn/examples
	install -m 644 tools/examples/classify.c $(DESTDIR)$(PREFIX)/share/nn/examples/
	install -m 644 base/status.h base/log.h $(DESTDIR)$(PREFIX)/include/nn/base/
	install -m 755 $(BUILD)/bin/nn $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' tools/nn.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/nn
	rm -f $(DESTDIR)$(PREFIX)/lib/libnn.a $(DESTDIR)$(PREFIX)/lib/libnn.so $(DESTDIR)$(PREFIX)/bin/nn $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn.pc

clean:
	rm -rf build build-san build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
