"""Modules that share their name with the public function they define stay callable.

``geoseg.predict`` is both the module ``geoseg/predict.py`` and the public function ``geoseg.predict``.
Importing the module binds the package attribute to the module, shadowing the lazily exported function,
so ``geoseg.predict(...)`` would fail once anything had imported ``geoseg.predict``. Making the module
callable (delegating to its function) makes both spellings work, whatever the import order.
"""
from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_module_callable(module_name: str, function: Callable[..., Any]) -> None:
    class CallableModule(types.ModuleType):
        __doc__ = function.__doc__

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
