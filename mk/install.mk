# mk/install.mk: installing prakat, and its Debian packages.  Included by the Makefile.
#
#   make install     [PREFIX=/usr/local] [SYSCONFDIR=/etc] [DESTDIR=/tmp/tree]
#   make uninstall   with the same variables: removes exactly what install put there
#   make deb         build/deb/prakat_*.deb and prakat-tower_*.deb (dpkg-buildpackage in a copy)
#   make check-install   tests/integration/test_install.py on its own
#   make check-nspawn    the same, plus the unit run by a real systemd inside systemd-nspawn (root)
#
# Build with the same PREFIX and SYSCONFDIR as you install with: the default config path and the
# plugin directory are compiled into the programs.  install-daemon and install-tower are the two
# halves the Debian packages are made of.  Without DESTDIR, as root, install also creates the users
# (systemd-sysusers) and the spool (systemd-tmpfiles), and reloads systemd when it is running.

BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/prakat
CONFDIR     := $(SYSCONFDIR)/prakat

# systemd's directories.  For PREFIX=/usr, where systemd says (on Debian 12 units are in
# /lib/systemd/system); otherwise under PREFIX, which systemd also searches for /usr/local.
ifeq ($(PREFIX),/usr)
systemd_dir = $(or $(shell $(PKG_CONFIG) --variable=$(1) systemd 2>/dev/null),$(2))
UNITDIR     ?= $(call systemd_dir,systemdsystemunitdir,/lib/systemd/system)
SYSUSERSDIR ?= $(call systemd_dir,sysusersdir,/usr/lib/sysusers.d)
TMPFILESDIR ?= $(call systemd_dir,tmpfilesdir,/usr/lib/tmpfiles.d)
else
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
endif

# What packaging and tests/integration/test_install.py need besides the build.
DEBIAN_PKGS += systemd mandoc debhelper lintian
# Each channel's README (keys, behaviour) goes to DOCDIR/channels/NAME/README.md; prakat.conf(5) points there.
CHANNEL_DOCS := $(wildcard channels/*/README.md)

INSTALL      ?= install
INSTALL_DIR  := $(INSTALL) -d -m 0755
INSTALL_PROG := $(INSTALL) -m 0755
INSTALL_DATA := $(INSTALL) -m 0644

# The files in systemd/ and man/ name the Debian paths; these rewrite them for other prefixes.
UNIT_SED := -e 's|/usr/sbin/prakatd|$(SBINDIR)/prakatd|g' \
            -e 's|/usr/\(local/\)\{0,1\}s\{0,1\}bin/prakat-tower|$(SBINDIR)/prakat-tower|g' \
            -e 's|/usr/bin/prakat\([^-.a-z]\)|$(BINDIR)/prakat\1|g' \
            -e 's|/etc/prakat/|$(CONFDIR)/|g' \
            -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

TOWER_UNITS   := $(wildcard systemd/prakat-tower*.service)
DAEMON_UNITS  := $(filter-out $(TOWER_UNITS),$(wildcard systemd/*.service))
TOWER_MANS    := $(wildcard man/prakat-tower.[1-8])
DAEMON_MANS   := $(filter-out $(TOWER_MANS),$(wildcard man/*.[1-8]))
TOWER_CONF    := $(wildcard conf/prakat-tower.conf.example)
EXAMPLES      := conf/prakat.conf.example $(wildcard conf/samba-prakat.conf.example)
EXAMPLE_FILES := $(shell find conf/examples -type f 2>/dev/null | LC_ALL=C sort)

# Folders that belong to prakat alone, deepest first: uninstall removes them once they are empty.
EXAMPLE_DIRS := $(filter-out $(DOCDIR)/examples,$(sort $(patsubst %/,%,$(dir \
                  $(patsubst conf/examples/%,$(DOCDIR)/examples/%,$(EXAMPLE_FILES))))))
PRAKAT_DIRS  := $(EXAMPLE_DIRS) $(DOCDIR)/examples $(DOCDIR) $(PLUGINDIR) \
                $(filter %/prakat,$(patsubst %/,%,$(dir $(PLUGINDIR)))) $(CONFDIR)

# man/NAME.N -> $(MANDIR)/manN/NAME.N
man_target = $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(1)))/$(notdir $(1))

.PHONY: programs install install-daemon install-tower uninstall uninstall-daemon uninstall-tower \
        deb check-install check-nspawn

programs: $(BUILD)/prakatd $(BUILD)/prakat $(TOWER_BIN) $(PLUGINS)

install: install-daemon install-tower

install-daemon: $(BUILD)/prakatd $(BUILD)/prakat $(PLUGINS)
	$(INSTALL_DIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(CONFDIR) $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL_PROG) $(BUILD)/prakatd $(DESTDIR)$(SBINDIR)/prakatd
	$(INSTALL_PROG) $(BUILD)/prakat $(DESTDIR)$(BINDIR)/prakat
	$(if $(PLUGINS),$(INSTALL_DATA) $(PLUGINS) $(DESTDIR)$(PLUGINDIR)/)
	@set -e; for u in $(DAEMON_UNITS); do \
	  echo "  UNIT  $(DESTDIR)$(UNITDIR)/$${u#systemd/}"; \
	  sed $(UNIT_SED) $$u > $(DESTDIR)$(UNITDIR)/$${u#systemd/}.tmp; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#systemd/}.tmp; \
	  mv -f $(DESTDIR)$(UNITDIR)/$${u#systemd/}.tmp $(DESTDIR)$(UNITDIR)/$${u#systemd/}; \
	done
	$(INSTALL_DATA) systemd/prakat.sysusers $(DESTDIR)$(SYSUSERSDIR)/prakat.conf
	$(INSTALL_DATA) systemd/prakat.tmpfiles $(DESTDIR)$(TMPFILESDIR)/prakat.conf
	@set -e; for m in $(DAEMON_MANS); do \
	  d=$(DESTDIR)$(MANDIR)/man$${m##*.}; $(INSTALL_DIR) $$d; \
	  echo "  MAN   $$d/$${m#man/}"; $(INSTALL_DATA) $$m $$d/; \
	done
	@# An existing configuration is the administrator's: never overwrite it.
	@if [ -e $(DESTDIR)$(CONFDIR)/prakat.conf ]; then \
	  echo "  KEEP  $(DESTDIR)$(CONFDIR)/prakat.conf (exists)"; \
	else \
	  echo "  CONF  $(DESTDIR)$(CONFDIR)/prakat.conf"; \
	  $(INSTALL_DATA) conf/prakat.conf.example $(DESTDIR)$(CONFDIR)/prakat.conf; \
	fi
	$(INSTALL_DATA) README.md $(DESTDIR)$(DOCDIR)/README.md
	@set -e; for f in $(CHANNEL_DOCS); do \
	  $(INSTALL_DIR) $(DESTDIR)$(DOCDIR)/$$(dirname $$f); $(INSTALL_DATA) $$f $(DESTDIR)$(DOCDIR)/$$f; \
	done
	$(INSTALL_DATA) $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	@set -e; for f in $(EXAMPLE_FILES); do \
	  rel=$${f#conf/examples/}; $(INSTALL_DIR) $(DESTDIR)$(DOCDIR)/examples/$$(dirname $$rel); \
	  $(INSTALL_DATA) $$f $(DESTDIR)$(DOCDIR)/examples/$$rel; \
	done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
	  echo "  systemd-sysusers, systemd-tmpfiles --create"; \
	  systemd-sysusers $(SYSUSERSDIR)/prakat.conf; \
	  systemd-tmpfiles --create $(TMPFILESDIR)/prakat.conf; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

install-tower: $(TOWER_BIN)
	@set -e; \
	if [ -n "$(TOWER_BIN)" ]; then \
	  $(INSTALL_DIR) $(DESTDIR)$(SBINDIR); \
	  echo "  PROG  $(DESTDIR)$(SBINDIR)/prakat-tower"; \
	  $(INSTALL_PROG) $(TOWER_BIN) $(DESTDIR)$(SBINDIR)/prakat-tower; \
	fi; \
	for u in $(TOWER_UNITS); do \
	  $(INSTALL_DIR) $(DESTDIR)$(UNITDIR); \
	  echo "  UNIT  $(DESTDIR)$(UNITDIR)/$${u#systemd/}"; \
	  sed $(UNIT_SED) $$u > $(DESTDIR)$(UNITDIR)/$${u#systemd/}; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#systemd/}; \
	done; \
	for m in $(TOWER_MANS); do \
	  d=$(DESTDIR)$(MANDIR)/man$${m##*.}; $(INSTALL_DIR) $$d; \
	  echo "  MAN   $$d/$${m#man/}"; $(INSTALL_DATA) $$m $$d/; \
	done; \
	for c in $(TOWER_CONF); do \
	  $(INSTALL_DIR) $(DESTDIR)$(CONFDIR); \
	  if [ -e $(DESTDIR)$(CONFDIR)/prakat-tower.conf ]; then \
	    echo "  KEEP  $(DESTDIR)$(CONFDIR)/prakat-tower.conf (exists)"; \
	  else \
	    echo "  CONF  $(DESTDIR)$(CONFDIR)/prakat-tower.conf"; \
	    $(INSTALL_DATA) $$c $(DESTDIR)$(CONFDIR)/prakat-tower.conf; \
	  fi; \
	done; \
	if [ -z "$(DESTDIR)" ] && [ -n "$(TOWER_UNITS)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# Removes what install put there.  A configuration that differs from the example was edited by the
# administrator and stays; so do the spool, the state and the users (see README, "Installing at an
# office", for removing those too).
uninstall: uninstall-daemon uninstall-tower

uninstall-daemon:
	rm -f $(DESTDIR)$(SBINDIR)/prakatd $(DESTDIR)$(BINDIR)/prakat
	rm -f $(addprefix $(DESTDIR)$(PLUGINDIR)/,$(notdir $(PLUGINS)))
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(DAEMON_UNITS)))
	rm -f $(DESTDIR)$(SYSUSERSDIR)/prakat.conf $(DESTDIR)$(TMPFILESDIR)/prakat.conf
	rm -f $(foreach m,$(DAEMON_MANS),$(call man_target,$(m)))
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(CHANNEL_DOCS))
	-rmdir $(addprefix $(DESTDIR)$(DOCDIR)/,$(sort $(dir $(CHANNEL_DOCS)))) $(DESTDIR)$(DOCDIR)/channels 2>/dev/null
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(EXAMPLES)))
	rm -f $(patsubst conf/examples/%,$(DESTDIR)$(DOCDIR)/examples/%,$(EXAMPLE_FILES))
	@if [ -e $(DESTDIR)$(CONFDIR)/prakat.conf ]; then \
	  if cmp -s conf/prakat.conf.example $(DESTDIR)$(CONFDIR)/prakat.conf; then \
	    rm -f $(DESTDIR)$(CONFDIR)/prakat.conf; \
	  else \
	    echo "  KEEP  $(DESTDIR)$(CONFDIR)/prakat.conf (edited; remove it by hand if you want)"; \
	  fi; \
	fi
	@# prakat's own folders go once empty, deepest first; shared ones (bin/, man/, ...) stay.
	@for d in $(PRAKAT_DIRS); do rmdir $(DESTDIR)$$d 2>/dev/null || true; done
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

uninstall-tower:
	rm -f $(DESTDIR)$(SBINDIR)/prakat-tower
	$(if $(TOWER_UNITS),rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(TOWER_UNITS))))
	$(if $(TOWER_MANS),rm -f $(foreach m,$(TOWER_MANS),$(call man_target,$(m))))
	@for c in $(TOWER_CONF); do \
	  f=$(DESTDIR)$(CONFDIR)/prakat-tower.conf; [ -e $$f ] || continue; \
	  if cmp -s $$c $$f; then rm -f $$f; \
	  else echo "  KEEP  $$f (edited; remove it by hand if you want)"; fi; \
	done; \
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true

# Debian packages, built by dpkg-buildpackage in a copy of the git-tracked files under /tmp, so that
# nothing is written outside build/ (dpkg-buildpackage writes into the parent folder) and a build
# never sees half-written files of work in progress that git does not track yet.
DEB_OUT ?= $(BUILD)/deb

deb:
	@set -e; top=$$(pwd); \
	version=$$(dpkg-parsechangelog -l debian/changelog -S Version); \
	tmp=$$(mktemp -d /tmp/prakat-deb.XXXXXX); trap 'rm -rf "$$tmp"' EXIT INT TERM; \
	src=$$tmp/prakat-$$version; mkdir -p $$src; \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $$src; \
	else \
	  tar --exclude=./build --exclude=./build-asan --exclude=./run --exclude=./tests/out -cf - . | tar -xf - -C $$src; \
	fi; \
	echo "  DEB   prakat $$version in $$src (log: $(DEB_OUT)/build.log)"; \
	mkdir -p $(DEB_OUT); rm -f $(DEB_OUT)/*.deb; \
	if ! (cd $$src && dpkg-buildpackage -us -uc -b -j2) > $(DEB_OUT)/build.log 2>&1; then \
	  tail -n 40 $(DEB_OUT)/build.log; echo "make deb: dpkg-buildpackage failed, see $(DEB_OUT)/build.log"; exit 1; \
	fi; \
	cp $$tmp/*.deb $(DEB_OUT)/; \
	ls -1 $(DEB_OUT)/*.deb

check-install: programs
	PRAKAT_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/integration/test_install.py

# Optional, as root: the same, plus prakatd.service booted for real, by systemd 252 in a Debian root
# made with debootstrap (cached in /var/tmp/prakat-nspawn-root), inside systemd-nspawn.  Never boot
# systemd on the host itself.
check-nspawn: programs
	@missing=""; for p in debootstrap systemd-container; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	PRAKAT_NSPAWN=1 PRAKAT_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/integration/test_install.py
