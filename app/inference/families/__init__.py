"""Per-family pre/post-processing: small pure functions over arrays, one module per family.

A cutout family module exposes ``preprocess(image) -> feeds``, ``postprocess(outputs, size) -> mask``
(a Pillow image) and ``postprocess_array`` (the same matte as a uint8 array); adding a model of a known family is a manifest entry, not code.
Both read only the model's first output (the fused matte): runners ask ORT for that one alone
(``matte_output``), so the side outputs are not copied out of its arena on every run.
Optional: ``BATCH_AGNOSTIC`` (its graphs may be given a symbolic batch dimension:
app/inference/batch_dim.py).
"""

from app.inference.families import isnet, u2net

CUTOUT_FAMILIES = {"u2net": u2net, "isnet": isnet}


def matte_output(output_names: list[str]) -> list[str]:
    """The outputs a cutout family reads: the first. u2netp has 6 more side outputs (2.4 MB, ~1.5 ms
    to copy out after each run at 1 MP); isnet 11 more, with its 64 x 512 x 512 activations (~110 MB)."""
    return output_names[:1]
