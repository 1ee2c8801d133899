"""Partner operations end to end: our server and the sandbox vendor as real processes on loopback.

Covers the issue's acceptance list: success (202, then succeeded, charged once), vendor failure,
4xx, silence (deadline), vendor down; duplicate, stale, forged and misdirected callbacks; a result
URL on a host that is not allowed; a restart while operations are pending; secret rotation. Every
token is accounted for: `python -m app ledger audit` passes at the end.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time

import httpx
import msgspec
import pytest
from PIL import Image

from app.vendors.protocol import Callback, TaskResult
from app.vendors.sandbox.app import DEV_SECRET
from app.vendors.signatures import sign
from tests.live import MODELS, ROOT, LiveServer, free_port, server_env
from tests.photos import jpeg

NEW_SECRET = "whsec_" + base64.b64encode(b"rotated-secret-2026-11-26").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-partner-secret-0001").decode()
DEADLINE = 8


def features_toml(sandbox: str, down: str) -> str:
    vendor = f'base_url = "{sandbox}"\napi_key = "sandbox-key"\nallowed_result_hosts = ["127.0.0.1"]\n'
    return f"""
[features.pet-generate]
vendor = "sandbox"

[features.cutout-partner]
title = "Smart cutout (partner)"
price = 31000
runner = "vendor"
vendor = "sandbox-poll"
vendor_task = "cutout"

[features.pet-generate-down]
title = "AI pet (partner down)"
price = 80000
runner = "vendor"
vendor = "down"
needs_image = false

[vendors.sandbox]
{vendor}deadline = {DEADLINE}
callback_secrets = ["{DEV_SECRET}", "{NEW_SECRET}"]

[vendors.sandbox-poll]
{vendor}mode = "poll"
poll_interval = 0.3
poll_max_interval = 1
deadline = {DEADLINE}

[vendors.other]
{vendor}callback_secrets = ["{OTHER_SECRET}"]

[vendors.down]
base_url = "{down}"
api_key = "k"
deadline = 4
callback_secrets = ["{DEV_SECRET}"]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vendors")
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "app.vendors.sandbox", "--port", str(port), "--models-dir", MODELS],
        cwd=ROOT, stdout=(tmp / "sandbox.log").open("wb"), stderr=subprocess.STDOUT,
    )
    sandbox_url = f"http://127.0.0.1:{port}"
    (tmp / "features.toml").write_text(features_toml(sandbox_url, f"http://127.0.0.1:{free_port()}"))
    server_port = free_port()
    env = server_env(tmp, TRIALZONE_FEATURES_FILE=str(tmp / "features.toml"), TRIALZONE_MODELS="u2netp",
                     TRIALZONE_PUBLIC_URL=f"http://127.0.0.1:{server_port}", TRIALZONE_REAPER_INTERVAL="0.5")
    server = LiveServer(env, server_port, tmp / "server.log").start()
    yield server, sandbox_url, env
    server.stop()
    sandbox.terminate()
    sandbox.wait(10)


def submit(server, feature: str, user: str, sandbox: dict | None = None, **fields) -> httpx.Response:
    data = {**fields, **({"params": json.dumps({"sandbox": sandbox})} if sandbox else {})}
    files = {"image": ("cat.jpg", jpeg("chelsea"), "image/jpeg")} if feature == "cutout-partner" else None
    return httpx.post(f"{server.url}/v1/operations/{feature}", data=data, files=files,
                      headers={"X-User-Id": user}, timeout=60)


def wait_for(server, op_id: str, user: str, timeout: float = 30, until=("succeeded", "failed", "expired")) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = httpx.get(f"{server.url}/v1/operations/{op_id}", headers={"X-User-Id": user}).json()
        if record["status"] in until or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


def balance(server, user: str) -> dict:
    return httpx.get(f"{server.url}/v1/me/balance", headers={"X-User-Id": user}).json()


def accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/operations/{response.headers['x-operation-id']}"
    assert response.json()["status"] == "running"
    return response.headers["x-operation-id"]


def test_success_is_202_then_succeeded_and_charged_once(stack):
    server, _, _ = stack
    op_id = accepted(submit(server, "pet-generate", "v-ok", species="cat", colour="orange", style="cartoon"))
    assert balance(server, "v-ok")["held"] == 80_000
    record = wait_for(server, op_id, "v-ok")
    assert record["status"] == "succeeded" and record["tokens_charged"] == 80_000
    picture = httpx.get(f"{server.url}/v1/operations/{op_id}/result", headers={"X-User-Id": "v-ok"})
    image = Image.open(io.BytesIO(picture.content))
    assert image.format == "PNG" and len(set(image.convert("RGB").getdata())) > 50  # a drawing, not a blank
    assert balance(server, "v-ok")["available"] == 420_000 and balance(server, "v-ok")["held"] == 0


@pytest.mark.parametrize("behaviour,code", [("fail", "vendor_failed"), ("never", "vendor_timeout")])
def test_failure_and_silence_cost_nothing(stack, behaviour, code):
    server, _, _ = stack
    user = f"v-{behaviour}"
    op_id = accepted(submit(server, "pet-generate", user, {"behaviour": behaviour}, species="dog"))
    record = wait_for(server, op_id, user, timeout=DEADLINE + 10)
    assert record["status"] == ("expired" if behaviour == "never" else "failed")
    assert record["error_code"] == code and record["tokens_charged"] == 0
    assert balance(server, user)["available"] == 500_000 and balance(server, user)["held"] == 0


def test_vendor_4xx_and_vendor_down_fail_at_once_for_free(stack):
    server, _, _ = stack
    rejected = submit(server, "pet-generate", "v-4xx", {"behaviour": "reject"}, species="cat")
    assert rejected.status_code == 502 and rejected.json()["code"] == "vendor_rejected"
    started = time.monotonic()
    down = submit(server, "pet-generate-down", "v-down", species="cat")
    assert down.status_code == 503 and down.json()["code"] == "vendor_unavailable"
    assert time.monotonic() - started < 10
    for user in ("v-4xx", "v-down"):
        assert balance(server, user)["available"] == 500_000
        ops = httpx.get(f"{server.url}/v1/operations", headers={"X-User-Id": user}).json()["items"]
        assert ops[0]["status"] == "failed"


def test_duplicate_stale_and_forged_callbacks_charge_at_most_once(stack):
    server, _, _ = stack
    twice = accepted(submit(server, "pet-generate", "v-twice", {"behaviour": "twice"}, species="cat"))
    assert wait_for(server, twice, "v-twice")["status"] == "succeeded"
    for behaviour in ("stale", "bad_signature"):  # refused (401): the operation expires, free
        op_id = accepted(submit(server, "pet-generate", f"v-{behaviour}", {"behaviour": behaviour}, species="cat"))
        assert wait_for(server, op_id, f"v-{behaviour}", timeout=DEADLINE + 10)["status"] == "expired"
        assert balance(server, f"v-{behaviour}")["available"] == 500_000
    time.sleep(1)
    assert balance(server, "v-twice")["available"] == 420_000


def post_callback(server, vendor: str, secret: str, callback: Callback) -> httpx.Response:
    body = msgspec.json.encode(callback)
    now = int(time.time())
    headers = {"webhook-id": f"msg_{now}_{callback.operation_id}", "webhook-timestamp": str(now),
               "webhook-signature": sign(secret, f"msg_{now}_{callback.operation_id}", now, body),
               "content-type": "application/json"}
    return httpx.post(f"{server.url}/v1/vendors/{vendor}/callbacks", content=body, headers=headers)


def test_misdirected_callback_and_disallowed_result_host(stack):
    server, _, _ = stack
    op_id = accepted(submit(server, "pet-generate", "v-host", {"behaviour": "never"}, species="cat"))
    good = Callback(operation_id=op_id, task_id="t", status="succeeded",
                    result=TaskResult(content_type="image/png", url="http://evil.example/cat.png"))
    # Another vendor, with its own valid signature, cannot settle this vendor's operation.
    assert post_callback(server, "other", OTHER_SECRET, good).status_code == 404
    assert wait_for(server, op_id, "v-host", timeout=1)["status"] == "running"
    # A result on a host that is not allowed is never fetched: the operation fails, free.
    response = post_callback(server, "sandbox", DEV_SECRET, good)
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    record = wait_for(server, op_id, "v-host")
    assert record["status"] == "failed" and record["error_code"] == "vendor_result_rejected"
    assert balance(server, "v-host")["available"] == 500_000
    # Unsigned: 401, nothing changes.
    unsigned = httpx.post(f"{server.url}/v1/vendors/sandbox/callbacks", content=msgspec.json.encode(good))
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "bad_signature"


def test_rotated_secrets_both_pass(stack):
    server, _, _ = stack
    for user, secret in (("v-old", DEV_SECRET), ("v-new", NEW_SECRET)):
        op_id = accepted(submit(server, "pet-generate", user, {"secret": secret}, species="rabbit"))
        assert wait_for(server, op_id, user)["status"] == "succeeded"


def test_polled_partner_cutout_and_restart_while_pending(stack):
    server, _, env = stack
    quick = accepted(submit(server, "cutout-partner", "v-poll"))
    record = wait_for(server, quick, "v-poll")
    assert record["status"] == "succeeded", record
    cut = httpx.get(f"{server.url}/v1/operations/{quick}/result", headers={"X-User-Id": "v-poll"})
    assert Image.open(io.BytesIO(cut.content)).mode == "RGBA"

    slow = accepted(submit(server, "cutout-partner", "v-restart", {"behaviour": "slow", "delay": 3}))
    silent = accepted(submit(server, "pet-generate", "v-restart", {"behaviour": "never"}, species="cat"))
    server.kill()  # SIGKILL while both are pending
    server.start()
    assert wait_for(server, slow, "v-restart")["status"] == "succeeded"
    assert wait_for(server, silent, "v-restart", timeout=DEADLINE + 10)["status"] == "expired"
    assert balance(server, "v-restart")["available"] == 500_000 - 31_000

    audit = subprocess.run([sys.executable, "-m", "app", "ledger", "audit"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr
