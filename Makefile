# The front door: `make demo` and `make test` set up everything they need; `make install`
# installs the commands for keeps, outside the clone.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
WHEELS := $(VENV)/wheels
# make install: the commands in BINDIR, mount(8)'s helpers in SBINDIR (where mount(8) looks),
# all running from a Python environment of their own in LIBDIR; DESTDIR for staging.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= /sbin
MANDIR ?= $(PREFIX)/share/man
LIBDIR ?= $(PREFIX)/lib/ninep-volfs
# Debian packages the tests need (the kernel-client tests boot a guest with QEMU; ninep-bench's
# smoke test runs every default target: sshfs to its own sshd, bindfs, diod; fio for random I/O;
# systemd for systemd-analyze verify of the units and systemd-socket-activate; man-db and
# groff-base render the man pages).
TEST_PACKAGES := qemu-system-x86 diod git attr sqlite3 util-linux sshfs bindfs openssh-server fio \
                 systemd man-db groff-base

.PHONY: all setup test lint check demo bench guest-test install uninstall clean

all: test

$(VENV)/.installed: pyproject.toml scripts/system-deps third_party/pyfuse3/locks.patch third_party/pyfuse3/cache-readdir.patch third_party/pyfuse3/fast-flush.patch \
		third_party/pyfuse3/fast-dispatch.patch third_party/pyfuse3/install
	scripts/system-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# pyfuse3 with lock handlers (third_party/pyfuse3/README.md), before the project needs one
	third_party/pyfuse3/install $(VENV)/bin/pip $(WHEELS)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup lint
	scripts/system-deps $(TEST_PACKAGES)
	$(VENV)/bin/pytest -q

guest-test: setup
	scripts/system-deps $(TEST_PACKAGES)
	$(VENV)/bin/pytest -q tests/test_guest*.py

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) scripts/demo.py

bench: setup
	scripts/system-deps $(TEST_PACKAGES)
	$(PY) -m benchmarks
	$(PY) -m benchmarks.protocol
	$(PY) -m benchmarks.casefold
	$(PY) -m benchmarks.load

install: setup
	DESTDIR="$(DESTDIR)" BINDIR="$(BINDIR)" SBINDIR="$(SBINDIR)" MANDIR="$(MANDIR)" \
	LIBDIR="$(LIBDIR)" PYTHON="$(PYTHON)" VENV="$(VENV)" scripts/install install

uninstall:
	DESTDIR="$(DESTDIR)" LIBDIR="$(LIBDIR)" scripts/install uninstall

clean:
	rm -rf $(VENV) build demo .mypy_cache .ruff_cache .pytest_cache .hypothesis
