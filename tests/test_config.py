"""--rdzv-conf validation, the shared reader's rules and the core's settings."""

import pytest
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.config import ConfReader
from rdzv_core.endpoints import parse_endpoints
from rdzv_core.errors import RdzvConfigError
from rdzv_core.settings import CoreSettings


def reader(**conf: object) -> ConfReader:
    return ConfReader("redis", conf)


def core(**conf: object) -> CoreSettings:
    return CoreSettings.from_reader(reader(**conf))


def test_defaults_match_torch_c10d_and_the_protocol_is_rdzvs_own() -> None:
    settings = core()
    assert settings.read_timeout == 60 and settings.secret is None
    assert settings.protocol == "scalable"  # the default since issue 12; protocol=torch stays selectable
    assert (settings.join_timeout, settings.last_call_timeout, settings.keep_alive_interval,
            settings.keep_alive_max_attempt) == (600, 30, 5, 3)  # torch's handler defaults


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf"])
def test_bad_timeouts_name_key_and_value(value: str) -> None:
    with pytest.raises(RdzvConfigError, match=rf"backend 'redis': --rdzv-conf read_timeout='{value}' is invalid"):
        core(read_timeout=value)


def test_fractional_seconds_are_allowed() -> None:
    assert core(read_timeout="0.5").read_timeout == 0.5


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(RdzvConfigError, match="unknown --rdzv-conf key 'read_timout'. Did you mean 'read_timeout'"):
        reader(read_timout="5").reject_unknown({"read_timeout", "join_timeout"})


def test_parse_accepts_the_adapters_keys_and_rejects_the_rest() -> None:
    params = RendezvousParameters("redis", "h", "run", 1, 2, ttl="5", protocol="torch")
    settings = CoreSettings.parse(params, {"ttl"})
    assert (settings.run_id, settings.max_nodes, settings.protocol, settings.protocol_given) == ("run", 2, "torch", True)
    assert settings.conf.seconds("ttl", 1.0) == 5.0
    with pytest.raises(RdzvConfigError, match="unknown --rdzv-conf key 'ttl'"):
        CoreSettings.parse(params)
    with pytest.raises(RdzvConfigError, match="the run id"):
        CoreSettings.parse(RendezvousParameters("redis", "h", "", 1, 1))


def test_boolean_and_choice_errors() -> None:
    with pytest.raises(RdzvConfigError, match="is_host='maybe'.*boolean"):
        reader(is_host="maybe").boolean("is_host")
    with pytest.raises(RdzvConfigError, match="protocol='fast'.*one of torch, scalable"):
        core(protocol="fast")


def test_secret_from_file_wins_over_environment(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RDZV_SECRET", "from-env")
    assert core().secret == b"from-env"
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    assert core(secret_file=str(path)).secret == b"from-file"


def test_missing_or_empty_secret_file_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RdzvConfigError, match="secret_file=.*existing, readable file"):
        core(secret_file=str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(RdzvConfigError, match="non-empty secret"):
        core(secret_file=str(empty))


def test_one_whitespace_and_error_rule_for_secrets_and_passwords(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pw"
    path.write_text("  p4ss word \r\n")
    assert reader(password_file=str(path)).password("password_file", "PW_ENV") == "p4ss word"
    monkeypatch.setenv("PW_ENV", " from-env\n")
    assert reader().password("password_file", "PW_ENV") == "from-env"
    monkeypatch.setenv("PW_ENV", " \n")
    with pytest.raises(RdzvConfigError, match=r"backend 'redis': \$PW_ENV is set but empty"):
        reader().password("password_file", "PW_ENV")
    monkeypatch.delenv("PW_ENV")
    assert reader().password("password_file", "PW_ENV") is None
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(RdzvConfigError, match="not UTF-8"):
        reader(password_file=str(path)).password("password_file", "PW_ENV")


def test_username_from_conf_or_endpoints_must_agree() -> None:
    endpoints = parse_endpoints("redis://alice@h1,redis://h2", 6379, ("redis",))
    assert reader().username(endpoints) == "alice"
    assert reader(username="alice").username(endpoints) == "alice"
    with pytest.raises(RdzvConfigError, match="different users named: 'bob' and 'alice'"):
        reader(username="bob").username(endpoints)


def test_key_prefix_rule() -> None:
    assert reader().key_prefix("rdzv") == "rdzv"
    assert reader(key_prefix=" app ").key_prefix("rdzv") == "app"
    with pytest.raises(RdzvConfigError, match="key_prefix='a\\\\tb'.*control characters"):
        reader(key_prefix="a\tb").key_prefix("rdzv")
    with pytest.raises(RdzvConfigError, match=r"key_prefix='a\{b'.*'\{'"):
        reader(key_prefix="a{b").key_prefix("rdzv", "{}")


def test_tls_trio_files_must_exist_and_a_key_needs_its_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pem = tmp_path / "x.pem"
    pem.write_text("pem")
    files = reader(ca=str(pem)).tls_files("ca", "cert", "key")
    assert files.given and files.ca == pem and files.cert is None
    assert not reader().tls_files("ca", "cert", "key").given
    with pytest.raises(RdzvConfigError, match="key is set but cert is not"):
        reader(key=str(pem)).tls_files("ca", "cert", "key")
    with pytest.raises(RdzvConfigError, match="cert=.*existing, readable file"):
        reader(cert=str(tmp_path / "nope")).tls_files("ca", "cert", "key")
