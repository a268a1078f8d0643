"""Pytest plugin: the Galaxy and invoice-cloud emulators as fixtures.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["tests.sandbox_plugin"]``.

* ``galaxy_sandbox`` / ``cloud_sandbox`` (session): one running server each for the whole
  run, seeded with the ``test`` seed (``portal.sandbox.seed.TEST_GALAXY``,
  ``TEST_CLOUD_CLIENT``, ``TEST_EXPIRED_CLIENT``).
* ``galaxy`` / ``cloud`` (function): the same servers, reset to the seed and guaranteed
  running; use these in tests. A test may stop a server; it is started again (same port)
  after the test. After each test the server is reset again and no request of that test
  (e.g. one sleeping in an injected delay) is left running.

Helpers live on the returned objects: ``galaxy.add_user / add_bill / add_data_center /
attachments / expire_sessions / set_session_lost_signal / inject_business_error / inject_fault / login_count /
calls / base_url``; ``cloud.add_client / add_file / file_url / token_owner / inject_fault``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal.sandbox.galaxy import GalaxySandbox
from portal.sandbox.invoice_cloud import CloudSandbox
from portal.sandbox.seed import (
    SEEDS,
    TEST_CLOUD_CLIENT,
    TEST_EXPIRED_CLIENT,
    TEST_GALAXY,
)

__all__ = ["TEST_CLOUD_CLIENT", "TEST_EXPIRED_CLIENT", "TEST_GALAXY"]


@pytest.fixture(scope="session")
def galaxy_sandbox() -> Iterator[GalaxySandbox]:
    """The Galaxy WebAPI emulator, running on a free loopback port for the whole session."""
    server = GalaxySandbox(seed=SEEDS["test"][0]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cloud_sandbox() -> Iterator[CloudSandbox]:
    """The invoice-cloud emulator, running on a free loopback port for the whole session."""
    server = CloudSandbox(seed=SEEDS["test"][1]).start()
    yield server
    server.stop()


#: How long a test's last requests may take to finish after the emulator was reset.
SETTLE_TIMEOUT = 5.0


def settle(server: GalaxySandbox | CloudSandbox) -> None:
    """End a test's conversation with an emulator: no request of it may outlive the test.

    A request still sleeping in an injected delay (its client gave up long ago) would
    otherwise wake up inside the next test and log in, upload or count there. The reset
    voids it; then we wait until it has answered.
    """
    server.reset()
    if not server.app.wait_idle(SETTLE_TIMEOUT):
        pytest.fail(f"{server.name} emulator still answering a request {SETTLE_TIMEOUT} s after its test ended")


@pytest.fixture
def galaxy(galaxy_sandbox: GalaxySandbox) -> Iterator[GalaxySandbox]:
    """The Galaxy emulator reset to the test seed (data centre, users, bill FYBX0001)."""
    galaxy_sandbox.start()
    galaxy_sandbox.reset()
    yield galaxy_sandbox
    settle(galaxy_sandbox)
    galaxy_sandbox.start()  # a test that stopped it must not break the next one


@pytest.fixture
def cloud(cloud_sandbox: CloudSandbox) -> Iterator[CloudSandbox]:
    """The invoice-cloud emulator reset to the test seed (clients, no files)."""
    cloud_sandbox.start()
    cloud_sandbox.reset()
    yield cloud_sandbox
    settle(cloud_sandbox)
    cloud_sandbox.start()
