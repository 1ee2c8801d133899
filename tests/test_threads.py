"""Process-wide thread settings that the app applies when it is imported."""

import json
import os
import subprocess
import sys

import pytest

# A parallel OpenCV job (a matte scaled up to photo size), then the process's CPU time while it
# only sleeps: what OpenCV's idle worker threads burn.
_PROBE = """
import json, os, sys, time
if sys.argv[1] == "app":
    import app  # noqa: F401
else:
    os.environ["OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER"] = sys.argv[1]
import cv2, numpy as np
matte = np.zeros((320, 320), np.uint8)
idle = []
for _ in range(15):
    cv2.resize(matte, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    started = time.process_time()
    time.sleep(0.03)
    idle.append(time.process_time() - started)
print(json.dumps({"idle_ms": sorted(idle)[len(idle) // 2] * 1000, "threads": cv2.getNumThreads(),
                  "setting": os.environ.get("OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER")}))
"""


def _probe(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER"}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


def test_opencv_workers_sleep_after_a_job_instead_of_spinning():
    ours = _probe("app")
    if ours["threads"] < 2:
        pytest.skip("OpenCV runs single-threaded here: no workers to spin")
    spinning = _probe("2000")  # OpenCV's own default
    assert ours["setting"] == "0"
    assert ours["idle_ms"] < spinning["idle_ms"] / 2, (ours, spinning)


def test_an_operators_own_opencv_setting_wins():
    env = dict(os.environ, OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER="500")
    out = subprocess.run([sys.executable, "-c", "import app, os; print(os.environ['OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER'])"],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "500"
