# Thin wrapper around Meson + ninja; the real build is in meson.build.
#
#   make run           install missing runtime packages, build, run the daemon
#   make check         install missing test packages too, build, run every test suite
#   make install       install into PREFIX (default /usr/local; DESTDIR honoured)
#   make deb           build the Debian packages into ../ (dpkg-buildpackage -b)
#   make asan          ASan+UBSan build in build-asan and its tests
#   make format        clang-format -i over every *.c / *.h
#   make format-check  fail if any file is not clang-formatted
#   make clean         remove the build directories
#   make ci            the whole CI run (.ci/run), as CI does it
#
# BUILDDIR, ASANDIR, MESON_OPTS, PREFIX and DESTDIR may be overridden, e.g.
#   make check BUILDDIR=build-mine MESON_OPTS=-Dwerror=true
#   make install PREFIX=/usr DESTDIR=/tmp/stage

BUILDDIR ?= build
ASANDIR ?= build-asan
MESON_OPTS ?=
PREFIX ?= /usr/local
# /etc for PREFIX=/usr (as meson does at setup), PREFIX/etc otherwise
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DESTDIR ?=
CLANG_FORMAT ?= clang-format
# what the build needs: run (daemon only) or check (tests too); make check
# sets check, everything else only asks for the runtime packages
DEPS ?= run

.PHONY: all deps build run check install deb asan format format-check clean ci

all: build

deps:
	@scripts/deps.sh $(DEPS)

check: DEPS = check

# Configure once; later runs only rebuild. A build dir from an interrupted
# setup (no build.ninja) is wiped and set up again.
# Without the test packages (make run, make install) the unit tests, which
# need cmocka, are configured out (-Dtests=disabled).
SETUP_OPTS = $(if $(filter check,$(DEPS)),,-Dtests=disabled)
$(BUILDDIR)/build.ninja:
	meson setup --wipe $(BUILDDIR) $(SETUP_OPTS) $(MESON_OPTS) 2>/dev/null || \
		meson setup $(BUILDDIR) $(SETUP_OPTS) $(MESON_OPTS)

# A build directory configured by `make run` has no unit tests: make check
# turns them on again once the test packages are there.
build: deps $(BUILDDIR)/build.ninja
	@if [ "$(DEPS)" = check ] && ! grep -q 'test-rule' $(BUILDDIR)/build.ninja; then \
		echo "reconfiguring $(BUILDDIR) with the unit tests: the test packages are installed now"; \
		meson setup --reconfigure $(BUILDDIR) -Dtests=enabled $(MESON_OPTS); \
	fi
	ninja -C $(BUILDDIR)

run: build
	@if [ -x $(BUILDDIR)/daemon/udpmuxd ] && [ -f conf/udpmux.conf ]; then \
		echo "running $(BUILDDIR)/daemon/udpmuxd -c conf/udpmux.conf (Ctrl-C stops it)"; \
		exec $(BUILDDIR)/daemon/udpmuxd -c conf/udpmux.conf; \
	else \
		echo "no daemon yet: running the library example on 127.0.0.1:7000 (Ctrl-C stops it)"; \
		echo "try: printf 'PING 1' | socat - UDP:127.0.0.1:7000"; \
		exec $(BUILDDIR)/examples/peer -l 127.0.0.1:7000 -t 0; \
	fi

check: build
	meson test -C $(BUILDDIR) --print-errorlogs

# meson install: daemon, udpmuxctl, library, header, pkg-config file, man
# pages, systemd units, sysusers/tmpfiles snippets, default configuration,
# Python package and dashboard (see `meson configure` for the directories).
# The build directory is configured for PREFIX first.
install: build
	meson configure $(BUILDDIR) -Dprefix=$(PREFIX) -Dsysconfdir=$(SYSCONFDIR)
	meson install -C $(BUILDDIR) $(if $(DESTDIR),--destdir $(DESTDIR))

# The Debian packages (debian/), built from this tree into its parent
# directory: udpmuxd, libudpmux0, libudpmux-dev, python3-udpmux.
# DEB_BUILD_OPTIONS (e.g. nocheck parallel=2) is passed through. The PATH
# is Debian's own: an interpreter from pyenv or a venv must not build it.
deb: DEPS = deb
deb: deps
	env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b

# clang when it has the sanitizer runtime, gcc otherwise. b_lundef=false is
# needed for clang's ASan with shared libraries.
asan: DEPS = check
asan: deps
	@if [ ! -f $(ASANDIR)/build.ninja ]; then \
		if command -v clang >/dev/null 2>&1; then cc=clang; else cc=gcc; fi; \
		echo "configuring $(ASANDIR) with $$cc"; \
		CC=$$cc meson setup $(ASANDIR) -Db_sanitize=address,undefined -Db_lundef=false \
			-Dbuildtype=debug $(MESON_OPTS); \
	fi
	ninja -C $(ASANDIR)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C $(ASANDIR) --print-errorlogs

FORMAT_FILES = git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v -E '^(build[^/]*|subprojects)/'

format:
	$(FORMAT_FILES) | xargs -r $(CLANG_FORMAT) -i

format-check:
	@bad=$$($(FORMAT_FILES) | while read -r f; do \
		[ -f "$$f" ] || continue; \
		$(CLANG_FORMAT) --dry-run -Werror "$$f" >/dev/null 2>&1 || echo "$$f"; \
	done); \
	if [ -n "$$bad" ]; then \
		echo "format-check: these files are not clang-formatted (fix: make format):"; \
		echo "$$bad" | sed 's/^/  /'; \
		exit 1; \
	fi; \
	echo "format-check: OK"

ci:
	bash .ci/run

clean:
	rm -rf $(BUILDDIR) $(ASANDIR) build-fuzz build-valgrind
