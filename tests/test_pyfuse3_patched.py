"""The pyfuse3 that `make setup` builds carries the project's patches (third_party/pyfuse3):
tests of what a patch enables may skip without it (a plain `pip install pyfuse3`), but
not unnoticed: these fail."""

from __future__ import annotations

import pyfuse3

INSTALL = "run third_party/pyfuse3/install (make setup does)"


def test_the_installed_pyfuse3_has_lock_handlers() -> None:
    assert getattr(pyfuse3, "LOCKS_SUPPORTED", False), INSTALL


def test_the_installed_pyfuse3_lets_the_kernel_cache_listings() -> None:
    assert getattr(pyfuse3, "CACHE_READDIR_SUPPORTED", False), INSTALL


def test_the_installed_pyfuse3_answers_flush_without_python() -> None:
    assert getattr(pyfuse3, "FAST_FLUSH_SUPPORTED", False), INSTALL


def test_the_installed_pyfuse3_keeps_a_worker_reading_while_it_can() -> None:
    assert getattr(pyfuse3, "FAST_DISPATCH_SUPPORTED", False), INSTALL
