"""Adapter discovery: isolation of broken plugins, clashes, helpful errors."""

from importlib.metadata import EntryPoint

import pytest

from rdzv_core.errors import PluginError, UnknownBackendError
from rdzv_core.plugins import load_registry, make_plugin_manager


@pytest.fixture(autouse=True)
def samples_on_path(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.syspath_prepend(str(request.path.parent / "plugin_samples"))


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="rdzv")


def test_installed_first_party_plugin_is_found() -> None:
    registry = load_registry()
    info = registry.adapters["c10d"]
    assert info.distribution == "rdzv-c10d" and info.version == "1.0.0"
    assert registry.get("rdzv-c10d") is registry.get("c10d")


def test_a_broken_plugin_does_not_stop_the_others() -> None:
    registry = load_registry(entry_point_list=[
        ep("missing", "no_such_module_anywhere"),
        ep("raising", "sample_plugins:raising_hook"),
        ep("junk", "sample_plugins:not_an_adapter"),
        ep("good", "sample_plugins:good"),
    ])
    assert list(registry.adapters) == ["sample"]
    errors = {f.plugin: f.error for f in registry.failures}
    assert "ModuleNotFoundError" in errors["missing"]
    assert "the hook itself blew up" in errors["raising"]
    assert "not a named StateStore subclass" in errors["junk"]


def test_selecting_a_broken_plugin_names_it_and_its_error() -> None:
    registry = load_registry(entry_point_list=[ep("raising", "sample_plugins:raising_hook")])
    with pytest.raises(PluginError, match="'raising' is installed but failed to load.*the hook itself blew up"):
        registry.get("raising")


def test_duplicate_names_are_an_error_naming_both() -> None:
    registry = load_registry(entry_point_list=[ep("good", "sample_plugins:good"), ep("clash", "sample_plugins:clashing")])
    assert "sample" not in registry.adapters
    with pytest.raises(PluginError, match="duplicate backend name 'sample'"):
        registry.get("sample")


def test_unknown_backend_did_you_mean_and_install_hint() -> None:
    registry = load_registry(entry_point_list=[ep("good", "sample_plugins:good")])
    with pytest.raises(UnknownBackendError, match="Did you mean 'sample'"):
        registry.get("sampel")
    with pytest.raises(UnknownBackendError, match="pip install rdzv-etcd"):
        registry.get("rdzv-etcd")
    with pytest.raises(UnknownBackendError, match="Installed rdzv backends: sample"):
        registry.get("zzz")


def test_each_registry_gets_a_fresh_manager() -> None:
    first = make_plugin_manager()
    load_registry(first, entry_point_list=[ep("good", "sample_plugins:good")])
    assert first.has_plugin("good")
    assert not make_plugin_manager().has_plugin("good")


def test_an_adapter_for_another_contract_major_is_refused_naming_both_versions() -> None:
    registry = load_registry(entry_point_list=[ep("future", "sample_plugins:contract_two"), ep("good", "sample_plugins:good")])
    assert list(registry.adapters) == ["sample"]  # the others still load
    with pytest.raises(PluginError) as refused:
        registry.get("future")
    message = str(refused.value)
    assert "\n" not in message
    assert "rdzv backend 'future' is installed but failed to load: plugin 'future' from" in message
    assert "is written for contract 2.0, but this rdzv-core speaks contract 1.0 (major versions differ)" in message


def test_a_newer_minor_or_no_declared_contract_is_refused() -> None:
    registry = load_registry(entry_point_list=[ep("mismatched", "sample_plugins:mismatched")])
    errors = {name: f.error for f in registry.failures for name in f.names}
    assert "needs contract 1.7, but this rdzv-core speaks contract 1.0 (upgrade rdzv-core)" in errors["newer"]
    assert "declares no contract_version" in errors["undeclared"]


def test_capabilities_must_match_the_methods_an_adapter_overrides() -> None:
    registry = load_registry(entry_point_list=[ep("mismatched", "sample_plugins:mismatched")])
    errors = {name: f.error for f in registry.failures for name in f.names}
    assert "declares capability 'read_many' but does not implement read_many()" in errors["overclaiming"]
    assert "declares capability 'wait_read' but does not implement wait_read()" in errors["overclaiming"]
    assert "implements read_many() but does not declare it in capabilities" in errors["underclaiming"]
    assert not registry.adapters


def test_rdzv_backends_shows_contract_capabilities_and_a_refused_contract(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rdzv_core import cli

    entry_points = [ep("good", "sample_plugins:good"), ep("future", "sample_plugins:contract_two")]
    monkeypatch.setattr(cli, "load_registry", lambda: load_registry(entry_point_list=entry_points))
    assert cli.list_backends() == 1
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:2] == ["backend", "rdzv-run"] and "contract" in header and "capabilities" in header
    good = next(line for line in lines if line.startswith("sample "))
    assert "1.0" in good.split() and "wait,list_keys,ttl" in good.split() and good.endswith("ok")
    future = next(line for line in lines if line.startswith("future "))
    assert "FAILED:" in future and "is written for contract 2.0" in future and "contract 1.0" in future


def test_a_plugin_with_a_syntax_error_is_one_line_naming_the_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "typo_plugin.py").write_text("def rdzv_adapters(:\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry(entry_point_list=[ep("typo", "typo_plugin")])
    (failure,) = registry.failures
    assert "\n" not in failure.error
    assert failure.error.startswith("SyntaxError: ")
    assert failure.error.endswith(f"({tmp_path / 'typo_plugin.py'}, line 1)")
