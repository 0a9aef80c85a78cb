"""--rdzv-conf validation and the rendezvous secret."""

import pytest

from rdzv_core.config import ConfReader, CoreConfig, load_secret
from rdzv_core.errors import RdzvConfigError


def reader(**conf: object) -> ConfReader:
    return ConfReader("redis", conf)


def test_defaults_match_torch_c10d_and_the_protocol_is_rdzvs_own() -> None:
    core = CoreConfig.from_reader(reader())
    assert core.read_timeout == 60 and core.secret is None
    assert core.protocol == "scalable"  # the default since issue 12; protocol=torch stays selectable


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf"])
def test_bad_timeouts_name_key_and_value(value: str) -> None:
    with pytest.raises(RdzvConfigError, match=rf"backend 'redis': --rdzv-conf read_timeout='{value}' is invalid"):
        CoreConfig.from_reader(reader(read_timeout=value))


def test_fractional_seconds_are_allowed() -> None:
    assert CoreConfig.from_reader(reader(read_timeout="0.5")).read_timeout == 0.5


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(RdzvConfigError, match="unknown --rdzv-conf key 'read_timout'. Did you mean 'read_timeout'"):
        reader(read_timout="5").reject_unknown({"read_timeout", "join_timeout"})


def test_boolean_and_choice_errors() -> None:
    with pytest.raises(RdzvConfigError, match="is_host='maybe'.*boolean"):
        reader(is_host="maybe").boolean("is_host")
    with pytest.raises(RdzvConfigError, match="protocol='fast'.*one of torch, scalable"):
        CoreConfig.from_reader(reader(protocol="fast"))


def test_secret_from_file_wins_over_environment(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RDZV_SECRET", "from-env")
    assert load_secret(reader()) == b"from-env"
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    assert load_secret(reader(secret_file=str(path))) == b"from-file"


def test_missing_or_empty_secret_file_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RdzvConfigError, match="secret_file=.*existing, readable file"):
        load_secret(reader(secret_file=str(tmp_path / "nope")))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(RdzvConfigError, match="non-empty secret"):
        load_secret(reader(secret_file=str(empty)))
