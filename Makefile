# prakat: build, test and run.  `make` builds everything into build/.
#   make run      install missing Debian packages, build, start prakatd on conf/run.conf
#   make check    unit + integration tests, then again under AddressSanitizer + UBSan, then a subset
#                 of the integration tests under valgrind memcheck (mk/valgrind.mk)
#   make bench    benchmarks (figures are printed, not asserted)
#   make SANITIZE=1 BUILD=build-asan   the sanitizer build on its own

BUILD    ?= build
PREFIX   ?= /usr/local
# /etc even for /usr/local: DESIGN §1 names /etc/prakat/prakat.conf (make install and debian/ use these).
SYSCONFDIR ?= /etc
CC       ?= cc
PKG_CONFIG ?= pkg-config
PKGS     := libsystemd libcurl jansson libmosquitto inih
PLUGINDIR ?= $(PREFIX)/lib/prakat/channels
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

CFLAGS   ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter -fno-strict-aliasing -D_GNU_SOURCE -Isrc -Ichannels \
            -DPRAKAT_PLUGIN_DIR='"$(PLUGINDIR)"' -DPRAKAT_CONFIG='"$(SYSCONFDIR)/prakat/prakat.conf"'
ifeq ($(SANITIZE),1)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
endif

# Dependencies only through pkg-config.  `make deps` first if this fails.
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
# libcurl is dlopen()ed by src/http.c on first use (headers from pkg-config, no -lcurl).
DEP_LIBS   := $(filter-out -lcurl,$(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null))
# libqrencode: only the operator command links it (the newsletter's QR codes, src/digest.c).
CLI_LIBS   := $(or $(shell $(PKG_CONFIG) --libs libqrencode 2>/dev/null),-lqrencode)
# Plugins may use jansson for the platforms' JSON; nothing else of the core's dependencies.
PLUGIN_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson libmosquitto 2>/dev/null)
PLUGIN_LIBS   := $(shell $(PKG_CONFIG) --libs jansson libmosquitto 2>/dev/null)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

MAINS      := src/prakatd.c src/prakat.c src/prakat-tower.c
CORE_SRC   := $(filter-out $(MAINS),$(wildcard src/*.c))
# The tower agent: src/prakat-tower.c plus its own modules in src/tower/.
TOWER_SRC  := $(wildcard src/tower/*.c)
TOWER_OBJ  := $(TOWER_SRC:src/tower/%.c=$(BUILD)/obj/tower/%.o)
TOWER_BIN  := $(if $(wildcard src/prakat-tower.c),$(BUILD)/prakat-tower)
CORE_OBJ   := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
CHANNELS   := $(notdir $(patsubst %/,%,$(wildcard channels/*/)))
PLUGINS    := $(CHANNELS:%=$(BUILD)/channels/%.so)
UNIT_SRC   := $(wildcard tests/unit/test-*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

DEBIAN_PKGS := build-essential pkg-config libsystemd-dev libcurl4-openssl-dev libjansson-dev \
               libmosquitto-dev libinih-dev libcmocka-dev mosquitto mosquitto-clients \
               python3 python3-feedparser chromium valgrind openssh-server vsftpd libqrencode-dev zbar-tools

.PHONY: all deps run check check-unit check-integration check-asan bench clean
all: $(BUILD)/prakatd $(BUILD)/prakat $(TOWER_BIN) $(PLUGINS) $(UNIT_BIN)

deps:
	@missing=""; for p in $(DEBIAN_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) channels/prakat-channel.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -c -o $@ $<

$(BUILD)/obj/tower/%.o: src/tower/%.c $(wildcard src/*.h src/tower/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) -c -o $@ $<

$(BUILD)/libprakat.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/prakatd: $(BUILD)/obj/prakatd.o $(BUILD)/libprakat.a
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(DEP_LIBS) -ldl -lm

$(BUILD)/prakat: $(BUILD)/obj/prakat.o $(BUILD)/libprakat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(CLI_LIBS) -ldl -lm

$(BUILD)/prakat-tower: $(BUILD)/obj/prakat-tower.o $(TOWER_OBJ) $(BUILD)/libprakat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) -ldl -lm

# A plugin includes only channels/prakat-channel.h and links against nothing of the core.
.SECONDEXPANSION:
$(BUILD)/channels/%.so: $$(wildcard channels/$$*/*.c channels/$$*/*.h) $(wildcard channels/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PLUGIN_CFLAGS) -fPIC -fvisibility=hidden -shared -o $@ $(wildcard channels/$*/*.c) \
	  $(LDFLAGS) $(PLUGIN_LIBS) -lm

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libprakat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEP_CFLAGS) $(CMOCKA_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libprakat.a \
	  $(LDFLAGS) $(CMOCKA_LIBS) $(DEP_LIBS) -ldl -lm

# A plugin's unit test #includes the plugin's source, so it depends on it; so do the tower agent's.
$(BUILD)/tests/test-website: $(wildcard channels/website/*.c) tests/unit/fake-host.h
$(BUILD)/tests/test-upload: $(wildcard channels/website/upload.[ch] channels/*.h) tests/unit/fake-host.h
$(BUILD)/tests/test-wordpress: $(wildcard channels/website/wordpress.[ch] channels/*.h) tests/unit/fake-host.h
$(BUILD)/tests/test-facebook: $(wildcard channels/facebook/*.[ch] channels/*.h) tests/unit/fake-host.h
$(BUILD)/tests/test-line: $(wildcard channels/line/*.[ch] channels/*.h) tests/unit/fake-host.h
$(BUILD)/tests/test-tower-channel: $(wildcard channels/tower/*.[ch] channels/*.h) tests/unit/fake-host.h
$(BUILD)/tests/test-tower-%: $(wildcard src/tower/*.[ch])
$(BUILD)/obj/prakat-tower.o: $(wildcard src/tower/*.h)

run: deps
	@$(MAKE) --no-print-directory all
	@sh tests/run-local.sh $(BUILD)

check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) SANITIZE=1 BUILD=build-asan all
	@sh tests/run-all.sh build build-asan valgrind:build

check-unit: all
	@sh tests/run-all.sh --unit-only $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench-floor
	@sh tests/bench/run.sh $(BUILD)

# The floor under the core's CPU figure: DESIGN's file operations alone (tests/bench/floor.c).
$(BUILD)/bench-floor: tests/bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<

clean:
	rm -rf build build-asan

# Further targets (install, packaging, ...) live in mk/*.mk, one file per concern.
-include $(wildcard mk/*.mk)
