# mk/fuzz.mk: the fuzz targets of tests/fuzz/.  Included by the Makefile.
#
#   make fuzz        installs clang if missing, builds each target with libFuzzer, ASan and UBSan into
#                    build-fuzz/, runs each for FUZZ_SECONDS (default 60) from tests/fuzz/corpus/NAME/ and
#                    prints one table (executions, exec/s, crashes); fails if any target crashed.
#                    FUZZ_TARGETS="thaidate config" runs only those.  New inputs are kept in
#                    build-fuzz/corpus/NAME/, crashes in build-fuzz/crashes/ (add a fixed one to the seeds).
#   make all/check   also builds $(BUILD)/tests/test-fuzz-replay-NAME with the normal compiler and
#                    tests/fuzz/replay.c: every seed of the target once, counted like a unit test.

FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz-%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_PKGS    := clang libclang-rt-14-dev
FUZZ_HEADERS := $(wildcard tests/fuzz/*.h)
FUZZ_REPLAY  := $(FUZZ_NAMES:%=$(BUILD)/tests/test-fuzz-replay-%)

# What each target compiles besides itself and the core library: the tower agent's own modules (the
# channel targets #include the plugin sources, as their unit tests do).
fuzz_extra = $(if $(filter tower-agent,$(1)),src/tower/tower-item.c src/tower/tower-schedule.c)
fuzz_deps  = $(call fuzz_extra,$(1)) $(FUZZ_HEADERS) \
             $(if $(filter facebook line tower-channel,$(1)),$(wildcard channels/$(subst -channel,,$(1))/*.[ch]) \
               channels/plugin-util.h tests/unit/fake-host.h)

.PHONY: fuzz fuzz-deps fuzz-build
all: $(FUZZ_REPLAY)

$(BUILD)/tests/test-fuzz-replay-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c $(BUILD)/libprakat.a $$(call fuzz_deps,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -Itests/unit -Itests/fuzz -DFUZZ_CORPUS='"$(CURDIR)/tests/fuzz/corpus/$*"' \
	  -o $@ $< tests/fuzz/replay.c $(call fuzz_extra,$*) $(BUILD)/libprakat.a $(LDFLAGS) $(DEP_LIBS) -ldl -lm

# ---- libFuzzer builds: the core instrumented for coverage, each target linked with libFuzzer's main.
# clang also warns about initialisers that leave trailing members zero, which the code does on purpose.

FUZZ_CFLAGS := $(filter-out -O2 -O3,$(CFLAGS)) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -Wno-missing-field-initializers
FUZZ_CORE_OBJ := $(CORE_SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o)

# The Makefile's deps, asked for the fuzzing packages only.
fuzz-deps:
	@$(MAKE) --no-print-directory deps DEBIAN_PKGS="$(FUZZ_PKGS)"

$(FUZZ_BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) channels/prakat-channel.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEP_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libprakat.a: $(FUZZ_CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_BUILD)/libprakat.a $$(call fuzz_deps,$$*)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(DEP_CFLAGS) -Itests/unit -Itests/fuzz -o $@ $< \
	  $(call fuzz_extra,$*) $(FUZZ_BUILD)/libprakat.a $(DEP_LIBS) -ldl -lm

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz-%)

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)
