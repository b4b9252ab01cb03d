"""Tabular row -> conditioning text, driven by a declarative rule file per dataset (xing2024, eq. 1).

A rule file (YAML, packaged in `medsynth/tabular_rules/` or any path) says, per column: the attribute name shown,
a template, sentinel codes, a plausible range, an optional transform and a value mapping; plus the prompt prefix,
joiner and the order of attributes. Missing, sentinel and out-of-range values are omitted, never imputed.

Rule file keys (unknown keys are errors, so a typo does not silently change prompts):
  prefix, joiner, suffix, strip_trailing, default_template, missing, other_columns, exclude, columns
Column keys:
  column (required), attr, template ('{attr}', '{value}'), sentinels, range [lo, hi], transform ('abs'),
  map {raw value: shown value or null = omit}, default (shown value for unmapped values; null = omit;
  absent = show the value as it is)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import yaml

from .errors import MedsynthError

RULES_DIR = Path(__file__).parent / "tabular_rules"
_RULE_KEYS = {"description", "prefix", "joiner", "suffix", "strip_trailing", "default_template", "missing",
              "other_columns", "exclude", "columns"}
_COLUMN_KEYS = {"column", "attr", "template", "sentinels", "range", "transform", "map", "default"}
_TRANSFORMS = {"abs": abs}
_KEEP = object()  # 'default' absent: unmapped values are shown as they are


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        return _number(value.item())
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    missing = pd.isna(value)  # NaN, None, pd.NA, NaT
    return bool(missing) if isinstance(missing, (bool, np.bool_)) else False


def display(value: Any) -> str:
    """How a value reads in text: integral numbers without '.0', floats to 10 significant digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    num = _number(value)
    if num is not None and not isinstance(value, str):
        return str(int(num)) if num.is_integer() else format(num, ".10g")
    if isinstance(value, str) and num is not None and math.isfinite(num) and num.is_integer() and "." in value:
        return str(int(num))  # '65.0' read from a CSV as text
    return str(value).strip()


def key(value: Any) -> str:
    """Comparison key for sentinels and mappings: numbers by value (99999 == 99999.0 == '99999'), text casefolded."""
    num = _number(value)
    if num is not None:
        if math.isnan(num):
            return "nan"
        return str(int(num)) if num.is_integer() else format(num, ".10g")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().casefold()


@dataclass
class ColumnRule:
    column: str
    attr: str
    template: str | None = None
    sentinels: frozenset = frozenset()
    range: tuple[float, float] | None = None
    transform: str | None = None
    mapping: dict | None = None
    default: Any = _KEEP
    _cache: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Rules:
    name: str
    columns: list[ColumnRule]
    prefix: str = ""
    joiner: str = " "
    suffix: str = ""
    strip_trailing: str = ""
    default_template: str = "{attr} is {value},"
    missing: frozenset = frozenset({"", "nan", "na", "n/a", "none", "null"})
    other_columns: bool = False
    exclude: frozenset = frozenset()

    def column_names(self) -> list[str]:
        return [c.column for c in self.columns]


def _fail(where: str, msg: str) -> MedsynthError:
    return MedsynthError(f"tabular rules {where}: {msg}")


def _parse(spec: dict, name: str) -> Rules:
    if not isinstance(spec, dict):
        raise _fail(name, "a rule file must be a mapping")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise _fail(name, f"unknown keys {sorted(unknown)} (allowed: {sorted(_RULE_KEYS)})")
    columns = []
    for i, col in enumerate(spec.get("columns") or []):
        where = f"{name}: columns[{i}]"
        if not isinstance(col, dict) or "column" not in col:
            raise _fail(where, "each column needs a 'column' name")
        bad = set(col) - _COLUMN_KEYS
        if bad:
            raise _fail(where, f"unknown keys {sorted(bad)} (allowed: {sorted(_COLUMN_KEYS)})")
        if col.get("transform") not in (None, *_TRANSFORMS):
            raise _fail(where, f"transform must be one of {sorted(_TRANSFORMS)}")
        rng = col.get("range")
        if rng is not None and (len(rng) != 2 or _number(rng[0]) is None or _number(rng[1]) is None):
            raise _fail(where, "range must be [low, high]")
        mapping = col.get("map")
        columns.append(ColumnRule(
            column=str(col["column"]),
            attr=str(col.get("attr", col["column"])),
            template=col.get("template"),
            sentinels=frozenset(key(v) for v in col.get("sentinels") or []),
            range=(float(rng[0]), float(rng[1])) if rng is not None else None,
            transform=col.get("transform"),
            mapping={key(k): v for k, v in mapping.items()} if mapping is not None else None,
            default=col["default"] if "default" in col else _KEEP,
        ))
    names = [c.column for c in columns]
    if len(set(names)) != len(names):
        raise _fail(name, "a column is listed twice")
    rules = Rules(name=name, columns=columns)
    for attr in ("prefix", "joiner", "suffix", "strip_trailing", "default_template"):
        if attr in spec:
            setattr(rules, attr, "" if spec[attr] is None else str(spec[attr]))
    if "missing" in spec:
        rules.missing = frozenset(key(v) for v in spec["missing"] or [])
    rules.other_columns = bool(spec.get("other_columns", False))
    rules.exclude = frozenset(str(c) for c in spec.get("exclude") or [])
    return rules


def available_rules() -> list[str]:
    return sorted(p.stem for p in RULES_DIR.glob("*.yaml"))


def load_rules(name_or_path: str | Path) -> Rules:
    """Rules from a packaged rule file name ('chexpert', 'aiib23', 'phantom') or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RULES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise MedsynthError(f"tabular rules '{name_or_path}' not found (packaged: {', '.join(available_rules())}; "
                                "or give a path to a .yaml file)")
    elif not path.is_file():
        raise MedsynthError(f"tabular rules file {path} does not exist")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise _fail(str(path), f"not valid YAML ({exc})".splitlines()[0]) from None
    return _parse(spec, path.stem)


def _render(value: Any, rule: ColumnRule, rules: Rules) -> str | None:
    """The sentence for one cell, or None when the value is missing, a sentinel, out of range or mapped to omit."""
    if _is_blank(value):
        return None
    k = key(value)
    if k in rules.missing or k in rule.sentinels:
        return None
    if rule.transform or rule.range:
        num = _number(value)
        if num is None or not math.isfinite(num):
            return None  # a range/transform column with text in it is unreasonable, not imputable
        if rule.transform:
            num = _TRANSFORMS[rule.transform](num)
        if rule.range and not rule.range[0] <= num <= rule.range[1]:
            return None
        value, k = num, key(num)
    shown = display(value)
    if rule.mapping is not None:
        if k in rule.mapping:
            shown = rule.mapping[k]
        elif rule.default is not _KEEP:
            shown = rule.default
        if shown is None:
            return None
        shown = str(shown).replace("{attr}", rule.attr)
    template = rule.template if rule.template is not None else rules.default_template
    text = template.format(attr=rule.attr, value=shown).strip()
    return text or None


def render_cell(value: Any, rule: ColumnRule, rules: Rules) -> str | None:
    """_render with a per-column cache: tables repeat the same few values (labels, ages) many times."""
    if value is None or (isinstance(value, float) and value != value):
        return None  # NaN objects are all distinct keys: answer before they flood the cache
    # keyed with the type: True == 1 == 1.0 hash alike but may read differently
    cache_key = (type(value), value)
    try:
        return rule._cache[cache_key]
    except KeyError:
        pass
    except TypeError:  # unhashable
        return _render(value, rule, rules)
    out = _render(value, rule, rules)
    if len(rule._cache) < 100_000:
        rule._cache[cache_key] = out
    return out


def _other_rule(column: str) -> ColumnRule:
    return ColumnRule(column=column, attr=column)


def row_to_text(row: Mapping, rules: Rules) -> str:
    """Text for one row; '' when no attribute is usable (the caller decides whether that is a reject)."""
    parts = []
    for rule in rules.columns:
        if rule.column in row:
            text = render_cell(row[rule.column], rule, rules)
            if text:
                parts.append(text)
    if rules.other_columns:
        listed = set(rules.column_names())
        for column in row.keys():
            if column in listed or column in rules.exclude:
                continue
            text = _render(row[column], _other_rule(str(column)), rules)
            if text:
                parts.append(text)
    if not parts:
        return ""
    body = rules.joiner.join(parts)
    if rules.strip_trailing:
        body = body.rstrip(rules.strip_trailing)
    # DGM-VLC appends '.' unconditionally (giving '..' after 'Gender: Male.'); we add the suffix only when missing.
    if rules.suffix and not body.endswith(rules.suffix):
        body += rules.suffix
    return rules.prefix + body


def rows_to_text(rows: Iterable[Mapping], rules: Rules) -> list[str]:
    return [row_to_text(r, rules) for r in rows]
