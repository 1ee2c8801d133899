"""Per-family pre/post-processing: small pure functions over arrays, one module per family.

A cutout family module exposes ``preprocess(image) -> feeds``, ``postprocess(outputs, size) -> mask``
(a Pillow image) and ``postprocess_array`` (the same matte as a uint8 array); adding a model of a known family is a manifest entry, not code.
Optional: ``BATCH_AGNOSTIC`` (its graphs may be given a symbolic batch dimension:
app/inference/batch_dim.py).
"""

from app.inference.families import isnet, u2net

CUTOUT_FAMILIES = {"u2net": u2net, "isnet": isnet}
