"""Fixtures of the lake tests (issue 13): the demo's three clouds ingested and allocated once per module."""
from __future__ import annotations

import pytest

from app import demo, sources
from app.allocation import engine
from app.ingest import ingest
from app.runtime import Runtime
from app.settings import Settings


def load_demo(root) -> Runtime:
    """The demo exports (AWS CUR 2.0, Azure FocusCost, GCP export; Aug-Oct 2026) ingested through their connectors,
    with the demo's allocation rules applied (tag rules, an even split, a proportional split, unallocated lines)."""
    exports = demo.write_exports(root / "exports")
    rt = Runtime(Settings(data_dir=root / "data", warehouse_lock_timeout=10))
    rt.init()
    for name, path in exports.items():
        provider, fmt = demo.source_formats()[name]
        sources.add(rt, name, provider, fmt, str(path))
        ingest(rt, name)
    engine.apply(rt, demo.RULES_FILE.read_text(), note="lake tests")
    return rt


@pytest.fixture(scope="module")
def demo_rt(tmp_path_factory):
    rt = load_demo(tmp_path_factory.mktemp("lake-demo"))
    yield rt
    rt.close()
