"""The QA console (/qa) and the customer-service page (/support) in a real browser.

Debian's headless Chromium, driven by Playwright for Python (never ``playwright install``), against
a real server process. Screenshots land in test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import ROOT, LiveServer, free_port, server_env

CHROMIUM = "/usr/bin/chromium"
QA, SUPPORT, ADMIN = "qa-secret-7f3a", "support-secret-2c9d", "admin-secret-5e1b"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CUTOUT_PRICE = 31_000
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    env = server_env(tmp, TRIALZONE_QA_TOKEN=QA, TRIALZONE_SUPPORT_TOKEN=SUPPORT, TRIALZONE_ADMIN_TOKEN=ADMIN,
                     TRIALZONE_MODELS="u2netp")
    env.pop("TRIALZONE_DEV_USER_HEADER", None)  # the pages act only through staff credentials
    live = LiveServer(env, free_port(), tmp / "server.log").start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def chelsea(tmp_path_factory) -> Path:
    from skimage import data
    from PIL import Image

    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=ARGS, headless=True)
        yield b
        b.close()


def _until(check, timeout: float = 30.0, what: str = "the page"):
    """Poll ``check`` (from Python: the pages' CSP forbids the eval behind wait_for_function)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def test_qa_and_support_pages(server: LiveServer, browser, chelsea: Path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # --- QA console: sign in, make a test user -----------------------------------------------------
    page.goto(server.url + "/qa")
    page.fill("#token", QA)
    page.click("#sign-in")
    page.wait_for_selector("#console:not([hidden])")
    page.click("#new-user")
    _until(lambda: page.input_value("#test-user").startswith("qa-"), what="a test user")
    user = page.input_value("#test-user")
    _until(lambda: page.text_content("#balance").strip() != "–", what="the balance")
    before = _number(page.text_content("#balance"))
    assert before == 500_000

    # --- cutout on chelsea -----------------------------------------------------------------------------
    page.set_input_files("#file", str(chelsea))
    page.select_option("#feature", "cutout")
    page.wait_for_selector("#run:not([disabled])")
    page.click("#run")
    _until(lambda: page.text_content("#charged").strip() != "–", what="tokens charged")
    _until(lambda: page.locator("#result").evaluate("i => !i.hidden && i.complete && i.naturalWidth > 0"),
           what="the result image")
    assert _number(page.text_content("#charged")) == CUTOUT_PRICE
    assert _number(page.text_content("#remaining")) == before - CUTOUT_PRICE
    _until(lambda: _number(page.text_content("#balance")) == before - CUTOUT_PRICE, what="the new balance")
    assert page.get_attribute("#download", "href").startswith("blob:")
    page.wait_for_selector("#history tr td.status-succeeded")

    # --- removal: paint one stroke on the canvas -------------------------------------------------------
    page.select_option("#feature", "removal")
    page.wait_for_selector("#brush-box:not([hidden])")
    box = page.locator("#canvas").bounding_box()
    assert box and box["width"] > 50
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 8):
        page.mouse.move(x + step * box["width"] * 0.03, y + step * 2)
    page.mouse.up()
    page.wait_for_selector("#run:not([disabled])")
    removal_price = next(f["price"] for f in httpx.get(server.url + "/v1/features").json() if f["name"] == "removal")
    page.click("#run")
    _until(lambda: page.text_content("#run-status").startswith("Done"), what=page.text_content("#run-status"))
    assert _number(page.text_content("#charged")) == removal_price
    _until(lambda: page.locator("#history tr td.status-succeeded").count() >= 2, what="two succeeded operations")
    page.screenshot(path=str(SCREENSHOTS / "qa.png"), full_page=True)

    # --- customer service finds the cutout in the journal ------------------------------------------------
    support = context.new_page()
    support.on("pageerror", lambda exc: errors.append(str(exc)))
    support.goto(server.url + "/support")
    support.fill("#token", SUPPORT)
    support.click("#sign-in")
    support.wait_for_selector("#console:not([hidden])")
    support.fill("#user-id", user)
    support.click("#lookup button")
    support.wait_for_selector("#user:not([hidden])")
    journal = support.text_content("#journal")
    assert f"Smart cutout, charged {CUTOUT_PRICE:,}" in journal
    support.fill("#adj-amount", "5000")
    support.fill("#adj-reason", "goodwill after a failed cutout")
    support.click("#adj-submit")
    _until(lambda: support.text_content("#adj-msg").startswith("Granted"), what=support.text_content("#adj-msg"))
    assert "goodwill after a failed cutout" in support.text_content("#journal")
    support.screenshot(path=str(SCREENSHOTS / "support.png"), full_page=True)
    for name, shown in (("qa", page), ("support", support)):  # phone-sized too
        shown.set_viewport_size({"width": 390, "height": 844})
        shown.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)

    # --- wrong credentials in the pages ------------------------------------------------------------------
    wrong = browser.new_context()
    qa_wrong = wrong.new_page()
    qa_wrong.goto(server.url + "/qa")
    qa_wrong.fill("#token", "not-the-credential")
    qa_wrong.click("#sign-in")
    _until(lambda: "refused" in qa_wrong.text_content("#auth-error"), what="a refusal")
    assert qa_wrong.is_hidden("#console")
    sup_wrong = wrong.new_page()
    sup_wrong.goto(server.url + "/support")
    sup_wrong.fill("#token", QA)  # a QA credential is not a support credential
    sup_wrong.click("#sign-in")
    _until(lambda: "refused" in sup_wrong.text_content("#auth-error"), what="a refusal")
    assert sup_wrong.is_hidden("#console")
    wrong.close()
    context.close()
    assert not errors, errors

    # --- and the API behind them ---------------------------------------------------------------------------
    def call(method: str, path: str, token: str | None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, server.url + path, headers=headers, timeout=10, **kw)

    adjust = f"/v1/support/users/{user}/adjustments"
    body = {"amount": 1000, "reason": "x"}
    assert call("GET", "/v1/qa/test-users", None).status_code == 401
    assert call("GET", "/v1/qa/test-users", "wrong").status_code == 403
    assert call("GET", "/v1/qa/test-users", SUPPORT).status_code == 403
    assert call("GET", f"/v1/admin/users/{user}/ledger", None).status_code == 401
    assert call("GET", f"/v1/admin/users/{user}/ledger", "wrong").status_code == 403
    assert call("GET", f"/v1/admin/users/{user}/ledger", QA).status_code == 403
    assert call("POST", adjust, QA, json=body).status_code == 403
    assert call("POST", adjust, None, json=body).status_code == 401
    assert call("POST", adjust, SUPPORT, json={"amount": 1000, "reason": ""}).status_code in (400, 422)
    # X-Test-User: only with the QA credential, only for a flagged test user
    assert call("GET", "/v1/me/balance", QA, headers={"X-Test-User": user}).status_code == 200
    for token, who in ((QA, "someone-real"), (SUPPORT, user), (ADMIN, user), ("wrong", user)):
        r = call("GET", "/v1/me/balance", token, headers={"X-Test-User": who})
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (token, who, r.text)
    r = call("POST", "/v1/operations/cutout", QA, headers={"X-Test-User": "someone-real"},
             files={"image": chelsea.read_bytes()})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    # the operator is journaled, and reset brings the welcome amount back
    ledger = call("GET", f"/v1/admin/users/{user}/ledger", SUPPORT).json()
    assert any("goodwill" in (e["note"] or "") for e in ledger["items"])
    reset = call("POST", f"/v1/qa/test-users/{user}/reset", QA)
    assert reset.status_code == 200 and reset.json()["balance"]["available"] == 500_000
    assert call("POST", "/v1/qa/test-users/someone-real/reset", QA).status_code == 404
    audit = subprocess.run([sys.executable, "-m", "app", "ledger", "audit"], cwd=ROOT, env=server.env,
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr
