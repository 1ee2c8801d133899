"""The vendor pieces against the sandbox vendor running as a real process on loopback: signatures,
dispatch with retries, signed callbacks into a real receiver, polling, result fetching limits,
and the sandbox's real pictures."""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import msgspec
import numpy as np
import pytest
from PIL import Image

from app.vendors.client import VendorClient, VendorRejected, VendorUnavailable
from app.vendors.config import VendorConfig, VendorConfigError, load_vendors
from app.vendors.protocol import Callback, TaskResult, TaskStatus
from app.vendors.results import ResultRejected, fetch_result, obtain_result
from app.vendors.signatures import BadSignature, sign, verify
from tests.live import MODELS, ROOT, free_port

SECRET = "whsec_" + base64.b64encode(b"trialzone-test-secret-one").decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"trialzone-test-secret-two").decode()
API_KEY = "test-api-key"
PHOTO = (ROOT / "assets" / "samples" / "chelsea.jpg").read_bytes()


# --- a real sandbox process and a real callback receiver on loopback ---------------------------

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("sandbox") / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.vendors.sandbox", "--port", str(port), "--secret", SECRET,
         "--api-key", API_KEY, "--models-dir", MODELS],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "the sandbox exited at start"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


class Receiver:
    """Our side of a callback, as small as it gets: records every POST; also serves the photo
    (an input URL) and a few answers for the result-fetching tests."""

    def __init__(self):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def do_GET(self):
                port = self.server.server_address[1]
                if self.path == "/photo":
                    self._send(200, PHOTO, {"Content-Type": "image/jpeg"})
                elif self.path == "/big":
                    self._send(200, b"x" * 100_000, {"Content-Type": "image/png"})
                elif self.path == "/elsewhere":  # the same server, by another host name
                    self._send(302, b"", {"Location": f"http://localhost:{port}/photo"})
                elif self.path == "/same-host":
                    self._send(302, b"", {"Location": "/photo"})
                else:
                    self._send(404, b"", {})

            def _send(self, status, body, headers):
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait(self, path: str, count: int = 1, timeout: float = 15) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while True:
            got = [(h, b) for p, h, b in self.requests if p == path]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


def config(base_url: str, **overrides) -> VendorConfig:
    return VendorConfig(**{"name": "sandbox", "base_url": base_url, "api_key": API_KEY,
                           "features": ["cutout", "removal", "pet-generate"], "callback_secrets": [SECRET],
                           "allowed_result_hosts": ["127.0.0.1"], **overrides})


def client(base_url: str, http: httpx.AsyncClient, **overrides) -> VendorClient:
    return VendorClient(config(base_url, **overrides), http, backoff=0.05, max_backoff=0.2)


def op_id() -> str:
    return uuid.uuid4().hex


async def dispatch(vendor: VendorClient, feature: str, params: dict, *, callback_url=None, input_url=None,
                   input_bytes=None, operation_id=None):
    return await vendor.dispatch(operation_id=operation_id or op_id(), feature=feature, input_url=input_url,
                                 input_bytes=input_bytes, params=params, callback_url=callback_url)


async def until_done(vendor: VendorClient, task_id: str, timeout: float = 20) -> TaskStatus:
    deadline = time.monotonic() + timeout
    while (status := await vendor.poll(task_id)).status == "pending":
        assert time.monotonic() < deadline, "the task stayed pending"
        await asyncio.sleep(0.05)
    return status


def image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


# --- signatures ---------------------------------------------------------------------------------

def headers_for(secret: str, body: bytes, timestamp: int, webhook_id: str = "msg_1") -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook_id, timestamp, body)}


def test_signature_matches_the_documented_examples():
    """The two examples in docs/vendor-protocol.md, byte for byte."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') \
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    doc = (ROOT / "docs" / "vendor-protocol.md").read_text()
    body = next(line.split(None, 1)[1] for line in doc.splitlines() if line.startswith('body              {"operation'))
    assert len(body.encode()) == 187
    expected = "v1,OwetDhMmhHlI+nKg8qlTYE5pDdDY5Sb7qLC6Qsr80fU="
    assert sign(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1735689600, body.encode()) == expected
    assert expected in doc
    assert msgspec.json.decode(body, type=Callback).status == "succeeded"


def test_verify_accepts_any_configured_secret_and_refuses_the_rest():
    body, now = b'{"a":1}', 1_700_000_000
    assert verify([SECRET], headers_for(SECRET, body, now, "msg_x"), body, now) == "msg_x"
    for signer in (SECRET, NEW_SECRET):  # rotation: old and new both pass while both are configured
        assert verify([NEW_SECRET, SECRET], headers_for(signer, body, now), body, now) == "msg_1"
    with pytest.raises(BadSignature) as exc:
        verify([SECRET], headers_for(NEW_SECRET, body, now), body, now)
    assert (exc.value.code, exc.value.status) == ("bad_signature", 401)
    upper = {k.title(): v for k, v in headers_for(SECRET, body, now).items()}
    assert verify([SECRET], upper, body, now) == "msg_1"  # header names in any case


@pytest.mark.parametrize("skew", [-360, 360])
def test_verify_refuses_a_timestamp_six_minutes_away(skew):
    body, now = b"{}", 1_700_000_000
    assert verify([SECRET], headers_for(SECRET, body, now + 299), body, now)
    with pytest.raises(BadSignature, match="300 s"):
        verify([SECRET], headers_for(SECRET, body, now + skew), body, now)


def test_verify_refuses_tampered_bodies_missing_headers_and_garbage():
    body, now = b'{"status":"failed"}', 1_700_000_000
    good = headers_for(SECRET, body, now)
    with pytest.raises(BadSignature):
        verify([SECRET], good, b'{"status":"succeeded"}', now)
    for name in good:
        with pytest.raises(BadSignature, match="required"):
            verify([SECRET], {k: v for k, v in good.items() if k != name}, body, now)
    for signature in ("v1", "v1,***", "v2," + good["webhook-signature"][3:], "nonsense"):
        with pytest.raises(BadSignature):
            verify([SECRET], good | {"webhook-signature": signature}, body, now)
    with pytest.raises(BadSignature):
        verify([SECRET], good | {"webhook-timestamp": "1.7e9"}, body, now)
    several = good | {"webhook-signature": "v1,AAAA " + good["webhook-signature"]}
    assert verify([SECRET], several, body, now) == "msg_1"


# --- configuration ------------------------------------------------------------------------------

def test_load_vendors(tmp_path, monkeypatch):
    assert load_vendors(None) == {}
    path = tmp_path / "features.toml"
    path.write_text(f"""
[features.pet-generate]
runner = "vendor"
vendor = "meitu"

[vendors.meitu]
base_url = "https://api.partner.example/"
api_key = "env:MEITU_KEY"
features = ["pet-generate"]
mode = "poll"
allowed_result_hosts = ["Results.Partner.Example"]
callback_secrets = ["{SECRET}", "env:MEITU_OLD_SECRET"]
""")
    monkeypatch.setenv("MEITU_KEY", "k-123")
    monkeypatch.setenv("MEITU_OLD_SECRET", NEW_SECRET)
    meitu = load_vendors(str(path))["meitu"]
    assert (meitu.name, meitu.base_url, meitu.api_key, meitu.mode) == ("meitu", "https://api.partner.example",
                                                                        "k-123", "poll")
    assert meitu.callback_secrets == [SECRET, NEW_SECRET] and meitu.allowed_result_hosts == ["results.partner.example"]
    assert (meitu.request_timeout, meitu.deadline, meitu.max_result_bytes) == (10, 300, 20 * 1024 * 1024)
    delays = [meitu.poll_delay(n) for n in range(10)]
    assert delays[0] < delays[2] and max(delays) <= meitu.poll_max_interval * 1.2

    base = {"base_url": '"https://v.example"', "api_key": '"k"', "mode": '"poll"'}
    for field, value, reason in [("mode", '"callback"', "at least one callback_secrets"),
                                 ("callback_secrets", '["not base64!"]', "whsec_"),
                                 ("colour", '"red"', "unknown field"),
                                 ("api_key", '"env:NOT_SET_ANYWHERE"', "NOT_SET_ANYWHERE"),
                                 ("base_url", '"ftp://v.example"', "http"),
                                 ("deadline", "0", "positive")]:
        lines = [f"{k} = {v}" for k, v in (base | {field: value}).items()]
        path.write_text("[vendors.v]\n" + "\n".join(lines) + "\n")
        with pytest.raises(VendorConfigError, match=rf"\[vendors\.v\].*{reason}"):
            load_vendors(str(path))


# --- dispatch -----------------------------------------------------------------------------------

async def test_dispatch_is_acknowledged_once_per_operation(sandbox, http):
    vendor = client(sandbox, http, mode="poll")
    operation = op_id()
    first = await dispatch(vendor, "pet-generate", {"species": "cat"}, operation_id=operation)
    assert first.status == "pending" and first.task_id.startswith("task_")
    again = await dispatch(vendor, "pet-generate", {"species": "cat"}, operation_id=operation)
    assert again.task_id == first.task_id  # the Idempotency-Key: one task per operation


async def test_a_4xx_is_a_rejection_and_not_retried(sandbox, http):
    vendor = client(sandbox, http)
    with pytest.raises(VendorRejected) as exc:
        await dispatch(vendor, "pet-generate", {"sandbox": {"behaviour": "reject"}})
    assert (exc.value.code, exc.value.status, exc.value.extra["vendor_status"]) == ("vendor_rejected", 502, 422)
    assert "rejected" in exc.value.detail
    with pytest.raises(VendorRejected, match="invalid_option"):
        await dispatch(vendor, "pet-generate", {"species": "dragon"})
    with pytest.raises(VendorRejected) as exc:
        await dispatch(client(sandbox, http, api_key="wrong"), "pet-generate", {})
    assert exc.value.extra["vendor_status"] == 401


async def test_5xx_is_retried_with_backoff_then_succeeds_or_gives_up(sandbox, http):
    vendor = client(sandbox, http)
    ack = await dispatch(vendor, "pet-generate", {"sandbox": {"behaviour": "flaky", "fail_first": 3}})
    assert ack.task_id  # three 503s, then the fourth attempt is taken
    with pytest.raises(VendorUnavailable, match="4 attempt.*HTTP 503") as exc:
        await dispatch(vendor, "pet-generate", {"sandbox": {"behaviour": "flaky", "fail_first": 10}})
    assert (exc.value.code, exc.value.status) == ("vendor_unavailable", 503)


async def test_vendor_down_or_silent_is_unavailable_within_a_bounded_time(http):
    started = time.monotonic()
    with pytest.raises(VendorUnavailable, match="ConnectError"):
        await dispatch(client(f"http://127.0.0.1:{free_port()}", http), "pet-generate", {})
    assert time.monotonic() - started < 3
    with socket.socket() as silent:  # accepts connections (the backlog does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(VendorUnavailable, match="Timeout"):
            await dispatch(client(f"http://127.0.0.1:{silent.getsockname()[1]}", http, request_timeout=0.3),
                           "pet-generate", {})
        assert time.monotonic() - started < 4 * 0.3 + 2


# --- callbacks ----------------------------------------------------------------------------------

async def test_the_callback_arrives_signed_with_a_real_picture(sandbox, receiver, http):
    vendor = client(sandbox, http)
    operation = op_id()
    ack = await dispatch(vendor, "pet-generate", {"species": "dog", "colour": "golden"},
                         callback_url=receiver.url + f"/cb/{operation}", operation_id=operation)
    [(headers, body)] = await receiver.wait(f"/cb/{operation}")
    assert verify(vendor.config.callback_secrets, headers, body, time.time()).startswith("msg_")
    callback = msgspec.json.decode(body, type=Callback)
    assert (callback.operation_id, callback.task_id, callback.status) == (operation, ack.task_id, "succeeded")
    data, content_type = await obtain_result(callback.result, vendor.config, http=http, max_pixels=40_000_000)
    assert content_type == "image/png" and image(data).size == (512, 512)


async def test_failure_callback_carries_the_vendors_error(sandbox, receiver, http):
    path = f"/cb/{op_id()}"
    await dispatch(client(sandbox, http), "pet-generate", {"sandbox": {"behaviour": "fail"}},
                   callback_url=receiver.url + path)
    [(headers, body)] = await receiver.wait(path)
    verify([SECRET], headers, body, time.time())
    callback = msgspec.json.decode(body, type=Callback)
    assert callback.status == "failed" and callback.error.code == "sandbox_failure" and callback.result is None


async def test_twice_delivers_the_same_webhook_id_twice(sandbox, receiver, http):
    path = f"/cb/{op_id()}"
    await dispatch(client(sandbox, http), "pet-generate", {"sandbox": {"behaviour": "twice"}},
                   callback_url=receiver.url + path)
    deliveries = await receiver.wait(path, count=2)
    ids = [verify([SECRET], headers, body, time.time()) for headers, body in deliveries]
    assert len(ids) == 2 and ids[0] == ids[1]


@pytest.mark.parametrize("behaviour, reason", [("bad_signature", "no signature matches"), ("stale", "300 s")])
async def test_wrongly_signed_or_stale_callbacks_fail_verification(sandbox, receiver, http, behaviour, reason):
    path = f"/cb/{op_id()}"
    await dispatch(client(sandbox, http), "pet-generate", {"sandbox": {"behaviour": behaviour}},
                   callback_url=receiver.url + path)
    [(headers, body), *_] = await receiver.wait(path)
    with pytest.raises(BadSignature, match=reason):
        verify([SECRET, NEW_SECRET], headers, body, time.time())


async def test_a_callback_signed_with_the_new_secret_passes_during_rotation(sandbox, receiver, http):
    path = f"/cb/{op_id()}"
    await dispatch(client(sandbox, http), "pet-generate", {"sandbox": {"secret": NEW_SECRET}},
                   callback_url=receiver.url + path)
    [(headers, body)] = await receiver.wait(path)
    assert verify([NEW_SECRET, SECRET], headers, body, time.time())
    with pytest.raises(BadSignature):
        verify([SECRET], headers, body, time.time())


# --- polling and results ------------------------------------------------------------------------

async def test_poll_mode_cutout_from_an_input_url_with_the_result_at_a_url(sandbox, receiver, http):
    vendor = client(sandbox, http, mode="poll")
    ack = await dispatch(vendor, "cutout", {"format": "png", "sandbox": {"result": "url", "delay": 0.3}},
                         input_url=receiver.url + "/photo")
    assert (await vendor.poll(ack.task_id)).status == "pending"
    status = await until_done(vendor, ack.task_id)
    assert status.status == "succeeded" and status.result.url.startswith(sandbox + "/v1/results/")
    data, content_type = await obtain_result(status.result, vendor.config, http=http, max_pixels=40_000_000)
    cutout = image(data)
    assert content_type == "image/png" and cutout.mode == "RGBA" and cutout.size == (451, 300)
    alpha = np.asarray(cutout)[:, :, 3]
    assert (alpha < 20).mean() > 0.1 and (alpha > 200).mean() > 0.1, ((alpha < 20).mean(), (alpha > 200).mean())


async def test_poll_mode_removal_with_inline_bytes(sandbox, http):
    vendor = client(sandbox, http, mode="poll")
    ack = await dispatch(vendor, "removal", {"boxes": [[140, 60, 300, 220]]}, input_bytes=PHOTO)
    status = await until_done(vendor, ack.task_id)
    data, _ = await obtain_result(status.result, vendor.config, http=http, max_pixels=40_000_000)
    before = np.asarray(image(PHOTO).convert("RGB"), dtype=np.int16)
    after = np.asarray(image(data).convert("RGB"), dtype=np.int16)
    assert after.shape == before.shape
    assert np.abs(after - before)[100:180, 180:260].mean() > 10  # the cat's face is gone
    assert np.abs(after - before)[250:, :100].mean() < 3  # far from the box, nothing changed


async def test_never_stays_pending_and_an_unknown_task_is_rejected(sandbox, http):
    vendor = client(sandbox, http, mode="poll")
    ack = await dispatch(vendor, "pet-generate", {"sandbox": {"behaviour": "never"}})
    await asyncio.sleep(0.3)
    assert (await vendor.poll(ack.task_id)).status == "pending"
    with pytest.raises(VendorRejected) as exc:
        await vendor.poll("task_does_not_exist")
    assert exc.value.extra["vendor_status"] == 404


async def test_fetch_result_only_from_allowed_hosts_within_limits(receiver, http):
    fetch = dict(max_bytes=1_000_000, timeout=5, http=http)
    assert await fetch_result(receiver.url + "/photo", allowed_hosts=["127.0.0.1"], **fetch) == PHOTO
    assert await fetch_result(receiver.url + "/same-host", allowed_hosts=["127.0.0.1"], **fetch) == PHOTO
    refused = {
        receiver.url + "/photo": ["results.partner.example"],  # host not allowed
        receiver.url + "/elsewhere": ["127.0.0.1"],  # a redirect to a host not allowed
        "file:///etc/passwd": ["127.0.0.1", ""],
        receiver.url.replace("http://", "http://user:pw@") + "/photo": ["127.0.0.1"],
        receiver.url + "/missing": ["127.0.0.1"],
    }
    for url, hosts in refused.items():
        with pytest.raises(ResultRejected) as exc:
            await fetch_result(url, allowed_hosts=hosts, **fetch)
        assert exc.value.code == "vendor_result_rejected"
    with pytest.raises(ResultRejected, match="limit"):
        await fetch_result(receiver.url + "/big", allowed_hosts=["127.0.0.1"], **fetch | {"max_bytes": 50_000})


async def test_fetch_result_gives_up_at_its_time_limit(http):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(ResultRejected):
            await fetch_result(f"http://127.0.0.1:{silent.getsockname()[1]}/r", allowed_hosts=["127.0.0.1"],
                               max_bytes=1000, timeout=0.3, http=http)
        assert time.monotonic() - started < 2


async def test_a_result_must_be_a_whole_image_within_the_limits(http):
    vendor = config("http://127.0.0.1:1", max_result_bytes=len(PHOTO) + 10)
    inline = lambda data: TaskResult(content_type="image/png", data=base64.b64encode(data).decode())  # noqa: E731
    assert await obtain_result(inline(PHOTO), vendor, http=http, max_pixels=10**6) == (PHOTO, "image/jpeg")
    for data, reason in [(b"<html>not a picture</html>", "not a usable image"), (PHOTO[:20_000], "truncated"),
                         (PHOTO + b"x" * 100, "larger")]:
        with pytest.raises(ResultRejected, match=reason):
            await obtain_result(inline(data), vendor, http=http, max_pixels=10**6)
    with pytest.raises(ResultRejected, match="pixels|MP"):
        await obtain_result(inline(PHOTO), vendor, http=http, max_pixels=1000)
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(ResultRejected, match="GIF"):
        await obtain_result(inline(gif.getvalue()), vendor, http=http, max_pixels=10**6)


# --- the sandbox's pictures ---------------------------------------------------------------------

async def test_pet_generate_draws_what_the_description_asks_for(sandbox, http):
    vendor = client(sandbox, http, mode="poll")

    async def draw(params: dict) -> np.ndarray:
        ack = await dispatch(vendor, "pet-generate", params | {"size": 256})
        status = await until_done(vendor, ack.task_id)
        data, _ = await obtain_result(status.result, vendor.config, http=http, max_pixels=10**6)
        return np.asarray(image(data).convert("RGB"), dtype=np.int16)

    ginger_cat, black_cat, ginger_dog, ginger_cat_sketch, described = await asyncio.gather(
        draw({"species": "cat", "colour": "ginger"}), draw({"species": "cat", "colour": "black"}),
        draw({"species": "dog", "colour": "ginger"}), draw({"species": "cat", "colour": "ginger", "style": "sketch"}),
        draw({"description": "a black kitten with green eyes"}),
    )

    def share_near(picture: np.ndarray, colour: tuple[int, int, int]) -> float:
        return float((np.abs(picture - np.array(colour)).sum(axis=2) < 40).mean())

    assert share_near(ginger_cat, (222, 120, 46)) > 0.15 and share_near(black_cat, (222, 120, 46)) < 0.01
    assert share_near(black_cat, (38, 36, 40)) > 0.15
    for other in (black_cat, ginger_dog, ginger_cat_sketch):
        assert np.abs(ginger_cat - other).mean() > 5  # colour, species and style each change the picture
    assert np.array_equal(described, black_cat)  # the same attributes, read from the words
