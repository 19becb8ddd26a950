"""The TBM Taxonomy 5.0 mapping: FOCUS ServiceCategory (or ServiceSubcategory) -> resource tower, every FOCUS line in
the cost pool `Cloud Services`, the solution = the allocated team. Default in tbm.yaml beside this module; the
YAML named by CLOUDTALLY_TBM_MAPPING overrides it key by key."""
from __future__ import annotations

import os
from importlib import resources

import yaml

from app.allocation.sql import lit

ENV = "CLOUDTALLY_TBM_MAPPING"


class MappingError(ValueError):
    pass


def mapping(path: str | None = None) -> dict:
    doc = yaml.safe_load(resources.files("app.itfm").joinpath("tbm.yaml").read_text())
    path = path or os.environ.get(ENV)
    if path:
        try:
            with open(path) as fh:
                over = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"{ENV}={path}: {exc}") from exc
        if not isinstance(over, dict):
            raise MappingError(f"{path}: expected a mapping with pool, towers, subcategories, default_tower")
        for key in ("towers", "subcategories"):
            if over.get(key) is not None and not isinstance(over[key], dict):
                raise MappingError(f"{path}: {key} must map names to towers")
            doc[key] = {**doc.get(key, {}), **(over.get(key) or {})}
        for key in ("pool", "default_tower"):
            if over.get(key):
                doc[key] = str(over[key])
    return doc


def tower_sql(alias: str = "c", doc: dict | None = None) -> str:
    """A SQL expression giving the tower of a line of `alias` (a cost_and_usage row)."""
    doc = doc or mapping()
    parts = [f'WHEN {alias}."ServiceSubcategory" = {lit(k)} THEN {lit(v)}' for k, v in doc["subcategories"].items()]
    parts += [f'WHEN {alias}."ServiceCategory" = {lit(k)} THEN {lit(v)}' for k, v in doc["towers"].items()]
    return f"CASE {' '.join(parts)} ELSE {lit(doc['default_tower'])} END"
