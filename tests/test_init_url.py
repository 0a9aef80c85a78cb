"""init_method URLs: parsing, checks and messages (pure functions)."""

from __future__ import annotations

import pytest

from rdzv_core.errors import RdzvConfigError
from rdzv_core.init_url import adapter_schemes, in_url_terms, masked, membership_problem, parse_init_url

NO_ENV: dict[str, str] = {}


def test_redis_url_with_rank_world_size_and_conf_keys() -> None:
    request = parse_init_url("redis://host:6379/job42?rank=3&world_size=8&db=2&ttl=60", NO_ENV)
    assert (request.backend, request.endpoint, request.run_id) == ("redis", "redis://host:6379", "job42")
    assert (request.rank, request.world_size) == (3, 8)
    assert request.conf == {"db": "2", "ttl": "60"}


def test_every_host_of_a_rediss_list_keeps_tls_and_the_user() -> None:
    request = parse_init_url("rediss://alice@s1:26379,[::1]:26380/job?sentinel_master=m", {"RANK": "0", "WORLD_SIZE": "1"})
    assert request.endpoint == "rediss://alice@s1:26379,rediss://alice@[::1]:26380"
    assert request.conf == {"sentinel_master": "m"}


def test_etcd_and_any_adapter_scheme() -> None:
    env = {"RANK": "1", "WORLD_SIZE": "2"}
    etcd = parse_init_url("etcd://e1:2379,e2:2379/run-7?cacert=/ca.pem", env)
    assert (etcd.backend, etcd.endpoint, etcd.conf) == ("etcd", "e1:2379,e2:2379", {"cacert": "/ca.pem"})
    other = parse_init_url("rdzv+c10d://node0:29400/run", env)
    assert (other.backend, other.endpoint, other.rank, other.world_size) == ("c10d", "node0:29400", 1, 2)


def test_rank_and_world_size_fall_back_to_the_environment_and_the_query_wins() -> None:
    request = parse_init_url("redis://h/job?rank=2", {"RANK": "0", "WORLD_SIZE": "4"})
    assert (request.rank, request.world_size) == (2, 4)


def test_run_id_is_percent_decoded() -> None:
    assert parse_init_url("redis://h/job%2042?rank=0&world_size=1", NO_ENV).run_id == "job 42"


def test_torch_timeout_bounds_the_default_timeouts_and_an_explicit_value_wins() -> None:
    short = parse_init_url("redis://h/j?rank=0&world_size=1", NO_ENV, timeout=3)
    assert (short.conf["connect_timeout"], short.conf["read_timeout"]) == ("3", "3")
    long = parse_init_url("redis://h/j?rank=0&world_size=1&read_timeout=5", NO_ENV, timeout=1800)
    assert (long.conf["connect_timeout"], long.conf["read_timeout"]) == ("10", "5")


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("memcache://h/j?rank=0&world_size=1", NO_ENV, "'memcache://' is not an rdzv scheme"),
        ("redis://h/j?world_size=2", NO_ENV, "no rank: add rank=N to the URL's query, pass rank= to init_process_group, or set $RANK"),
        ("redis://h/j?rank=0", NO_ENV, "no world_size: add world_size=N"),
        ("redis://h/j", {"RANK": "0", "WORLD_SIZE": " "}, "no world_size"),
        ("redis://h/j?rank=two&world_size=2", NO_ENV, "rank 'two' is not a whole number"),
        ("redis://h/j?rank=2&world_size=2", NO_ENV, "rank 2 is not in 0..1 (world_size 2)"),
        ("redis://h/j?rank=0&world_size=0", NO_ENV, "world_size 0 must be at least 1"),
        ("redis://h?rank=0&world_size=1", NO_ENV, "the path must be the run id"),
        ("redis://h/a/b?rank=0&world_size=1", NO_ENV, "the path must be the run id, one segment"),
        ("redis:///j?rank=0&world_size=1", NO_ENV, "no host"),
        ("redis://h/j?rank=0&world_size=1&db=1&db=2", NO_ENV, "query parameter 'db' is given twice"),
        ("redis://h/j?rank=0&world_size=1&ssl", NO_ENV, "the query is not KEY=VALUE pairs"),
        ("redis://h/j?rank=0&world_size=1#x", NO_ENV, "has a '#' part"),
        ("etcd://root@h/j?rank=0&world_size=1", NO_ENV, "an etcd:// URL takes no user"),
    ],
)
def test_bad_urls_name_the_url_and_the_problem(url: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(RdzvConfigError) as raised:
        parse_init_url(url, env)
    assert str(raised.value).startswith("init_method '")
    assert message in str(raised.value)


def test_a_password_never_shows_in_messages() -> None:
    assert masked("redis://bob:hunter2@h:1/j?rank=0") == "redis://bob:***@h:1/j?rank=0"
    assert masked("redis://bob@h:1/j") == "redis://bob@h:1/j"
    with pytest.raises(RdzvConfigError) as raised:
        parse_init_url("redis://bob:hunter2@h:1/j", NO_ENV)
    assert "hunter2" not in str(raised.value) and "bob:***@h:1" in str(raised.value)


def test_schemes_of_the_adapters() -> None:
    assert adapter_schemes({"redis", "etcd", "acme"}) == {
        "rdzv+redis": "redis", "rdzv+etcd": "etcd", "rdzv+acme": "acme",
        "redis": "redis", "rediss": "redis", "etcd": "etcd",
    }


def test_membership_problems() -> None:
    assert membership_problem(4, b"4", 4) is None
    assert membership_problem(4, None, 1) is None
    assert "the run was started with world_size=8" in (membership_problem(4, b"8", None) or "")
    assert "process number 5 to join a run of world_size 4: the run id was used before" in (
        membership_problem(4, b"4", 5) or "")


def test_adapter_messages_reworded_for_urls() -> None:
    assert in_url_terms("--rdzv-conf db='x' is invalid") == "query parameter db='x' is invalid"
    assert in_url_terms("do not put a password in --rdzv-endpoint") == "do not put a password in the URL's hosts"
