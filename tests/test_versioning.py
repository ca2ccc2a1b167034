"""Format versions: older files are upgraded step by step, newer ones refused with the fix."""
from __future__ import annotations

import pytest

from geoseg.errors import ConfigError
from geoseg.versioning import upgrade


def _rename(old: str, new: str, to: int):  # noqa: ANN202
    def step(raw: dict) -> dict:
        raw = dict(raw)
        raw[new] = raw.pop(old)
        raw["format_version"] = to
        return raw
    return step


def test_upgraders_run_in_order_from_the_file_version() -> None:
    steps = {1: _rename("a", "b", 2), 2: _rename("b", "c", 3)}
    common = dict(current=3, upgraders=steps, unversioned=1, where="x.yaml", what="config", error=ConfigError,
                  fix_old="rewrite it")
    assert upgrade({"a": 5}, **common) == {"c": 5, "format_version": 3}
    assert upgrade({"b": 5, "format_version": 2}, **common) == {"c": 5, "format_version": 3}
    assert upgrade({"c": 5, "format_version": 3}, **common) == {"c": 5, "format_version": 3}


def test_newer_and_unknown_versions_are_refused_with_the_fix() -> None:
    common = dict(current=2, upgraders={}, unversioned=1, where="x.yaml", what="training config",
                  error=ConfigError, fix_old="write it again")
    with pytest.raises(ConfigError, match="x.yaml: training config format 7 is newer .* upgrade geoseg"):
        upgrade({"format_version": 7}, **common)
    with pytest.raises(ConfigError, match="format 1 is not supported; write it again"):
        upgrade({}, **common)
