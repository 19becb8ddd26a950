"""API benchmark (issue 8): latency and throughput of the cost and finance endpoints under uvicorn.

    python bench/api_bench.py --rows 5000000
    python bench/api_bench.py --rows 5000000 --workdir /tmp/api-bench --keep   # reuse the warehouse next time

1. Generates N AWS-shaped lines of April 2026 straight into a fresh warehouse (bench/allocation_bench.generate:
   40 teams in tags, 20 services, 12 regions, 150 sub-accounts), then allocates them with the real engine
   (`engine.apply` of a two-rule document: team and cost center from the tags) and builds the daily rollups
   (`app.rollups.refresh`); each step is timed.
2. For each server configuration of --configs (WORKERS:CACHE_MB; default 1 and 2 uvicorn workers, each with the
   read cache off and on): starts `cloudtally serve --no-scheduler --workers W` with CLOUDTALLY_API_CACHE_MB=C
   on 127.0.0.1 (a finance key is created first).
3. A load generator in a second process (asyncio streams, keep-alive HTTP/1.1; cheap per request, because it
   shares the 2 cores with the server) measures, per endpoint:
   - latency: sequential requests (one at a time) -> p50, p95, p99;
   - throughput: C concurrent connections for S seconds -> requests/s and p95 under load.
   Its own CPU time is reported. The first endpoint, /healthz, is the baseline: the same server, framework and
   client doing no query; the others are reported as ratios to it (latency x, throughput share). The "distinct"
   variant repeats the day x team query with a different `limit` (far above its row count) on every request, so
   the read cache never answers it: the cost of the query itself.
Markdown to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_LIMIT = 1_000_000  # app.costs.MAX_ROWS: the distinct variants count down from here
BASELINE = "healthz (baseline: no query)"
ENDPOINTS = {
    BASELINE: "/healthz",
    "costs day x team (1 month)": "/v1/costs?start=2026-04-01&end=2026-05-01&granularity=day&group_by=team",
    # the same query and work with a limit (far above the 1,230 rows) unique to each request: never a cache hit
    "costs day x team, each request distinct":
        "/v1/costs?start=2026-04-01&end=2026-05-01&granularity=day&group_by=team&limit={n}",
    "monthly totals by cost_center": "/v1/finance/monthly-totals?month=2026-04&by=cost_center",
    "costs day x ServiceName (lines path: filter on tag)":
        "/v1/costs?start=2026-04-01&end=2026-05-01&granularity=day&group_by=ServiceName&filter=tag:env=prod",
}
RULES = """
tag_aliases:
  team: [Team, team]
rules:
  - name: owner
    when: {tag: team, exists: true}
    set:
      team: {tag: team, lower: true}
      cost_center: {tag: app, default: none}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare(rows: int, data_dir: Path) -> dict:
    from bench.allocation_bench import generate

    timings = {}
    t = time.monotonic()
    generate(rows, data_dir)
    timings["generate"] = time.monotonic() - t
    from app import rollups
    from app.allocation import engine
    from app.runtime import Runtime
    from app.settings import Settings

    rt = Runtime(Settings(data_dir=data_dir))
    rt.init()
    t = time.monotonic()
    engine.apply(rt, RULES, note="api bench")
    timings["allocate"] = time.monotonic() - t
    t = time.monotonic()
    rollups.refresh_rt(rt)
    timings["rollups"] = time.monotonic() - t
    with rt.warehouse.connect(read_only=True) as con:
        timings["lines"] = con.execute("SELECT count(*) FROM cost_and_usage").fetchone()[0]
        timings["parts"] = con.execute("SELECT count(*) FROM cost_allocation").fetchone()[0]
        timings["rollup_rows"] = con.execute("SELECT count(*) FROM cost_rollup_daily").fetchone()[0]
    rt.close()
    return timings


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class _Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams. The load generator shares the 2 cores with the
    server, so it must cost little per request: httpx spent ~3 ms of CPU per request here (more than the server
    answering a repeated query), this client well under 0.5 ms. Responses are read by Content-Length (the API
    never streams)."""

    def __init__(self, host: str, port: int, key: str):
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.reader = self.writer = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n" + self.auth + b"\r\n")
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        if at < 0:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        length = int(lower[at + 15: lower.index(b"\r\n", at)])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _load(base: str, key: str, path: str, requests: int, concurrency: int, seconds: float) -> dict:
    """Sequential (concurrency 1, `requests` requests) or sustained (`concurrency` connections for `seconds`).
    A `{n}` in the path is replaced by a number unique to each request (the cache-defeating variants)."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    lat: list[float] = []
    errors = 0
    serial = iter(range(10**9))
    conns = [_Connection(host, int(port), key) for _ in range(concurrency)]
    for _ in range(3):  # warm-up
        if await conns[0].get(path.replace("{n}", str(MAX_LIMIT - next(serial)))) != 200:
            raise RuntimeError(f"warm-up of {path} failed")
    deadline = time.monotonic() + seconds if seconds else None
    count = 0

    async def worker(conn: _Connection):
        nonlocal count, errors
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if deadline is None:
                if count >= requests:
                    return
                count += 1
            t = time.perf_counter()
            status = await conn.get(path.replace("{n}", str(MAX_LIMIT - next(serial))))
            lat.append((time.perf_counter() - t) * 1000)
            if status != 200:
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.monotonic() - t0
    for c in conns:
        c.close()
    return {"n": len(lat), "errors": errors, "wall_s": wall, "rps": len(lat) / wall, "p50": pct(lat, 50),
            "p95": pct(lat, 95), "p99": pct(lat, 99)}


def loadgen(args) -> None:
    """The second process: one measurement, JSON to stdout."""
    t = time.process_time()
    out = asyncio.run(_load(args.base, args.key, args.path, args.requests, args.concurrency, args.seconds))
    out["client_cpu_s"] = time.process_time() - t
    print(json.dumps(out))


def measure(base: str, key: str, path: str, requests: int, concurrency: int, seconds: float) -> dict:
    cmd = [sys.executable, __file__, "--loadgen", "--base", base, "--key", key, "--path", path,
           "--requests", str(requests), "--concurrency", str(concurrency), "--seconds", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cloudtally-api-bench")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the generated warehouse")
    ap.add_argument("--requests", type=int, default=200, help="sequential requests per endpoint (latency)")
    ap.add_argument("--concurrency", type=int, default=16, help="connections for the throughput run")
    ap.add_argument("--seconds", type=float, default=20, help="duration of each throughput run")
    ap.add_argument("--configs", default="1:0,1:64,2:0,2:64",
                    help="server configurations to measure, WORKERS:CACHE_MB comma-separated (cache 0 = off)")
    ap.add_argument("--prepare-only", action="store_true", help="generate, allocate and build rollups, then stop "
                    "(with --keep: measure later)")
    ap.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loadgen:
        args.seconds = args.seconds or 0
        loadgen(args)
        return

    data_dir = args.workdir / f"rows-{args.rows}"
    prepared = data_dir / "prepared.json"
    if prepared.exists() and args.keep:
        timings = json.loads(prepared.read_text())
        log(f"reusing {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        log(f"generating {args.rows:,} lines, allocating, building rollups in {data_dir}")
        timings = prepare(args.rows, data_dir)
        prepared.write_text(json.dumps(timings))
    log(json.dumps(timings))

    from app.access import create_key
    from app.runtime import Runtime
    from app.settings import Settings

    rt = Runtime(Settings(data_dir=data_dir))
    rt.init()
    _, key = create_key(rt, "bench", "finance")
    rt.close()
    if args.prepare_only:
        return
    configs = [tuple(int(x) for x in c.split(":")) for c in args.configs.split(",")]
    runs = []
    for workers, cache_mb in configs:
        log(f"server: {workers} worker(s), read cache {cache_mb} MiB")
        runs.append((workers, cache_mb, serve_and_measure(args, data_dir, key, workers, cache_mb)))
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"### API benchmark: {timings['lines']:,} lines, {timings['parts']:,} allocation parts, "
          f"{timings['rollup_rows']:,} rollup rows\n")
    took = {k: "not timed" if timings.get(k) is None else f"{timings[k]:.1f} s"
            for k in ("generate", "allocate", "rollups")}
    print(f"Preparation: generate {took['generate']}, allocate {took['allocate']}, "
          f"rollups {took['rollups']}. Server: `cloudtally serve --no-scheduler --workers W` with "
          f"CLOUDTALLY_API_CACHE_MB=C; load generator: a second process on 127.0.0.1 ({args.concurrency} "
          f"keep-alive connections for {args.seconds:.0f} s per endpoint; its own CPU is the last column).\n")
    for workers, cache_mb, results in runs:
        print(f"**{workers} worker(s), read cache {'off' if cache_mb == 0 else f'{cache_mb} MiB'}**\n")
        base_seq, base_load = results[0][2], results[0][3]
        print("| endpoint | p50 ms (seq) | p95 ms (seq) | p99 ms (seq) | p95 / baseline | req/s | req/s / baseline "
              "| p95 ms under load | errors | client CPU s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, path, seq, load in results:
            print(f"| {name} | {seq['p50']:.1f} | {seq['p95']:.1f} | {seq['p99']:.1f} | "
                  f"{seq['p95'] / base_seq['p95']:.1f}x | {load['rps']:.0f} | {load['rps'] / base_load['rps']:.2f} | "
                  f"{load['p95']:.1f} | {seq['errors'] + load['errors']} | {load['client_cpu_s']:.1f} |")
        print()


def serve_and_measure(args, data_dir: Path, key: str, workers: int, cache_mb: int) -> list:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CLOUDTALLY_DATA_DIR": str(data_dir), "CLOUDTALLY_LOG_LEVEL": "WARNING",
           "CLOUDTALLY_API_CACHE_MB": str(cache_mb)}
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-scheduler", "--port", str(port),
                               "--workers", str(workers)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0 * workers)  # every worker up (each opens the warehouse on its first request)
        results = []
        for name, path in ENDPOINTS.items():
            log(f"{name}: latency")
            seq = measure(base, key, path, args.requests, 1, 0)
            log(f"{name}: throughput")
            load = measure(base, key, path, 0, args.concurrency, args.seconds)
            results.append((name, path, seq, load))
        return results
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
