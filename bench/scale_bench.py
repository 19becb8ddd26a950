#!/usr/bin/env python
"""Scale benchmark (issue 13): one 100M-line CUR 2.0 month through the AWS connector on one box, then the API.

Reuses bench/cur2_bench.py's generator (the same CUR 2.0 month, Savings Plan negations, RI fees, tags), written in
chunks of --chunk-rows (each chunk's rows spread over ~--part-rows Parquet parts by a hash, as cur2_bench does) so
the generator itself stays bounded, then measures, each step in a fresh child process:

  scan floor   SELECT sum(line_item_unblended_cost) FROM read_parquet([the parts])   (cur2_bench's child)
  load floor   DESIGN.md's yardstick: the parts into 14 FOCUS-named columns of a native table (cur2_bench's child)
  ingest       sources.add(rt, "bench", "aws", "cur2", folder) + ingest(rt, "bench") under the application's
               default resource settings (memory limit, threads, temp directory; app/settings.py), with an
               allocation rule document already active (team from the team tag), so the ingest's own after-ingest
               allocation pass allocates the month; then app.rollups.refresh (the daily rollups the API reads)
  API          `cloudtally serve --no-scheduler` on 127.0.0.1 (auth disabled, loopback only), then
               GET /v1/costs?start=2026-04-01&end=2026-05-01&granularity=day&group_by=team&metric=EffectiveCost
               --requests times in sequence: p50 / p95 / max latency; the response's total is checked against
               sum(EffectiveCost) of the month in the warehouse, to the cent

Prints a Markdown section (wall, rows/s, ratio to the load floor, peak RSS, warehouse size, spill, API latency)
to stdout; progress goes to stderr. Generated data is cached under --workdir by row count; --cleanup deletes the
generated data and the warehouse afterwards.

  flock /tmp/cloudtally-bench.lock python bench/scale_bench.py --rows 100000000 --cleanup
  python bench/scale_bench.py --rows 2000000 --requests 50          # a quick run of the same steps
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(BENCH), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import cur2_bench as cb  # noqa: E402
import ingest_bench as ib  # noqa: E402
from ingest_bench import human_rows, log, proc_status_mb, rate  # noqa: E402

RULES = {
    "dimensions": ["team"],
    "tag_aliases": {"team": ["Team", "user_team", "user:team"]},
    "rules": [{"name": "team-tag", "when": {"tag": "team", "exists": True},
               "set": {"team": {"tag": "team", "lower": True}}}],
}
QUERY = {"start": "2026-04-01", "end": "2026-05-01", "granularity": "day", "group_by": "team",
         "metric": "EffectiveCost"}


# =================================================================================================================
# Generation: cur2_bench's month, written chunk by chunk
# =================================================================================================================
def generate(ds: cb.Dataset, part_rows: int, chunk_rows: int, memory_limit: str, month_rows: int) -> None:
    """The first ds.rows line items of a month shaped for `month_rows` (resources, accounts: month_rows // 80), so a
    smaller run is exactly the beginning of the bigger one."""
    import duckdb

    tmp = ds.dir.with_name(ds.dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    data = tmp / cb.EXPORT_NAME / "data" / f"BILLING_PERIOD={cb.PERIOD}"
    data.mkdir(parents=True)
    con = duckdb.connect(str(tmp / "gen.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    t0 = time.perf_counter()
    n_files = 0
    for lo in range(0, ds.rows, chunk_rows):
        hi = min(ds.rows, lo + chunk_rows)
        parts = max(1, round((hi - lo) / part_rows))
        base = cb.generator_sql(month_rows, parts)  # the whole month's shape (resources, accounts: rows // 80)
        full = f"FROM range({month_rows}) t(i)"
        assert full in base, "cur2_bench.generator_sql changed: no range() to slice"
        # range() is not a parallel source: a COPY straight from it runs the whole generator on one thread (one
        # core busy at 10M rows). The chunk's row numbers in a table are scanned by every thread.
        con.execute(f"CREATE OR REPLACE TEMP TABLE ids AS SELECT range AS i FROM range({lo}, {hi})")
        base = base.replace(full, "FROM ids t(i)")
        exprs = []
        for name, *_ in con.execute(f"DESCRIBE SELECT * FROM ({base}) LIMIT 0").fetchall():
            if ds.money == "double" and name in cb.MONEY_COLUMNS:
                exprs.append(f"CAST(CAST({name} AS VARCHAR) AS DOUBLE) AS {name}")
            elif ds.money == "double" and name in cb.RATE_COLUMNS:
                exprs.append(f"CAST({name} AS VARCHAR) AS {name}")
            else:
                exprs.append(name)
        out = tmp / f"chunk-{lo}"
        with ib.progress_watch(con, f"generating rows {human_rows(lo)}-{human_rows(hi)}"):
            con.execute(f"COPY (SELECT {', '.join(exprs)} FROM ({base})) TO '{out}' "
                        f"(FORMAT parquet, COMPRESSION snappy, PARTITION_BY (part))")
        for part_dir in sorted(out.glob("part=*"), key=lambda p: int(p.name.split("=")[1])):
            for f in sorted(part_dir.glob("*.parquet")):
                n_files += 1
                f.rename(data / f"{cb.EXPORT_NAME}-{n_files:05d}.snappy.parquet")
        shutil.rmtree(out)
        con.execute("DROP TABLE ids")
        log(f"  {human_rows(hi)} rows written, {time.perf_counter() - t0:.0f} s")
    con.close()
    (tmp / "gen.duckdb").unlink()
    finish(ds, tmp, time.perf_counter() - t0)


def finish(ds: cb.Dataset, tmp: Path, gen_s: float) -> None:
    """The manifest and the expected figures of the parts written under `tmp`, then `tmp` becomes the dataset."""
    data = tmp / cb.EXPORT_NAME / "data" / f"BILLING_PERIOD={cb.PERIOD}"
    files = sorted(data.glob("*.parquet"))
    meta = tmp / cb.EXPORT_NAME / "metadata" / f"BILLING_PERIOD={cb.PERIOD}"
    meta.mkdir(parents=True)
    (meta / f"{cb.EXPORT_NAME}-Manifest.json").write_text(json.dumps({
        "executionId": f"scale-v{cb.GENERATOR_VERSION}-{ds.rows}-{ds.money}",
        "exportName": cb.EXPORT_NAME,
        "billingPeriod": {"start": "2026-04-01T00:00:00.000Z", "end": "2026-05-01T00:00:00.000Z"},
        "dataFiles": [f"s3://bench-bucket/exports/{cb.EXPORT_NAME}/data/BILLING_PERIOD={cb.PERIOD}/{f.name}"
                      for f in files],
    }, indent=2))
    log(f"generated {len(files)} parts, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB in {gen_s:.0f} s; "
        "computing the expected figures from the files")
    expected = cb.expected_figures(files, ds.money)
    expected["generation_s"] = round(gen_s, 1)
    (tmp / "expected.json").write_text(json.dumps(expected, indent=2))
    shutil.rmtree(ds.dir, ignore_errors=True)
    tmp.rename(ds.dir)


# =================================================================================================================
# The ingest child: rules first, then cur2_bench's timed ingest, then the rollups
# =================================================================================================================
def child_pipeline(task: dict) -> dict:
    import duckdb

    import app.ingest as ingest_mod
    from app import rollups
    from app.allocation import engine
    from app.runtime import Runtime
    from app.settings import Settings

    data_dir = Path(task["data_dir"])
    overrides = {} if task.get("memory_limit") is None else {"warehouse_memory_limit": task["memory_limit"]}
    rt = Runtime(Settings(data_dir=data_dir, **overrides))
    rt.init()
    engine.apply(rt, json.dumps(RULES), note="scale bench")
    rt.close()
    alloc = {"s": 0.0}
    orig = ingest_mod.after_ingest

    def timed_after_ingest(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return orig(*args, **kwargs)
        finally:
            alloc["s"] += time.perf_counter() - t0

    ingest_mod.after_ingest = timed_after_ingest
    out = cb.child_ingest(task)  # sources.add + ingest, timed, with its phase tracker
    out["allocation_s"] = alloc["s"]
    out["ingest_peak_rss_mb"] = proc_status_mb("VmHWM")
    settings = Settings(data_dir=data_dir, **overrides)
    out["settings"] = {"memory_limit": settings.warehouse_memory_limit, "threads": settings.warehouse_threads,
                       "temp_directory": str(settings.warehouse_temp_directory or "<warehouse>.tmp")}
    rt = Runtime(settings)
    t0 = time.perf_counter()
    out["rollups"] = rollups.refresh_rt(rt)
    out["rollups_s"] = time.perf_counter() - t0
    rt.close()
    wh = settings.resolved_warehouse_path
    con = duckdb.connect(str(wh), read_only=True)
    out["month_effective"] = str(con.execute(
        "SELECT sum(EffectiveCost) FROM cost_and_usage WHERE ChargePeriodStart >= TIMESTAMPTZ '2026-04-01 00:00+00' "
        "AND ChargePeriodStart < TIMESTAMPTZ '2026-05-01 00:00+00'").fetchone()[0])
    out["parts"], out["unallocated_parts"] = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE rule_name IS NULL) FROM cost_allocation").fetchone()
    con.close()
    out["warehouse_mb"] = wh.stat().st_size / 1e6
    return out


def run_child(script: Path, task: dict, scratch: Path) -> dict:
    task_file = scratch / "task.json"
    task["out"] = str(scratch / "out.json")
    task_file.write_text(json.dumps(task))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTALLY_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    psi0, t0 = ib.cpu_pressure_us(), time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script), "--child", str(task_file)], cwd=str(scratch), env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{task['measure']} failed (exit {code})")
    out = json.loads(Path(task["out"]).read_text())
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    psi1, elapsed = ib.cpu_pressure_us(), time.monotonic() - t0
    out["cpu_stall_pct"] = None if psi0 is None or psi1 is None else 100 * (psi1 - psi0) / 1e6 / elapsed
    return out


def child_main(task_path: str) -> None:
    task = json.loads(Path(task_path).read_text())
    out = child_pipeline(task)
    out["peak_rss_mb"] = proc_status_mb("VmHWM")
    Path(task["out"]).write_text(json.dumps(out, default=str))


# =================================================================================================================
# The API
# =================================================================================================================
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_api(data_dir: Path, requests: int, expected_total: Decimal, memory_limit: str | None) -> dict:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTALLY_")}
    env.update(CLOUDTALLY_AUTH="disabled", CLOUDTALLY_DATA_DIR=str(data_dir), CLOUDTALLY_LOG_LEVEL="WARNING")
    if memory_limit:
        env["CLOUDTALLY_WAREHOUSE_MEMORY_LIMIT"] = memory_limit
    cli = Path(sys.executable).with_name("cloudtally")
    proc = subprocess.Popen([str(cli), "serve", "--no-scheduler", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client.get("/openapi.json").raise_for_status()
                    break
                except httpx.HTTPError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the API did not start: " + proc.stderr.read().decode()[-2000:])
                    time.sleep(0.2)
            t0 = time.perf_counter()
            first = client.get("/v1/costs", params=QUERY)
            cold_ms = (time.perf_counter() - t0) * 1000
            first.raise_for_status()
            body = first.json()
            totals = {t["currency"]: Decimal(t["cost"]) for t in body["totals"]}
            lat = []
            for _ in range(requests):
                t0 = time.perf_counter()
                r = client.get("/v1/costs", params=QUERY)
                lat.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            rss = proc_status_mb_of(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
    return {"requests": requests, "cold_ms": cold_ms, "p50_ms": statistics.median(lat), "p95_ms": p95,
            "max_ms": lat[-1], "rows": len(body["rows"]), "total": str(totals.get("USD")),
            "total_ok": totals.get("USD") is not None and round(totals["USD"], 2) == round(expected_total, 2),
            "server_rss_mb": rss}


def proc_status_mb_of(pid: int, field: str = "VmHWM") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# =================================================================================================================
# Orchestration and report
# =================================================================================================================
def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6 if path.exists() else 0.0


def render(r: dict, info: dict, argv: list[str]) -> str:
    rows, load, scan, ing, api = r["rows"], r["load"], r["scan"], r["ingest"], r["api"]
    exp = r["expected"]
    d = Decimal
    ok = (d(ing["landed_billed"]) == d(exp["billed"]) and d(ing["landed_effective"]) == d(exp["amortized"])
          and ing["check_rows"] == exp["landed_rows"])
    total = ing["wall"] + ing["rollups_s"]
    stall = lambda x: "–" if x.get("cpu_stall_pct") is None else f"{x['cpu_stall_pct']:.0f}"  # noqa: E731
    loadavg = " ".join(f"{x:.2f}" for x in info["loadavg"])
    s = ing["settings"]
    lines = [
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gb']} GB RAM, Python {info['python']}, DuckDB "
        f"{info['duckdb']}; {info['date']}; load average at the end {loadavg}",
        f"Code: {info['git'] or 'unknown'}; command: `python bench/scale_bench.py {' '.join(argv)}`",
        f"Warehouse settings: memory_limit {s['memory_limit']}, threads {s['threads']}, "
        f"temp directory {s['temp_directory']}",
        "",
        "| step | wall s | rows/s | × load floor | peak RSS MB | CPU s | CPU stall % | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| generate (not timed against anything) | {exp['generation_s']:.0f} | – | – | – | – | – | "
        f"{r['parts']} parts, {r['data_mb']:.0f} MB |",
        f"| scan floor | {scan['wall']:.1f} | {rate(rows, scan['wall'])} | – | {scan['peak_rss_mb']:.0f} | "
        f"{scan['cpu_s']:.0f} | {stall(scan)} | |",
        f"| load floor (14 columns) | {load['wall']:.1f} | {rate(rows, load['wall'])} | 1.00× | "
        f"{load['peak_rss_mb']:.0f} | {load['cpu_s']:.0f} | {stall(load)} | table {load['db_mb']:.0f} MB |",
        f"| **ingest** (AWS CUR 2.0 connector, incl. allocation {ing['allocation_s']:.0f} s) | {ing['wall']:.1f} | "
        f"{rate(rows, ing['wall'])} | {ing['wall'] / load['wall']:.2f}× | {ing['ingest_peak_rss_mb']:.0f} | – | – | "
        + ("sums equal" if ok else "**MISMATCH**") + f"; {ing['check_rows']:,} lines landed, {ing['parts']:,} "
        f"allocation parts ({ing['unallocated_parts']:,} unallocated) |",
        f"| rollups refresh | {ing['rollups_s']:.1f} | – | – | {ing['peak_rss_mb']:.0f} (whole child) | – | – | "
        f"{ing['rollups']} |",
        f"| **ingest + rollups** | {total:.1f} | {rate(rows, total)} | {total / load['wall']:.2f}× | "
        f"{ing['peak_rss_mb']:.0f} | {ing['cpu_s']:.0f} | {stall(ing)} | warehouse {ing['warehouse_mb']:.0f} MB |",
        "",
        f"API: `GET /v1/costs?{'&'.join(f'{k}={v}' for k, v in QUERY.items())}` ({api['rows']} rows), "
        f"{api['requests']} sequential requests after a cold one: cold {api['cold_ms']:.0f} ms, p50 "
        f"{api['p50_ms']:.1f} ms, **p95 {api['p95_ms']:.1f} ms**, max {api['max_ms']:.1f} ms; server peak RSS "
        f"{api['server_rss_mb'] or 0:.0f} MB; total {api['total']} "
        + ("= the warehouse's sum(EffectiveCost) to the cent" if api["total_ok"] else "**differs from the warehouse**"),
        "",
        "Ingest phases (s): " + "; ".join(f"{k} {v:.1f}" for k, v in ing["phases"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="scale_bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000_000, help="CUR line items (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cloudtally-bench" / "scale",
                    help="generated data and the runs (default: %(default)s)")
    ap.add_argument("--month-rows", type=int,
                    help="shape the month for this many rows and generate its first --rows (default: --rows)")
    ap.add_argument("--part-rows", type=int, default=1_500_000, help="rows per Parquet part (default: %(default)s)")
    ap.add_argument("--chunk-rows", type=int, default=10_000_000,
                    help="rows generated per DuckDB COPY (default: %(default)s)")
    ap.add_argument("--generator-memory", default="3GB", help="memory_limit of the generator (default: %(default)s)")
    ap.add_argument("--memory-limit", help="CLOUDTALLY_WAREHOUSE_MEMORY_LIMIT of the ingest, rollups and API "
                    "(default: the application's default, sized from the machine)")
    ap.add_argument("--requests", type=int, default=200, help="API requests timed (default: %(default)s)")
    ap.add_argument("--cleanup", action="store_true", help="delete the generated data and warehouse at the end")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    month_rows = args.month_rows or args.rows
    if month_rows < args.rows:
        ap.error("--month-rows must be at least --rows")
    ds = cb.Dataset(workdir if month_rows == args.rows else workdir / f"month-{month_rows}", args.rows, "double")
    t_all = time.perf_counter()
    if not ds.exists():
        log(f"generating {human_rows(args.rows)} CUR 2.0 rows -> {ds.export}")
        generate(ds, args.part_rows, args.chunk_rows, args.generator_memory, month_rows)
    else:
        log(f"reusing {ds.export} ({len(ds.files)} parts, {ds.size_mb():.0f} MB)")
    run = workdir / f"run-{args.rows}"
    shutil.rmtree(run, ignore_errors=True)
    result = {"rows": args.rows, "parts": len(ds.files), "data_mb": ds.size_mb(), "expected": ds.expected}
    files = [str(f) for f in ds.files]
    try:
        for measure in ("scan", "load"):
            scratch = run / measure
            scratch.mkdir(parents=True)
            log(f"{measure} floor")
            result[measure] = cb.run_child({"measure": measure, "rows": args.rows, "money": "double", "rep": 0,
                                            "files": files, "export": str(ds.export),
                                            "db": str(scratch / "floor.duckdb")}, scratch)
            log(f"  -> {result[measure]['wall']:.1f} s, peak RSS {result[measure]['peak_rss_mb']:.0f} MB")
            shutil.rmtree(scratch / "floor.duckdb", ignore_errors=True)
            (scratch / "floor.duckdb").unlink(missing_ok=True)
        scratch = run / "ingest"
        scratch.mkdir(parents=True)
        data_dir = scratch / "data"
        log("ingest (rules active, then rollups)")
        result["ingest"] = run_child(Path(__file__).resolve(), {
            "measure": "ingest", "rows": args.rows, "files": files, "export": str(ds.export),
            "data_dir": str(data_dir), "memory_limit": args.memory_limit}, scratch)
        ing = result["ingest"]
        log(f"  -> ingest {ing['wall']:.1f} s (allocation {ing['allocation_s']:.1f} s), rollups "
            f"{ing['rollups_s']:.1f} s, peak RSS {ing['peak_rss_mb']:.0f} MB, warehouse {ing['warehouse_mb']:.0f} MB")
        log(f"API: {args.requests} requests")
        result["api"] = measure_api(data_dir, args.requests, Decimal(ing["month_effective"]), args.memory_limit)
        log(f"  -> p95 {result['api']['p95_ms']:.1f} ms")
    finally:
        if args.cleanup:
            shutil.rmtree(run, ignore_errors=True)
            shutil.rmtree(ds.dir, ignore_errors=True)
    info = ib.machine_info()
    print(render(result, info, argv))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "argv": argv, "result": result}, indent=2, default=str))
    log(f"finished in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
