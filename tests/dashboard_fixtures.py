"""Fixtures of the dashboard's browser tests: the demo served by `cloudtally demo` (open, auth disabled) and by
`cloudtally serve` (API keys) on 127.0.0.1, real uvicorn processes; headless Chromium from Debian's packages driven by
selenium through /usr/bin/chromedriver (never a downloaded browser or driver)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, unavailable

CHROMIUM = Path(os.environ.get("CLOUDTALLY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CLOUDTALLY_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
# Screenshots and the first-paint figures land here (build/ is ignored by git).
OUTPUT = Path(os.environ.get("CLOUDTALLY_TEST_OUTPUT", REPO / "build" / "dashboard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    data_dir: Path
    proc: subprocess.Popen
    output: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    def api(self, path: str, params: dict | list | None = None, key: str | None = None) -> dict:
        """GET /v1<path> as JSON, with `Authorization: Bearer key` when given."""
        query = urllib.parse.urlencode(params or {}, doseq=True)
        return self.get_json(f"{self.base}/v1{path}{'?' + query if query else ''}", key)

    @staticmethod
    def get_json(url: str, key: str | None = None) -> dict:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)


def _env(data_dir: Path, **extra) -> dict:
    return {"CLOUDTALLY_DATA_DIR": str(data_dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"), "PYTHONUNBUFFERED": "1", **extra}


def _start(args: list[str], env: dict, ready_url: str, timeout: float = 180) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(ready_url, timeout=5).close()
            return proc, lines
        except urllib.error.HTTPError:
            return proc, lines  # answering (401 without a key is an answer)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"{' '.join(args)} did not serve:\n{''.join(lines)}")
            time.sleep(0.25)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`cloudtally demo` itself: builds the demo in a tmp dir, then serves it open (CLOUDTALLY_AUTH=disabled)."""
    data = tmp_path_factory.mktemp("dashboard") / "d"
    port = free_port()
    proc, lines = _start(["demo", "--port", str(port)], _env(data), f"http://127.0.0.1:{port}/v1/me")
    server = Server(f"http://127.0.0.1:{port}", data, proc, lines)
    yield server
    _stop(proc)


@pytest.fixture(scope="module")
def keyed_server(demo_server):
    """`cloudtally serve` on the same data with authentication on, keys (admin, finance, team:payments), and the
    recommendations the optimizers find in the demo (POST /v1/recommendations/refresh)."""
    data = demo_server.data_dir
    keys = {}
    for role, name in (("admin", "dash-admin"), ("finance", "dash-finance"), ("team:payments", "dash-payments")):
        done = subprocess.run([sys.executable, "-m", "app.cli", "keys", "create", "--role", role, "--name", name],
                              env=_env(data), cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        keys[role] = done.stdout.strip().splitlines()[-1]
        assert re.match(r"^ct_[0-9a-f]{12}_", keys[role])
    # Data-quality checks, so the data-health view has results to show (the demo ingests without a scheduler).
    for source in ("demo-aws", "demo-azure", "demo-gcp"):
        subprocess.run([sys.executable, "-m", "app.cli", "quality", source], env=_env(data), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    port = free_port()
    proc, lines = _start(["serve", "--no-scheduler", "--port", str(port)], _env(data, CLOUDTALLY_AUTH="enabled"),
                         f"http://127.0.0.1:{port}/healthz")
    server = Server(f"http://127.0.0.1:{port}", data, proc, lines, keys)
    refresh = urllib.request.Request(f"{server.base}/v1/recommendations/refresh", method="POST",
                                     headers={"Authorization": f"Bearer {keys['admin']}"})
    with urllib.request.urlopen(refresh, timeout=120) as r:
        assert json.load(r)["found"] > 0
    yield server
    _stop(proc)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    """Headless Chromium (Debian's chromium + chromium-driver); missing: skipped locally, a failure in CI."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        unavailable(f"headless Chromium needs {CHROMIUM} and {CHROMEDRIVER} "
                    "(apt-get install -y chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with the driver path below, selenium-manager downloads nothing
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,900",
                "--disable-extensions", "--no-first-run", "--lang=en-US"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
