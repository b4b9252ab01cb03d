"""The published numbers, transcribed from ../shared/papers into YAML files beside this module."""
from __future__ import annotations

from importlib import resources

import yaml

from ..errors import MedsynthError


def papers() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("published").iterdir()
                  if p.name.endswith(".yaml"))


def load_published(paper: str) -> dict:
    path = resources.files(__package__).joinpath("published", f"{paper}.yaml")
    if not path.is_file():
        raise MedsynthError(f"no published tables for paper '{paper}' (known: {', '.join(papers())})")
    data = yaml.safe_load(path.read_text())
    for table in data["tables"]:
        for row, values in table["rows"].items():
            if len(values) != len(table["columns"]):
                raise ValueError(f"{paper}/{table['id']}/{row}: {len(values)} values for {len(table['columns'])} columns")
    return data
