"""A settings group's values read from JSON checked against its fields' annotated types. No torch."""

from __future__ import annotations

from dataclasses import fields

_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def type_problems(group: type, data: dict) -> list[str]:
    """Values of the wrong JSON type (a config.json or checkpoint written by hand or damaged)."""
    p = []
    for f in fields(group):
        if f.name not in data:
            continue
        value, kinds = data[f.name], str(f.type).replace(" ", "").split("|")
        allowed = tuple(t for kind in kinds if kind != "None" for t in _TYPES[kind])
        if value is None and "None" in kinds:
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            p.append(f"{f.name} must be {' or '.join(kinds)}, not {value!r}")
    return p
