"""Cutout: pure inference vs rembg.remove() vs this service over HTTP, on 1 MP and 12 MP photos.

    .venv/bin/python bench/cutout.py [--repeat 5]

Prints medians (seconds) and the ratios the issue sets goals for: at 1 MP service <= 1.2 x pure
inference; at 12 MP service >= 3 x faster than rembg.remove() with the same mask (IoU >= 0.99).
"""

from __future__ import annotations

import argparse
import io

import httpx
import numpy as np
from PIL import Image

from common import ROOT, photo_jpeg, start_server, timed

from app.inference.families import u2net
from app.inference.providers import session_options

import onnxruntime as ort


def alpha(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))[:, :, 3]


def iou(a, b) -> float:
    a, b = a >= 128, b >= 128
    return float((a & b).sum() / max((a | b).sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from rembg import new_session, remove

    rembg_session = new_session("u2netp", providers=["CPUExecutionProvider"])
    session = ort.InferenceSession(str(ROOT / "models/u2netp.onnx"), session_options(0),
                                   providers=["CPUExecutionProvider"])
    server = start_server(TRIALZONE_MODELS="u2netp")
    client = httpx.Client(base_url=server.url, timeout=120)
    counter = iter(range(10**6))

    def service(data: bytes) -> bytes:
        response = client.post("/v1/operations/cutout", files={"image": ("p.jpg", data, "image/jpeg")},
                               headers={"X-User-Id": f"bench-{next(counter)}"})
        response.raise_for_status()
        return response.content

    rows = []
    try:
        for mp in (1, 12):
            data = photo_jpeg(mp)
            feeds = u2net.preprocess(Image.open(io.BytesIO(data)))
            service(data), remove(data, session=rembg_session)  # warm both paths once
            pure, _, _ = timed(lambda: session.run(None, feeds), args.repeat)
            theirs, _, theirs_png = timed(lambda: remove(data, session=rembg_session), args.repeat)
            ours, _, ours_png = timed(lambda: service(data), args.repeat)
            rows.append((mp, pure, theirs, ours, iou(alpha(ours_png), alpha(theirs_png))))
    finally:
        client.close()
        server.stop()

    print(f"median of {args.repeat}, seconds (u2netp, CPU)")
    print(f"{'photo':>6} {'session.run':>12} {'rembg.remove':>13} {'service/HTTP':>13} "
          f"{'svc/pure':>9} {'rembg/svc':>10} {'IoU':>7}")
    for mp, pure, theirs, ours, overlap in rows:
        print(f"{mp:>4}MP {pure:>12.3f} {theirs:>13.3f} {ours:>13.3f} {ours / pure:>9.2f} "
              f"{theirs / ours:>10.2f} {overlap:>7.4f}")


if __name__ == "__main__":
    main()
