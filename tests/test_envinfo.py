"""Environment capture: python, platform, installed distributions, requirements text."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aletheia.tracking import envinfo
from aletheia.tracking.reproduce import parse_requirements


@pytest.fixture()
def fresh_env() -> Iterator[None]:
    """Tests that install distributions rescan afterwards, so the cache is clean again."""
    yield
    envinfo.capture(refresh=True)


def install_dist(site: Path, name: str, version: str) -> None:
    """Install a real (metadata-only) distribution into ``site``, as pip would lay it out."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_capture_describes_this_interpreter() -> None:
    env = envinfo.capture()
    assert env.python.version == platform.python_version()
    assert env.python.implementation == platform.python_implementation()
    assert env.python.executable == sys.executable
    assert env.platform.system == platform.system()
    assert env.platform.machine == platform.machine()
    assert env.hostname


def test_packages_are_the_installed_distributions_with_normalized_names() -> None:
    packages = envinfo.capture().packages
    assert packages["gitpython"] == importlib.metadata.version("GitPython")
    assert packages["google-cloud-firestore"] == importlib.metadata.version(
        "google-cloud-firestore"
    )
    assert all(name == envinfo.normalize_name(name) for name in packages)


def test_capture_is_cached_until_refreshed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_env: None
) -> None:
    before = envinfo.capture()
    assert envinfo.capture() is before
    install_dist(tmp_path, "Tiny_Widget.Lib", "1.2.3")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tiny-widget-lib" not in envinfo.capture().packages  # still the cached scan
    after = envinfo.capture(refresh=True)
    assert after.packages["tiny-widget-lib"] == "1.2.3"
    assert envinfo.capture() is after


def test_first_distribution_on_sys_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_env: None
) -> None:
    install_dist(tmp_path / "first", "shadowed-pkg", "2.0")
    install_dist(tmp_path / "second", "Shadowed_Pkg", "1.0")
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))
    assert envinfo.capture(refresh=True).packages["shadowed-pkg"] == "2.0"


def test_requirements_text_round_trips() -> None:
    env = envinfo.capture()
    text = env.requirements_text()
    lines = text.splitlines()
    assert all(line.count("==") == 1 for line in lines)
    names = [line.partition("==")[0] for line in lines]
    assert names == sorted(names) and len(names) == len(env.packages)
    assert parse_requirements(text) == env.packages
    assert text == env.requirements_text()  # deterministic: identical envs share one blob


def test_to_doc_keeps_a_count_not_the_package_list() -> None:
    env = envinfo.capture()
    doc = env.to_doc()
    assert doc["python"] == platform.python_version()
    assert doc["package_count"] == len(env.packages) > 10
    assert "packages" not in doc
    assert "gitpython" not in repr(doc)
    assert doc["platform"] == {
        "system": env.platform.system,
        "release": env.platform.release,
        "machine": env.platform.machine,
    }


def test_accelerator_visibility_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.delenv("TPU_NAME", raising=False)
    found = envinfo.accelerators()
    assert found["cuda_visible_devices"] == "0,1"
    assert "tpu_name" not in found


@pytest.mark.parametrize(
    ("name", "normal"),
    [("PyYAML", "pyyaml"), ("zope.interface", "zope-interface"), ("Foo__Bar-_baz", "foo-bar-baz")],
)
def test_normalize_name(name: str, normal: str) -> None:
    assert envinfo.normalize_name(name) == normal
