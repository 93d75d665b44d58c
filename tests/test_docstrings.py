"""Every Examples section in the package's docstrings runs and prints what it claims."""

import doctest
import importlib
import pkgutil

import pytest

import repalign

MODULES = sorted(m.name for m in pkgutil.walk_packages(repalign.__path__,
                                                       "repalign.") if not m.name.endswith("._validate"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.setenv("REPALIGN_CLAIMS_DIR", str(tmp_path))  # examples that record checks stay in tmp
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(module, globs={**vars(module)}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} fail (see captured stdout)"
