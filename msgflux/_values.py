"""What a state value may be: the one rule shared by ``mf.save`` and the store.

A state value is JSON-compatible: ``str``, ``int``, finite ``float``, ``bool``,
``None``, and ``list`` / ``dict`` (with ``str`` keys) of those, nested at most
:data:`MAX_DEPTH` levels. Anything else is refused with the dotted key and the
offending type, never silently converted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from msgflux.errors import StateValueError

#: Deepest nesting of lists/dicts accepted inside one value.
MAX_DEPTH = 100

_SCALARS = (str, int, float, bool, type(None))


def check_value(key: str, value: Any) -> None:
    """Raise :class:`StateValueError` unless ``value`` is a JSON-compatible state value.

    ``key`` is the state-dict key, used in the message; nested positions are
    appended to it (``"cfg.tags[2]"``, ``"cfg.opts['x']"``).
    """
    _check(key, value, 0)


def _check(where: str, value: Any, depth: int) -> None:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise StateValueError(
                f"state value for key {where!r} is {value!r}; NaN and infinity are not allowed",
                key=where,
            )
        return
    if kind in _SCALARS:
        return
    if depth >= MAX_DEPTH:
        raise StateValueError(
            f"state value for key {where!r} is nested deeper than {MAX_DEPTH} levels", key=where
        )
    if kind is list:
        for index, item in enumerate(value):
            _check(f"{where}[{index}]", item, depth + 1)
        return
    if kind is dict:
        for sub_key, item in value.items():
            if type(sub_key) is not str:
                raise StateValueError(
                    f"state value for key {where!r} has a dict key {sub_key!r} of type "
                    f"{type(sub_key).__name__}; only str keys are allowed",
                    key=where,
                )
            _check(f"{where}[{sub_key!r}]", item, depth + 1)
        return
    raise StateValueError(
        f"state value for key {where!r} has type {kind.__name__}; only JSON-compatible values "
        "(str, int, float, bool, None, list, dict with str keys) are allowed",
        key=where,
    )


def check_state_dict(state_dict: Mapping[str, Any]) -> None:
    """Check every key and value of a flat state dict.

    Keys must be non-empty ``str``. Raises :class:`StateValueError` naming the
    first bad key; checks nothing else.
    """
    if not isinstance(state_dict, Mapping):
        raise StateValueError(
            f"a state dict must be a mapping of str keys to values, not {type(state_dict).__name__}"
        )
    for key, value in state_dict.items():
        if type(key) is not str or not key:
            raise StateValueError(
                f"state dict key {key!r} is not allowed: keys must be non-empty strings",
                key=key if isinstance(key, str) else None,
            )
        check_value(key, value)
