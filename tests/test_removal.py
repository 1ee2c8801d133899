"""Smart removal at the runner level: a red mark painted on real photos is erased, nothing else
changes, every bad area is refused in ``prepare`` (before any token is held) with its own code,
and the ONNX inpainting path is wired through the model registry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest
from onnx import TensorProto, helper, save
from PIL import Image
from skimage import data

from app.errors import DomainError
from app.features.catalogue import Catalogue
from app.imaging import areas, inpaint
from app.inference.families import inpaint as learned
from app.inference.fetch import FetchError, fetch_models
from app.inference.manifest import load_manifest, sha256_of
from app.inference.registry import ModelRegistry
from app.runners.base import Upload
from app.runners.removal import RemovalRunner
from app.settings import Settings

RED = (255, 0, 0)
REPO_MODELS = Path(__file__).resolve().parents[1] / "models"
FEATURE = Catalogue.load().get("removal")

# (photo, centre, radius): discs on a plain wall (astronaut) and on fur (chelsea)
DISCS = {"astronaut": ((335, 105), 26), "chelsea": ((235, 105), 22)}


def photo_of(name: str) -> np.ndarray:
    return getattr(data, name)().copy()


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def upload(blob: bytes) -> Upload:
    return Upload(filename="f.png", content_type="image/png", data=blob)


def disc(shape, centre, radius) -> np.ndarray:
    canvas = np.zeros(shape[:2], np.uint8)
    cv2.circle(canvas, centre, radius, 1, thickness=-1)
    return canvas.view(bool)


async def remove(photo: np.ndarray, runner: RemovalRunner | None = None, feature=FEATURE, **fields):
    runner = runner or RemovalRunner(None, Settings())
    form = {"image": upload(png(photo)), **fields}
    result = await runner.run(runner.prepare(form, feature))
    assert result.content_type == "image/png"
    return np.asarray(Image.open(io.BytesIO(result.body)))


def used_area(photo: np.ndarray, kind: str, blob: bytes, dilate: bool = True) -> np.ndarray:
    """The grown area the runner fills, recomputed through the public parser."""
    size = photo.shape[1::-1]
    return areas.parse_area(kind, blob, size, max_share=0.5, dilate=dilate, max_bytes=1 << 24, max_pixels=1 << 26)


def assert_removed(painted: np.ndarray, out: np.ndarray, drawn: np.ndarray, used: np.ndarray) -> None:
    """No strong red left, the area blends with the ring around it, nothing outside it changed."""
    assert out.shape == painted.shape and out.dtype == np.uint8
    assert np.array_equal(out[~used], painted[~used]), "a pixel outside the area changed"
    red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)
    assert not red[used].any(), f"{int(red[used].sum())} strongly red pixels remain"
    ring = areas.grow(used, 10) & ~used
    gap = np.abs(out[drawn].mean(axis=0) - painted[ring].mean(axis=0))
    assert (gap < 25).all(), f"area mean differs from the ring around it by {gap}"


@pytest.mark.parametrize("name,method", [("astronaut", "telea"), ("chelsea", "telea"), ("chelsea", "ns")])
async def test_mask_removes_red_disc(name, method):
    photo = photo_of(name)
    centre, radius = DISCS[name]
    drawn = disc(photo.shape, centre, radius)
    photo[drawn] = RED
    mask = png(drawn.astype(np.uint8) * 255)
    out = await remove(photo, mask=upload(mask), method=method)
    used = used_area(photo, "mask", mask)
    assert used.sum() > drawn.sum()  # grown by default
    assert not (used & ~areas.grow(drawn, areas.dilation_radius(photo.shape[1::-1]) + 1)).any()
    assert_removed(photo, out, drawn, used)


@pytest.mark.parametrize("scale", [0.5, 2.0])
async def test_mask_of_another_size_is_scaled_to_the_photo(scale):
    photo = photo_of("astronaut")
    centre, radius = DISCS["astronaut"]
    drawn = disc(photo.shape, centre, radius)
    photo[drawn] = RED
    small = disc((int(512 * scale), int(512 * scale)), tuple(int(c * scale) for c in centre), int(radius * scale) + 1)
    mask = png(small.astype(np.uint8) * 255)
    out = await remove(photo, mask=upload(mask))
    assert_removed(photo, out, drawn, used_area(photo, "mask", mask))


async def test_without_dilate_only_the_given_area_changes():
    photo = photo_of("chelsea")
    centre, radius = DISCS["chelsea"]
    drawn = disc(photo.shape, centre, radius)
    photo[drawn] = RED
    out = await remove(photo, mask=upload(png(drawn.astype(np.uint8) * 255)), dilate="false")
    assert_removed(photo, out, drawn, drawn)


@pytest.mark.parametrize("name,points", [
    ("astronaut", [[305, 30], [372, 62], [360, 140]]),  # a "power line" over the wall
    ("chelsea", [[120, 40], [210, 70], [300, 45]]),  # over the fur
])
async def test_strokes_remove_a_red_line(name, points):
    photo = photo_of(name)
    line = np.zeros(photo.shape[:2], np.uint8)
    cv2.polylines(line, [np.array(points, np.int32)], False, 1, thickness=7)
    drawn = line.view(bool)
    photo[drawn] = RED
    strokes = json.dumps([{"points": points, "width": 9}])
    out = await remove(photo, strokes=strokes)
    assert_removed(photo, out, drawn, used_area(photo, "strokes", strokes.encode()))


@pytest.mark.parametrize("name,box", [("astronaut", [310, 35, 362, 88]), ("chelsea", [200, 80, 250, 125])])
async def test_boxes_remove_a_red_rectangle(name, box):
    photo = photo_of(name)
    x0, y0, x1, y1 = box
    drawn = np.zeros(photo.shape[:2], bool)
    drawn[y0:y1, x0:x1] = True
    photo[drawn] = RED
    boxes = json.dumps([box])
    out = await remove(photo, boxes=boxes)
    assert_removed(photo, out, drawn, used_area(photo, "boxes", boxes.encode()))


async def test_separate_parts_are_each_filled():
    photo = photo_of("astronaut")
    drawn = disc(photo.shape, (335, 105), 12) | disc(photo.shape, (60, 470), 12)
    photo[drawn] = RED
    strokes = json.dumps([{"points": [[335, 105]], "width": 26}, {"points": [[60, 470]], "width": 26}])
    out = await remove(photo, strokes=Upload("s.json", "application/json", strokes.encode()))
    red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)
    assert not red[drawn].any()
    used = used_area(photo, "strokes", strokes.encode())
    assert np.array_equal(out[~used], photo[~used])
    assert len(inpaint.plan(photo, used, max_side=1024, min_margin=32)) == 2


def test_planning_inside_the_reach_gives_the_same_crops():
    photo = photo_of("chelsea")
    mask = disc(photo.shape, (60, 60), 20) | disc(photo.shape, (300, 200), 30) | disc(photo.shape, (340, 230), 5)
    x0, y0, x1, y1 = inpaint.reach(mask, 32)
    whole = [p.box for p in inpaint.plan(photo, mask, max_side=1024, min_margin=32)]
    inside = [p.box for p in inpaint.plan(photo[y0:y1, x0:x1], mask[y0:y1, x0:x1], max_side=1024, min_margin=32)]
    assert len(whole) == 2 and sorted(whole) == sorted((a + x0, b + y0, c + x0, d + y0) for a, b, c, d in inside)


def test_a_small_area_on_12_megapixels_is_a_small_crop():
    photo = np.zeros((3000, 4000, 3), np.uint8)
    mask = disc(photo.shape, (2500, 1200), 50)
    (patch,) = inpaint.plan(photo, mask, max_side=1024, min_margin=32)
    x0, y0, x1, y1 = patch.box
    assert mask[y0:y1, x0:x1].sum() == mask.sum() and x1 - x0 <= 210 and y1 - y0 <= 210


@pytest.mark.parametrize("feather", [1, 4])
def test_large_crops_are_filled_at_a_bounded_scale(monkeypatch, feather):
    """What a 12 MP photo goes through (crop scaled down, fill scaled up), on a small photo."""
    monkeypatch.setattr(inpaint, "CLASSICAL_SIDE", 96)
    photo = photo_of("astronaut")
    centre, radius = DISCS["astronaut"]
    drawn = disc(photo.shape, centre, radius)
    photo[drawn] = RED
    used = areas.grow(drawn, 4)
    (patch,) = inpaint.plan(photo, used, max_side=96, min_margin=32)
    assert max(patch.image.shape[:2]) == 96 and patch.box[2] - patch.box[0] > 96
    assert_removed(photo, inpaint.fill(photo, used, feather=feather), drawn, used)


async def test_area_is_in_upright_coordinates():
    """A JPEG stored sideways with an EXIF orientation: coordinates are those the user sees."""
    stored = Image.fromarray(np.full((40, 80, 3), 128, np.uint8))  # 80 wide, 40 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: seen 40 wide, 80 high
    blob = io.BytesIO()
    stored.save(blob, "JPEG", exif=exif)
    runner = RemovalRunner(None, Settings())
    form = {"image": Upload("p.jpg", "image/jpeg", blob.getvalue()), "boxes": "[[5, 50, 20, 70]]"}
    result = await runner.run(runner.prepare(form, FEATURE))
    assert Image.open(io.BytesIO(result.body)).size == (40, 80)


BIG_BOXES = json.dumps([[1, 1, 2, 2]] * 30_000)


@pytest.mark.parametrize("fields,code", [
    ({}, "area_missing"),
    ({"strokes": ""}, "area_missing"),
    ({"mask": "MASK", "boxes": "[[1,1,5,5]]"}, "area_conflict"),
    ({"mask": Upload("m.png", "image/png", b"not an image")}, "invalid_mask"),
    ({"mask": "white everywhere"}, "invalid_mask"),
    ({"strokes": "not json"}, "invalid_strokes"),
    ({"strokes": '{"points": [[1, 2]], "width": 5}'}, "invalid_strokes"),
    ({"strokes": '[{"points": [], "width": 5}]'}, "invalid_strokes"),
    ({"strokes": '[{"points": [[1, "a"]], "width": 5}]'}, "invalid_strokes"),
    ({"strokes": '[{"points": [[1, 2]], "width": 0}]'}, "invalid_strokes"),
    ({"strokes": '[{"points": [[10, 10], [600, 10]], "width": 5}]'}, "invalid_strokes"),
    ({"strokes": '[{"points": [[-1, 10]], "width": 5}]'}, "invalid_strokes"),
    ({"boxes": "[[0, 0, 600, 10]]"}, "invalid_boxes"),
    ({"boxes": "[[10, 10, 5, 20]]"}, "invalid_boxes"),
    ({"boxes": '[{"x": 1, "y": 1, "w": 5, "h": 5}]'}, "invalid_boxes"),
    ({"boxes": "[[1, 2, 3]]"}, "invalid_boxes"),
    ({"boxes": BIG_BOXES}, "invalid_boxes"),
    ({"boxes": "[]"}, "area_empty"),
    ({"mask": "BLACK"}, "area_empty"),
    ({"boxes": "[[0, 0, 512, 300]]"}, "area_too_large"),
    ({"boxes": "[[1, 1, 5, 5]]", "method": "blur"}, "invalid_option"),
    ({"boxes": "[[1, 1, 5, 5]]", "model": "lama"}, "model_unavailable"),
])
def test_bad_input_is_refused_in_prepare(fields, code):
    stand_ins = {"MASK": np.full((8, 8), 255, np.uint8), "BLACK": np.zeros((8, 8), np.uint8)}
    fields = {k: upload(png(stand_ins[v])) if v in stand_ins else v for k, v in fields.items()}
    runner = RemovalRunner(ModelRegistry(Settings(models_dir=str(REPO_MODELS))), Settings())
    with pytest.raises(DomainError) as caught:
        runner.prepare({"image": upload(png(photo_of("astronaut"))), **fields}, FEATURE)
    assert caught.value.code == code
    assert 400 <= caught.value.status < 500


def test_share_limit_is_configurable():
    runner = RemovalRunner(None, Settings(), max_area_share=0.9)
    form = {"image": upload(png(photo_of("astronaut"))), "boxes": "[[0, 0, 512, 300]]"}
    assert runner.prepare(form, FEATURE).options["area"] == "boxes"


# --- ONNX inpainting: plumbing only (the graph below is not a model) -------------------------

SIZE = 64


def tiny_inpainter(path: Path, image: str = "image", mask: str = "mask") -> None:
    """output = image * (1 - mask) + 0.5 * mask, with the contract's names and fixed size."""
    def tensor(name, channels):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, SIZE, SIZE])

    nodes = [
        helper.make_node("Sub", ["one", mask], ["keep"]),
        helper.make_node("Mul", [image, "keep"], ["kept"]),
        helper.make_node("Mul", ["half", mask], ["grey"]),
        helper.make_node("Add", ["kept", "grey"], ["output"]),
    ]
    constants = [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
                 helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])]
    graph = helper.make_graph(nodes, "tiny_inpaint", [tensor(image, 3), tensor(mask, 1)],
                              [tensor("output", 3)], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(path))


@pytest.fixture(scope="module")
def onnx_registry(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    (models / "u2netp.onnx").symlink_to(REPO_MODELS / "u2netp.onnx")  # the registry wants a cutout model
    tiny_inpainter(models / "tiny.onnx")
    tiny_inpainter(models / "odd.onnx", image="img", mask="hole")
    cutout = load_manifest(REPO_MODELS)["u2netp"]
    (models / "manifest.toml").write_text(f"""
[models.u2netp]
file = "u2netp.onnx"
sha256 = "{cutout.sha256}"
task = "cutout"
family = "u2net"
input_size = 320
source = {{ kind = "pypi", package = "{cutout.source.package}", path = "{cutout.source.path}" }}

[models.tiny]
file = "tiny.onnx"
sha256 = "{sha256_of(models / 'tiny.onnx')}"
task = "inpaint"
family = "inpaint"
input_size = {SIZE}
normalisation = "unit"
source = {{ kind = "local" }}

[models.odd]
file = "odd.onnx"
sha256 = "{sha256_of(models / 'odd.onnx')}"
task = "inpaint"
family = "inpaint"
input_size = {SIZE}
source = {{ kind = "local" }}
""")
    settings = Settings(models_dir=str(models), models="u2netp,tiny,odd", provider="cpu", inference_threads=1)
    registry = ModelRegistry(settings)
    registry.load()
    yield registry, settings
    registry.close()


async def test_onnx_inpainter_runs_through_the_registry(onnx_registry):
    registry, settings = onnx_registry
    photo = photo_of("astronaut")
    centre, radius = DISCS["astronaut"]
    drawn = disc(photo.shape, centre, radius)
    photo[drawn] = RED
    mask = png(drawn.astype(np.uint8) * 255)
    runner = RemovalRunner(registry, settings)
    feature = msgspec.structs.replace(FEATURE, model="tiny")
    assert runner.available(feature) and not runner.available(msgspec.structs.replace(FEATURE, model="lama"))
    out = await remove(photo, runner, feature, mask=upload(mask))
    used = used_area(photo, "mask", mask)
    assert np.array_equal(out[~used], photo[~used])
    inner = ~areas.grow(~used, areas.dilation_radius(photo.shape[1::-1]) + 2)
    assert inner.sum() > 1000 and np.abs(out[inner].astype(int) - 128).max() <= 2  # the graph's grey
    # the request's own model option still picks the classical filler
    classical = await remove(photo, runner, feature, mask=upload(mask), model="classical")
    assert np.abs(classical[inner].astype(int) - 128).max() > 2


@pytest.mark.parametrize("shape", [(10, 300), (300, 1), (64, 64), (500, 700)])
def test_learned_tensors_round_trip_any_crop_shape(shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    hole = np.zeros(shape, np.uint8)
    hole[: shape[0] // 2, : shape[1] // 2] = 255
    feeds = learned.preprocess(image, hole, SIZE)
    assert feeds["image"].shape == (1, 3, SIZE, SIZE) and feeds["mask"].shape == (1, 1, SIZE, SIZE)
    assert set(np.unique(feeds["mask"])) <= {0.0, 1.0} and (feeds["image"][0][:, feeds["mask"][0, 0] == 1] == 0).all()
    back = learned.postprocess([feeds["image"]], shape, SIZE)  # an identity "model"
    assert back.shape == (*shape, 3) and back.dtype == np.uint8
    if shape == (64, 64):
        keep = hole == 0
        assert np.array_equal(back[keep], image[keep])


def test_a_model_off_the_contract_is_unavailable(onnx_registry):
    registry, settings = onnx_registry
    form = {"image": upload(png(photo_of("chelsea"))), "boxes": "[[1, 1, 5, 5]]", "model": "odd"}
    with pytest.raises(DomainError) as caught:
        RemovalRunner(registry, settings).prepare(form, FEATURE)
    assert caught.value.code == "model_unavailable" and "image and mask" in caught.value.detail


def test_local_model_is_accepted_but_never_fetched(onnx_registry):
    registry, settings = onnx_registry
    spec = registry.models["tiny"].spec
    assert spec.source.kind == "local"
    with pytest.raises(FetchError, match="no registry ships this file"):
        fetch_models([msgspec.structs.replace(spec, file="absent.onnx")], settings.models_dir)
