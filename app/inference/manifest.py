"""The model manifest (models/manifest.toml): what each weight file is and where it comes from."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

MANIFEST_NAME = "manifest.toml"


class Source(msgspec.Struct, frozen=True):
    kind: Literal["pypi", "npm", "local"]
    package: str = ""
    path: str = ""
    python_version: str | None = None
    chunks_key: str | None = None


class ModelSpec(msgspec.Struct, frozen=True):
    name: str
    file: str
    sha256: str
    task: str
    family: str
    source: Source
    bytes: int = 0
    input_size: int = 0
    normalisation: str = ""
    license: str = ""
    default: bool = False


def load_manifest(models_dir: str | Path) -> dict[str, ModelSpec]:
    path = Path(models_dir) / MANIFEST_NAME
    data = tomllib.loads(path.read_text())
    return {
        name: msgspec.convert({"name": name, **entry}, ModelSpec)
        for name, entry in data.get("models", {}).items()
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_state(spec: ModelSpec, models_dir: str | Path) -> Literal["installed", "missing", "corrupt"]:
    """Whether the weight file is present and matches its sha256."""
    path = Path(models_dir) / spec.file
    if not path.is_file():
        return "missing"
    return "installed" if sha256_of(path) == spec.sha256 else "corrupt"
