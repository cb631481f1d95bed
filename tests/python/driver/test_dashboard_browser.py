"""The reference dashboard (examples/fastapi_app/dashboard.py) in a real browser.

Headless Chromium (Debian's ``chromium`` package) driven over the Chrome DevTools
protocol (one websocket, ``websocket-client``), against the dashboard under uvicorn on
this test's own database:

- two mechanics' pages and a customer's page, each in a browser context of its own (its
  own cookies: its own signed-in user), signed in through the development picker;
- the customer's form shows the contract's validation message beside the field it is
  about, then sends a request; both mechanics see it appear without a reload (a marker
  set on each page survives); both press Accept at once (one with the mouse, one with
  the keyboard): one page shows the session, the other "another mechanic was faster";
  the customer's page shows the session with the winner's name;
- the customer's page, disconnected from the live stream while the mechanic starts the
  session, catches up from its last event's cursor when it reconnects;
- every form field has a label, and at 390 px wide nothing overflows the screen; the
  screenshots are saved in the test's directory (and into docs/img/ with
  AUTODOCTOR_UPDATE_SCREENSHOTS=1: the README shows them).

It skips only when Chromium cannot run here (not installed, or fails to start), and fails
instead under CI (``CI`` set). Every wait has a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytest.importorskip("fastapi", reason="the dashboard needs fastapi (dev extra)")
pytest.importorskip("uvicorn", reason="the dashboard needs uvicorn (dev extra)")
httpx = pytest.importorskip("httpx", reason="the dashboard tests need httpx (dev extra)")
websocket = pytest.importorskip(
    "websocket", reason="driving Chromium needs websocket-client (dev extra)"
)

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "img"
WAIT = 20.0  # seconds: the deadline of any one wait in the browser


def unavailable(reason: str) -> None:
    """Skip: Chromium cannot run here. Under CI that is a failure: `make test` installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"Chromium must run under CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the service --------------------------------------------------------------------------


class Dashboard:
    """``uvicorn examples.fastapi_app.dashboard:app`` in a subprocess."""

    def __init__(self, dsn: str, log: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_app.dashboard:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--timeout-graceful-shutdown",
                "2",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": dsn, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited at start:\n{self.output()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the dashboard did not start listening:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def app_login(dsn: str, admin: psycopg.Connection[Any]) -> str:
    """The README's NOINHERIT `authenticator` where the server has it, else the test's user."""
    if admin.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = 'authenticator' AND rolcanlogin"
    ).fetchone():
        parts = [p for p in dsn.split() if not p.startswith(("user=", "password="))]
        return " ".join([*parts, "user=authenticator"])
    return dsn


@pytest.fixture
def dashboard(dsn: str, admin: psycopg.Connection[Any], tmp_path: Path) -> Iterator[Dashboard]:
    svc = Dashboard(
        app_login(dsn, admin), tmp_path / "dashboard.log", {"AUTODOCTOR_DEV_LOGIN": "1"}
    )
    try:
        yield svc
    finally:
        svc.stop()


# --- Chromium over the DevTools protocol ----------------------------------------------------


class CDPError(Exception):
    pass


def chromium_binary() -> str | None:
    for candidate in (os.environ.get("AUTODOCTOR_CHROMIUM"), "/usr/lib/chromium/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium; one websocket to it; pages attached as flat sessions."""

    def __init__(self, profile: Path) -> None:
        binary = chromium_binary()
        if binary is None:
            unavailable("no chromium binary (Debian package `chromium`: `make deps`)")
        assert binary is not None
        profile.mkdir()
        self.log_path = profile.parent / "chromium.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # root in a container: no user namespaces for the sandbox
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-sync",
                "--disable-component-update",
                "--disable-background-networking",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--mute-audio",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.close()
                unavailable(f"chromium did not start:\n{tail}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=WAIT, suppress_origin=True
        )
        self.next_id = 0
        self.errors: list[str] = []  # exceptions thrown in any page's scripts

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + WAIT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {method} within {WAIT} s")
            self.ws.settimeout(remaining)
            data = json.loads(self.ws.recv())
            if data.get("id") == self.next_id:
                if "error" in data:
                    raise CDPError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            if data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(json.dumps(details.get("exception", details))[:500])

    def page(self, width: int = 1100, height: int = 900) -> Page:
        context = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": context, "newWindow": True},
        )["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Emulation.setFocusEmulationEnabled", {"enabled": True})
        page.viewport(width, height)
        return page

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # chromium and its helpers: our group
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, self.session)

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    def wait_for(self, expression: str, what: str, timeout: float = WAIT) -> Any:
        """Poll ``expression`` until it is truthy; its value. Fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except CDPError:  # a navigation replaced the document mid-call: try again
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.text()
                raise AssertionError(f"{what}: not within {timeout} s. The page says:\n{text}")
            time.sleep(0.1)

    def text(self) -> str:
        try:
            return str(self.js("document.body ? document.body.innerText : ''"))[:3000]
        except CDPError as exc:
            return f"(unreadable: {exc})"

    def goto(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
            f"loading {url}",
        )

    def click(self, selector: str) -> None:
        found = self.js(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return false; el.click(); return true; })()"
        )
        assert found, f"nothing matches {selector}:\n{self.text()}"

    def press_enter(self, selector: str) -> None:
        """Focus ``selector`` and press Enter on the keyboard (real key events)."""
        focused = self.js(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return false; el.focus(); return document.activeElement === el; })()"
        )
        assert focused, f"cannot focus {selector}:\n{self.text()}"
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **key})
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", **key})

    def fill(self, selector: str, value: str) -> None:
        done = self.js(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            f" if (!el) return false; el.value = {json.dumps(value)};"
            " el.dispatchEvent(new Event('input', {bubbles: true})); return true; })()"
        )
        assert done, f"no field {selector}"

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        b.close()


# --- the test -------------------------------------------------------------------------------


def sign_in(page: Page, base: str, user: uuid.UUID | str) -> None:
    page.goto(f"{base}/dashboard/login")
    page.click(f'button[name="user"][value="{user}"]')
    page.wait_for(
        "location.pathname === '/dashboard/' && document.readyState === 'complete'"
        " && document.querySelector('#live-state')?.dataset.state === 'open'",
        f"signing in as {user} and connecting to the live stream",
    )
    page.js("window.__notReloaded = true")


def incoming_ids(page: Page) -> list[str]:
    ids: list[str] = page.js(
        "[...document.querySelectorAll('#incoming [data-request-id]')]"
        ".map(e => e.dataset.requestId)"
    )
    return ids


def test_two_mechanics_race_for_a_customers_request_in_the_browser(
    dashboard: Dashboard,
    browser: Browser,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    base = dashboard.url
    carla = make_user("Carla Customer")
    mechanics = {
        "Mo Mechanic": make_mechanic("Mo Mechanic"),
        "Nia Mechanic": make_mechanic("Nia Mechanic"),
    }
    mo, nia = browser.page(), browser.page()
    customer = browser.page()
    sign_in(mo, base, mechanics["Mo Mechanic"])
    sign_in(nia, base, mechanics["Nia Mechanic"])
    sign_in(customer, base, carla)
    for page in (mo, nia):
        assert page.js("document.querySelector('h1').textContent") == "Mechanic dashboard"
        assert incoming_ids(page) == []
    assert customer.js("document.querySelector('h1').textContent") == "Customer dashboard"

    # Every form field has a label; every control is a real, focusable button.
    unlabelled = customer.js(
        "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"
    )
    assert unlabelled == []

    # The contract's validation message, beside the field it is about.
    customer.fill("#new-session_type", "diagnostic")
    customer.fill("#new-plan_code", "standard")
    customer.click("#new-submit")
    message = customer.wait_for(
        "document.querySelector('#new-plan_code-error').textContent",
        "the plan's validation message beside the plan field",
    )
    assert "does not allow diagnostic" in message
    assert customer.js("document.querySelector('#new-plan_code').getAttribute('aria-invalid')")
    assert customer.js("document.activeElement.id") == "new-plan_code"

    # The intake form too: the vehicle's year, beside the year field.
    customer.fill("#intake-make", "Peugeot")
    customer.fill("#intake-model", "208")
    customer.fill("#intake-year", "1800")
    customer.fill("#intake-concern", "Engine light on")
    customer.click("#intake-submit")
    message = customer.wait_for(
        "document.querySelector('#intake-year-error').textContent",
        "the vehicle year's validation message beside the year field",
    )
    assert "year must be an integer from 1900" in message
    assert customer.js("document.querySelector('#intake-make-error').textContent") == ""

    # A request that passes: both mechanics see it appear, without a reload.
    customer.fill("#new-session_type", "video")
    customer.fill("#new-plan_code", "free")
    customer.fill("#new-notes", "Brakes squeal when cold")
    customer.click("#new-submit")
    customer.wait_for(
        "document.querySelector('#flash').dataset.kind === 'ok'", "the request being sent"
    )
    assert customer.js("document.querySelector('#new-plan_code-error').textContent") == ""
    for page in (mo, nia):
        page.wait_for(
            "document.querySelector('#incoming [data-request-id]')?.textContent"
            ".includes('Brakes squeal when cold')",
            "the new request appearing on a mechanic's page",
        )
        assert page.js("window.__notReloaded") is True
    (request_id,) = incoming_ids(mo)
    assert incoming_ids(nia) == [request_id]
    customer.wait_for(
        "document.querySelector('#requests [data-status=pending] time.countdown')"
        "?.textContent.includes('left')",
        "the request's expiry countdown on the customer's page",
    )

    # Both press Accept at once: Mo with the mouse, Nia with the keyboard.
    button = f"#accept-{request_id}"
    mo.click(button)
    nia.press_enter(button)
    outcome: dict[str, str] = {}
    for name, page in (("Mo Mechanic", mo), ("Nia Mechanic", nia)):
        outcome[name] = page.wait_for(
            "document.querySelector('#flash').dataset.kind", f"{name}'s answer to Accept"
        )
    assert sorted(outcome.values()) == ["error", "ok"], outcome
    winner = next(name for name, kind in outcome.items() if kind == "ok")
    loser = next(name for name, kind in outcome.items() if kind == "error")
    win_page, lose_page = (mo, nia) if winner == "Mo Mechanic" else (nia, mo)
    conflict = lose_page.js("document.querySelector('#flash').textContent")
    assert "Another mechanic was faster" in conflict, conflict
    win_page.wait_for(
        "document.querySelector('#active [data-session-id] .customer-name')?.textContent"
        " === 'Carla Customer'",
        "the winner's page showing the session",
    )
    lose_page.wait_for(
        "document.querySelectorAll('#incoming [data-request-id]').length === 0",
        "the request leaving the loser's page",
    )
    assert lose_page.js("document.querySelectorAll('#active [data-session-id]').length") == 0

    # The customer's page: the session, with the winner's name.
    customer.wait_for(
        f"document.querySelector('#active [data-session-id] .mechanic-name')?.textContent"
        f" === {json.dumps(winner)}",
        "the customer's page showing the session with the winner's name",
    )
    customer.wait_for(
        "!!document.querySelector('#requests [data-status=accepted]')",
        "the customer's request shown as accepted",
    )
    for page in (mo, nia, customer):
        assert page.js("window.__notReloaded") is True

    # Reconnecting catches up: the customer's stream is closed while the mechanic starts
    # the session, then reopened from the last event's cursor.
    customer.js("window.autodoctorDashboard.disconnect()")
    session_id = win_page.js(
        "document.querySelector('#active [data-session-id]').dataset.sessionId"
    )
    win_page.click(f"#move-{session_id}-live")
    win_page.wait_for(
        f"document.querySelector('[data-session-id=\"{session_id}\"]')?.dataset.status === 'live'",
        "the session going live on the mechanic's page",
    )
    time.sleep(0.5)  # the event is out; the customer's page is not listening
    assert (
        customer.js(f"document.querySelector('[data-session-id=\"{session_id}\"]').dataset.status")
        == "waiting"
    )
    customer.js("window.autodoctorDashboard.connect()")
    customer.wait_for(
        f"document.querySelector('[data-session-id=\"{session_id}\"]')?.dataset.status === 'live'",
        "the customer's page catching up after reconnecting",
    )
    assert "session status changed" in customer.js("document.querySelector('#events').textContent")

    # Screenshots: the loser's page (the conflict), and the customer's on a phone.
    win_page.screenshot(tmp_path / "dashboard-winner.png")
    shots = [lose_page.screenshot(tmp_path / "dashboard-mechanic.png")]
    customer.viewport(390, 844, mobile=True)
    customer.js("window.scrollTo(0, 0)")
    overflow = customer.wait_for(
        "(() => { const w = document.documentElement.scrollWidth;"
        " return w <= 390 ? 'fits' : `overflows: ${w}px`; })()",
        "the page laid out at 390 px",
    )
    assert overflow == "fits"
    shots.append(customer.screenshot(tmp_path / "dashboard-phone.png"))
    for shot in shots:
        assert shot.stat().st_size > 5000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("AUTODOCTOR_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copyfile(shot, SCREENSHOTS / shot.name)
    print(f"screenshots: {', '.join(str(s) for s in shots)}; {loser} lost the race")

    assert browser.errors == [], browser.errors
    log = dashboard.output()
    assert '" 500 ' not in log and "Traceback" not in log, log
    assert time.monotonic() - started < 90


def test_the_development_sign_in_runs_only_on_a_throwaway_database(
    dsn: str, admin: psycopg.Connection[Any], tmp_path: Path
) -> None:
    login = app_login(dsn, admin)
    refused = Dashboard(login, tmp_path / "refused.log", {"AUTODOCTOR_DEV_LOGIN": ""})
    try:
        page = httpx.get(f"{refused.url}/dashboard/login", timeout=10)
        assert page.status_code == 403 and "is not a throwaway database" in page.text
        events = httpx.get(f"{refused.url}/dashboard/events", timeout=10)
        assert events.status_code == 403
    finally:
        refused.stop()

    dbname = admin.info.dbname
    admin.execute(f'ALTER DATABASE "{dbname}" SET autodoctor.throwaway = on')
    allowed = Dashboard(login, tmp_path / "allowed.log", {"AUTODOCTOR_DEV_LOGIN": ""})
    try:
        page = httpx.get(f"{allowed.url}/dashboard/login", timeout=10)
        assert page.status_code == 200 and "Development only" in page.text
        assert "is a throwaway one" in page.text
        # The operator's page: status, the invariant checker, the orphan queue.
        cookies = {"autodoctor_dev_user": "operator"}
        page = httpx.get(f"{allowed.url}/dashboard/", cookies=cookies, timeout=10)
        assert page.status_code == 200, page.text
        for heading in (
            "Operations dashboard",
            "pending requests",
            "Invariant violations",
            "None: every invariant holds.",
            "Orphan queue",
        ):
            assert heading in page.text
        ran = httpx.post(
            f"{allowed.url}/dashboard/operator/maintenance",
            cookies=cookies,
            headers={"Accept": "application/json"},
            timeout=10,
        )
        assert ran.status_code == 200 and ran.json()["message"].startswith("Maintenance:")
    finally:
        allowed.stop()
