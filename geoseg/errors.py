"""Errors that mean "the user gave us something we cannot use" (CLI exit code 2), by kind.

Everything else that escapes is a bug (exit code 1). Messages are one line, name the file or the parameter,
and say the fix. The library names parameters as Python callers spell them (``overlap``); a message marks
each one as ``{overlap}``, and :meth:`InputError.render` spells it for the caller: ``overlap`` in Python,
``--overlap`` on the command line (the CLI passes its own names where a flag differs from the keyword).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


#: Parameters whose Python spelling in a fix is not their bare name.
_PYTHON_SPELLING = {"overwrite": "overwrite=True", "check_values": "check_values=False",
                     "repeat_bands": "repeat_bands=True"}


def python_name(parameter: str) -> str:
    """How a message spells a parameter for a Python caller."""
    return _PYTHON_SPELLING.get(parameter, parameter)


def innermost_reason(err: BaseException) -> str:
    """The first line of the innermost cause: GDAL's own reason, where rasterio only says "Read failed.
    See previous exception for details."."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__          # type: ignore[assignment]
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class InputError(Exception):
    """Bad input or usage: a path, a parameter or a file that does not fit. Exit code 2.

    ``parameters`` lists the names that the message marks as ``{name}``; everything else in the message is
    literal text (braces included).
    """

    def __init__(self, message: str, *, parameters: Sequence[str] = ()) -> None:
        self.template = message
        self.parameters = tuple(parameters)
        super().__init__(self.render(python_name))

    def render(self, spell: Callable[[str], str]) -> str:
        """The message with every marked parameter spelled by ``spell`` (e.g. as a CLI flag)."""
        text = self.template
        for name in self.parameters:
            text = text.replace("{" + name + "}", spell(name))
        return text


class ParameterError(InputError):
    """A parameter's value is out of range or unknown: ``tile 100: must be a multiple of 32; try 96``."""

    def __init__(self, parameter: str, value: object, problem: str, *, parameters: Sequence[str] = ()) -> None:
        self.parameter, self.value = parameter, value
        shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        super().__init__(f"{{{parameter}}} {shown}: {problem}", parameters=(parameter, *parameters))


class ConfigError(InputError):
    """A training or run configuration file that cannot be used (YAML, schema, paths it names)."""


class InputFileError(InputError):
    """An input file that is missing, unreadable, damaged or of the wrong kind (scene, labels, polygons)."""


class ModelError(InputError):
    """A model file that cannot be used: not a bundle, damaged, a newer format, weights that do not match."""


class ModelMismatchError(InputError):
    """A scene that does not fit the model (bands, value type, resolution): refused, never a wrong map."""


class OutputError(InputError):
    """An output that cannot be written where asked (missing or read-only folder, the input itself)."""


class OutputExistsError(OutputError):
    """An output exists and ``overwrite`` was not given."""

    def __init__(self, path: object) -> None:
        self.path = path
        super().__init__(f"{path}: output exists; pass {{overwrite}} to replace it", parameters=("overwrite",))
