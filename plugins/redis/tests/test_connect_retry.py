"""The first connection to Redis keeps trying within ``connect_timeout`` (issue 11).

A :class:`~rdzv_core.testing.proxy.FlakyProxy` in front of the session's
real redis-server cuts the first connections (or refuses them for a while);
the agent's connect must then succeed within ``connect_timeout``, as torch
makes it (``connect_adapter``). Nothing listening fails after about
``connect_timeout`` with one message; a wrong password, an unknown database
or an untrusted certificate fails at once, however long ``connect_timeout``
is.
"""

from __future__ import annotations

from typing import Any

import pytest

from rdzv_core.errors import RdzvConfigError
from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.ports import free_port
from rdzv_core.testing.proxy import (
    FlakyProxy,
    assert_connects,
    assert_fails_at_once,
    assert_gives_up_after_connect_timeout,
)
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import RedisServer

ACL_USER = "rdzv-agent"  # as in conftest
#: Long enough that "retried until connect_timeout" and "at once" differ clearly.
CONNECT_TIMEOUT = 8.0


def harness(endpoint: str, **conf: Any) -> AdapterHarness:
    """A harness on ``endpoint`` with ``read_timeout=5`` and :data:`CONNECT_TIMEOUT`."""
    return AdapterHarness(RedisStateStore, endpoint=endpoint, backend_name="redis",
                          conf={"read_timeout": 5, "connect_timeout": CONNECT_TIMEOUT, **conf})


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
def test_cut_first_connections_are_retried_within_connect_timeout(redis_server: RedisServer, reset: bool) -> None:
    with FlakyProxy("127.0.0.1", redis_server.port, cut_first=2, reset=reset) as proxy:
        assert_connects(harness(proxy.endpoint), within=CONNECT_TIMEOUT)
        assert proxy.cut == 2 and proxy.accepted > 2


def test_a_server_that_starts_listening_late_is_waited_for(redis_server: RedisServer) -> None:
    with FlakyProxy("127.0.0.1", redis_server.port, refuse_for=1.0) as proxy:
        assert_connects(harness(proxy.endpoint), within=CONNECT_TIMEOUT, at_least=1.0)


def test_nothing_listening_fails_after_connect_timeout_with_one_message() -> None:
    assert_gives_up_after_connect_timeout(harness(f"127.0.0.1:{free_port()}"),
                                          "RedisUnavailableError: no answer from Redis")


def test_wrong_password_fails_at_once(acl_redis_server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    message = assert_fails_at_once(harness(f"redis://{ACL_USER}@{acl_redis_server.endpoint}",
                                           password_file=str(wrong)), RdzvConfigError)
    assert f"rejected the login of user '{ACL_USER}'" in message


def test_an_unknown_database_fails_at_once(redis_server: RedisServer) -> None:
    message = assert_fails_at_once(harness(redis_server.endpoint, db=999), RdzvConfigError)
    assert "DB index is out of range" in message


def test_an_untrusted_server_certificate_fails_at_once(tls_redis_server: RedisServer,
                                                        tls_files: dict[str, str]) -> None:
    message = assert_fails_at_once(harness(f"rediss://localhost:{tls_redis_server.tls_port}",
                                           ssl_ca_certs=tls_files["other_ca"]), RdzvConfigError)
    assert "certificate verify failed" in message
