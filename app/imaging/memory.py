"""glibc malloc settings for a process that handles big, short-lived pixel buffers.

By default glibc raises its mmap threshold to the size of the largest block freed so far (up to
32 MB), after which decoded photos, mattes and PNG strips come from per-thread heap arenas that
keep the memory once it is freed; with one arena per busy thread (up to 8 per core) a server's
resident set climbed 40-90 MB over its first hundred cutouts, by a different amount every run.
A fixed 256 KB threshold sends every pixel buffer to mmap (returned to the system when freed)
and two arenas suffice for our few threads: the soak then stays flat after ~20 MB (measured:
docs/performance.md). An operator's own MALLOC_MMAP_THRESHOLD_ / MALLOC_ARENA_MAX win.

The price is page faults: every mmapped buffer faults in anew (~3 us a page on this project's
VMs, 0.75 ms a megabyte). Keeping 1 MP buffers on the heap (MALLOC_MMAP_THRESHOLD_=4194304
with MALLOC_TRIM_THRESHOLD_=33554432, so freed ones are not handed back either) made a 1 MP
cutout 0.969x as long (40 paired requests; 0.964x in another 21 rounds, and 12 MP 0.93x), and
its 2,000-cutout soaks of 0.25 MP photos stayed within the goal (+23 and +28 MiB, against +16
and +18 with this default). It is not the default because photos of mixed sizes (0.25 to
12 MP in turn, 800 cutouts) left it holding +137 to +196 MiB of freed heap, against +16 to +76
MiB (transient) with this default: phones send all sizes (docs/performance.md). A host with
memory to spare may set those two variables.

Pillow allocates images itself, in blocks of at most 16 MB from a pool of freed blocks that it
keeps none of by default. Two changes (unless an operator set PILLOW_BLOCK_SIZE or
PILLOW_BLOCKS_MAX): blocks of up to 256 MB, so any photo we accept (40 MP, 160 MB of 4-byte
pixels) is one block, which app/imaging/pixels.py needs to read it without a copy; and a pool of
8 freed blocks, so a photo decodes into the memory the previous one used instead of into a fresh
mapping faulted in page by page (a 1 MP JPEG decoded in 1.9-2.0 ms instead of 3.5-3.6). Pillow
takes the most recently freed block and resizes it to the new picture (shrinking in place), so
what the pool keeps follows the photos being served, and never exceeds 8 blocks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from PIL import Image

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 2
PILLOW_BLOCK_SIZE = 256 << 20
PILLOW_BLOCKS_MAX = 8


def tune_allocator() -> bool:
    """Apply the settings above once per process; False where there is no glibc (malloc untouched)."""
    if "PILLOW_BLOCK_SIZE" not in os.environ:
        Image.core.set_block_size(PILLOW_BLOCK_SIZE)
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(PILLOW_BLOCKS_MAX)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    done = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done &= bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if "MALLOC_ARENA_MAX" not in os.environ:
        done &= bool(mallopt(M_ARENA_MAX, ARENA_MAX))
    if not done:
        log.info("malloc tuning not applied (not glibc?)")
    return done
