"""A model's declared batch dimension made symbolic, so concurrent requests can share one GPU run.

The U^2-Net exports that rembg ships declare ``input.1`` and every output as ``[1, ...]``, but the
graph inside never depends on that 1 (convolutions, pooling, resizes by scale): with the
declared first dimension of the graph's inputs and outputs rewritten to a symbolic ``N``, a
stack of requests runs in one ``session.run`` and each row equals the single run
(tests/test_batch_dim.py). The rewrite happens in memory when the session is created, so the
weight file and its sha256 stay those of the registry package. A family opts in
(``BATCH_AGNOSTIC``) only once that equality was checked for it.
"""

from __future__ import annotations

from pathlib import Path

SYMBOL = "N"


def with_dynamic_batch(path: Path | str) -> bytes:
    """The serialized model at ``path`` with a symbolic first dimension on inputs and outputs."""
    import onnx  # only GPU hosts need it (the `gpu` extra): imported where it is used

    model = onnx.load(str(path))
    weights = {tensor.name for tensor in model.graph.initializer}  # old exports list them as inputs
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = SYMBOL
    # Shapes inferred at export time pin intermediate tensors to batch 1: let ORT infer them anew.
    del model.graph.value_info[:]
    return model.SerializeToString()
