"""Trial zone backend: photo features paid for with tokens."""

import os

# OpenCV's worker threads spin after every parallel job (about a thousand sched_yield calls, ~0.5
# ms of CPU when idle, and a context switch per yield while other threads want the core), just
# when the PNG strips, the result write and the next request's decode run. With 0 a worker sleeps
# at once and is woken in microseconds (docs/performance.md, seventh pass). OpenCV reads this when
# it loads, so it is set here, before any module imports cv2; an operator's own value wins.
os.environ.setdefault("OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER", "0")
