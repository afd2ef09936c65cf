"""The benchmark scripts stay importable: a renamed module breaks them in CI, not in a
later session's `make bench` (they run their figures only under ``__main__``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_the_benchmark_script_imports(script: str) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as `python bench/x.py` has it: dataclasses look it up
    try:
        spec.loader.exec_module(module)
        assert callable(getattr(module, "main", None))
    finally:
        del sys.modules[spec.name]
