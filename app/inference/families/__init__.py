"""Per-family pre/post-processing: small pure functions over arrays, one module per family.

A family module exposes ``preprocess(image) -> feeds`` and ``postprocess(outputs, size) -> mask``
for cutout models; adding a model of a known family is a manifest entry, not code.
"""

from app.inference.families import isnet, u2net

CUTOUT_FAMILIES = {"u2net": u2net, "isnet": isnet}
