"""The three places that pin dependencies agree, so every install route reproduces the figures."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    pyproject = _pins(declared)
    conda = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert pyproject == conda


def test_lock_file_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    lock = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name, version in _pins(declared).items():
        assert lock.get(name) == version, f"{name}: pyproject pins {version}, requirements.txt {lock.get(name)}"


def test_torch_is_pinned_to_the_cpu_build_version():
    # An unpinned torch pulls a multi-GB CUDA build; 2.13.0 installs the local CPU build.
    lock = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert lock["torch"] == "2.13.0"
