"""A decoded photo's pixels as a NumPy array without copying them out of Pillow.

``np.asarray(image)`` copies every pixel (Pillow packs its 4-byte RGB pixels into 3 bytes on
the way: ~2.7 ms at 1 MP, ~35 ms at 12 MP, with the page faults of a fresh buffer), and a
cutout then spends that copy on a core the model could use. Pillow (11.2 and later) exports an
image through the Arrow C data interface instead, zero-copy: the array here is a read-only view
of Pillow's own memory, four bytes per pixel (R, G, B, then the alpha of an RGBA image, or a
padding byte of an RGB one whose value means nothing). The view holds the export, and the export holds
the image's memory, so the array stays valid after the image is gone.

Arrow wants an image in one block of memory: ``app.imaging.memory.tune_allocator`` (run at
start-up) sets Pillow's block size so that any photo we accept is one. Where an export is not
possible all the same (a process that skipped it), the pixels are copied as before.
"""

from __future__ import annotations

import ctypes

import numpy as np
from PIL import Image


class _ArrowSchema(ctypes.Structure):
    """``struct ArrowSchema`` of the Arrow C data interface (a stable ABI)."""


_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_void_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowSchema))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class _ArrowArray(ctypes.Structure):
    """``struct ArrowArray`` of the Arrow C data interface."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


class _Export:
    """Keeps Pillow's export (a capsule that releases it when collected) as the array's base."""

    def __init__(self, capsule, address: int, shape: tuple[int, ...]):
        self.capsule = capsule
        self.__array_interface__ = {"shape": shape, "typestr": "|u1", "data": (address, True), "version": 3}


def pixels(image: Image.Image) -> np.ndarray:
    """An RGB or RGBA image's pixels as a read-only uint8 array of shape (height, width, 4)."""
    if image.mode not in ("RGB", "RGBA"):
        raise ValueError(f"pixels() takes RGB or RGBA, not {image.mode}")
    try:
        return np.asarray(_exported(image))
    except (AttributeError, ValueError):  # an old Pillow, an image in several blocks, another layout
        return np.asarray(image.convert("RGBA") if image.mode == "RGB" else image)


def _exported(image: Image.Image) -> _Export:
    """The export's bytes, once its layout is checked to be what Pillow documents: a
    fixed_size_list<uint8>[4] of width x height pixels, one child of contiguous bytes."""
    schema_capsule, capsule = image.__arrow_c_array__()
    schema = _ArrowSchema.from_address(_capsule_pointer(schema_capsule, b"arrow_schema"))
    array = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
    pixels_count = image.width * image.height
    if (schema.format != b"+w:4" or schema.n_children != 1 or schema.children[0].contents.format != b"C"
            or array.n_children != 1 or array.length != pixels_count or array.offset):
        raise ValueError("not the Arrow layout Pillow documents")
    values = array.children[0].contents
    if values.n_buffers != 2 or values.length != 4 * pixels_count or values.offset or not values.buffers[1]:
        raise ValueError("not the Arrow layout Pillow documents")
    return _Export(capsule, values.buffers[1], (image.height, image.width, 4))
