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
    assert info.distribution == "rdzv-c10d" and info.version == "0.1.0"
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


def test_a_plugin_with_a_syntax_error_is_one_line_naming_the_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "typo_plugin.py").write_text("def rdzv_adapters(:\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry(entry_point_list=[ep("typo", "typo_plugin")])
    (failure,) = registry.failures
    assert "\n" not in failure.error
    assert failure.error.startswith("SyntaxError: ")
    assert failure.error.endswith(f"({tmp_path / 'typo_plugin.py'}, line 1)")
