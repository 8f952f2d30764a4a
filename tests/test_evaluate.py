import csv
import io

import numpy as np
import pytest
from skimage import data
from skimage import io as skio
from test_reference import _drifting_stack

import napari_inpaint
from napari_inpaint import evaluation as evaluate_module
from napari_inpaint import inpaint
from napari_inpaint.cli import main
from napari_inpaint.evaluation import EvaluationTable, bucket_of, default_methods, evaluate, metrics
from napari_inpaint.methods import list_methods


def _ramp(shape=(48, 56)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (1000 + 37 * yy + 11 * xx).astype(np.uint16)


@pytest.fixture
def recorder(monkeypatch):
    """Record what each method is given, filling through the real engine."""
    calls = []

    def recording_inpaint(image, mask, method, **kwargs):
        calls.append({"image": image.copy(), "mask": mask.copy(), "method": method, **kwargs})
        return inpaint(image, mask, method, **kwargs)

    monkeypatch.setattr(evaluate_module, "inpaint", recording_inpaint)
    return calls


@pytest.mark.parametrize(
    ("ratio", "label"), [(0.001, "0-10%"), (0.1, "0-10%"), (0.1001, "10-20%"), (0.3, "20-30%"), (0.95, "90-100%")]
)
def test_buckets_are_right_closed_tenths(ratio, label):
    assert bucket_of(ratio) == label


def test_harmonic_is_exact_on_a_ramp_and_rows_are_method_by_bucket():
    table = evaluate(_ramp(), ["harmonic", "telea"], masks=["rectangles", "strokes"], ratios=[0.05, 0.25])
    assert [(row["method"], row["bucket"], row["n"]) for row in table.rows] == [
        ("harmonic", "0-10%", 2),
        ("harmonic", "20-30%", 2),
        ("telea", "0-10%", 2),
        ("telea", "20-30%", 2),
    ]
    harmonic = table.rows[0]
    assert harmonic["mae_hole"] < 0.01 and harmonic["ssim_hole"] > 0.999
    assert harmonic["ratio"] == pytest.approx(0.05, abs=1e-3)
    for row in table.rows:
        assert row["error"] is None and row["seconds"] > 0
        assert row["psnr_image"] >= row["psnr_hole"]  # the same error spread over more pixels
    assert "lpips" not in table.columns and any("LPIPS" in note for note in table.notes)


def test_scores_are_the_metrics_of_each_fill(recorder):
    image = data.camera()[200:264, 200:264]
    table = evaluate(image, ["telea"], masks=["debris"], ratios=[0.15], lpips=False)
    (call,) = [c for c in recorder if c["mask"].shape == image.shape]
    hole = call["mask"]
    assert (call["image"][hole] == 0).all()  # the truth is hidden from the method
    assert (call["image"][~hole] == image[~hole]).all()
    filled = inpaint(call["image"], hole, "telea")
    (trial,) = table.trials
    diff = np.abs(filled.astype(float) - image)[hole]
    assert trial["mae_hole"] == pytest.approx(100 * diff.mean() / 255)
    assert trial["psnr_hole"] == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)))
    assert trial["ratio"] == pytest.approx(hole.mean()) and trial["bucket"] == "10-20%"


def test_holes_go_only_into_the_clean_region(recorder):
    image = data.camera()[100:164, 100:164]
    region = np.zeros(image.shape, bool)
    region[10:40, 20:60] = True
    table = evaluate(image, ["harmonic"], masks=["strokes", "hot-pixels", "dropped-lines"], region=region,
                     ratios=[0.15], per_mask=True)  # fmt: skip
    holes = [c["mask"] for c in recorder if c["mask"].shape == image.shape]
    assert len(holes) == 3
    for unknown in holes:
        # Holes are hidden in the region; pixels outside it are never used as known either.
        assert (unknown & region).any() and unknown[~region].all()
    # Ratios count the region's pixels.
    assert [row["mask"] for row in table.rows] == ["strokes", "hot-pixels", "dropped-lines"]
    assert table.rows[1]["ratio"] == pytest.approx(0.15, abs=0.01)


def test_damage_outside_the_clean_region_does_not_change_the_scores():
    image = data.camera()[100:164, 100:164]
    region = np.zeros(image.shape, bool)
    region[10:50, 10:50] = True
    damaged = image.copy()
    damaged[~region] = 255  # e.g. saturated or hot pixels the user left outside the clean region
    clean_rows = evaluate(image, ["harmonic", "biharmonic"], masks=["strokes"], region=region, ratios=[0.15]).rows
    damaged_rows = evaluate(damaged, ["harmonic", "biharmonic"], masks=["strokes"], region=region, ratios=[0.15]).rows
    assert [r["psnr_hole"] for r in clean_rows] == pytest.approx([r["psnr_hole"] for r in damaged_rows])


def test_rgb_and_channel_axis(recorder):
    rgb = data.astronaut()[:48, :48]
    last = evaluate(rgb, ["harmonic"], masks=["rectangles"], ratios=[0.1])
    first = evaluate(np.moveaxis(rgb, -1, 0), ["harmonic"], masks=["rectangles"], ratios=[0.1], channel_axis=0)
    assert last.rows[0]["psnr_hole"] == pytest.approx(first.rows[0]["psnr_hole"])
    timed = [c for c in recorder if c["mask"].shape == (48, 48)]
    assert len(timed) == 2 and all(c["channel_axis"] == -1 and c["image"].shape[-1] == 3 for c in timed)


def test_a_failing_method_is_reported_not_raised(monkeypatch):
    def flaky(image, mask, method, **kwargs):
        if method == "telea":
            raise RuntimeError("weights need a download")
        return inpaint(image, mask, method, **kwargs)

    monkeypatch.setattr(evaluate_module, "inpaint", flaky)
    table = evaluate(_ramp(), ["harmonic", "telea"], masks=["strokes"], ratios=[0.05, 0.15])
    telea = [row for row in table.rows if row["method"] == "telea"]
    assert [row["n"] for row in telea] == [0, 0]
    assert telea[0]["error"] == "RuntimeError: weights need a download" and telea[0]["psnr_hole"] is None
    assert "failed: telea 0-10%: RuntimeError: weights need a download" in str(table)
    assert all(row["error"] is None and row["n"] == 1 for row in table.rows if row["method"] == "harmonic")


def test_parameters_go_to_the_methods_that_have_them(recorder):
    evaluate(_ramp(), ["harmonic", "telea"], masks=["strokes"], ratios=[0.05], params={"radius": 2})
    timed = [c for c in recorder if c["mask"].shape == (48, 56)]
    assert {c["method"]: c.get("radius") for c in timed} == {"harmonic": None, "telea": 2}
    evaluate(_ramp(), {"exemplar": {"patch_size": 5}}, masks=["strokes"], ratios=[0.05])
    assert recorder[-1]["patch_size"] == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"methods": ["nope"]}, ValueError, "unknown method 'nope'"),
        ({"methods": ["harmonic"], "params": {"radius": 3}}, TypeError, "no selected method has a parameter 'radius'"),
        ({"methods": ["telea"], "params": {"radius": 0}}, ValueError, "radius"),
        ({"masks": ["blobs"]}, ValueError, "unknown mask kind"),
        ({"ratios": [0.0]}, ValueError, "ratios"),
        ({"lpips": "maybe"}, ValueError, "lpips"),
        ({"region": np.ones((3, 3), bool)}, ValueError, "region shape"),
    ],
)
def test_bad_requests_raise_before_any_fill(kwargs, error, message):
    with pytest.raises(error, match=message):
        evaluate(_ramp(), **{"methods": ["harmonic"], **kwargs})


def test_images_that_are_not_2d_are_refused():
    with pytest.raises(ValueError, match="one plane"):
        evaluate(np.zeros((5, 32, 32), np.uint8), ["harmonic"])
    with pytest.raises(ValueError, match=r"a stack of 2D planes, plane axis first.*leave plane out"):
        evaluate(np.zeros((32, 32), np.uint8), ["harmonic"], plane=0)


# ----------------------------------------------------------------------------- reference data


def _hole_psnr(table) -> dict[str, float]:
    return {row["method"]: row["psnr_hole"] for row in table.rows}


def test_adjacent_planes_score_guided_far_above_biharmonic_on_a_drifting_stack(recorder):
    stack = _drifting_stack()
    table = evaluate(stack, masks=["rectangles", "strokes"], ratios=[0.15], plane=2, reference="adjacent",
                     keep_example=True)  # fmt: skip
    scores = _hole_psnr(table)
    assert "guided" in scores and set(default_methods()) <= set(scores)  # those needing a reference join
    assert scores["guided"] > scores["biharmonic"] + 10
    # Each method got the whole stack, with the holes hidden in the scored plane only ...
    timed = [c for c in recorder if c["image"].shape == stack.shape]
    assert len(timed) == 2 * len(scores)
    for call in timed:
        assert call["mask"][2].any() and not call["mask"][[0, 1, 3, 4]].any()
        np.testing.assert_array_equal(call["image"][[0, 1, 3, 4]], stack[[0, 1, 3, 4]])
        assert (call["image"][2][call["mask"][2]] == 0).all()
        # ... and the methods that use reference data got it.
        uses = napari_inpaint.get_method(call["method"]).uses_reference
        assert (call.get("reference"), call.get("align")) == (("adjacent", True) if uses else (None, None))
    # Only the plane is scored: the example holds that plane.
    example = table.example
    assert example.hole.shape == stack.shape[1:] and example.fills["guided"].shape == stack.shape[1:]
    scored = next(t for t in table.trials if t["method"] == "guided" and t["mask"] == "rectangles")
    fill = example.fills["guided"]
    assert metrics.psnr(stack[2], fill, mask=example.hole) == pytest.approx(scored["psnr_hole"])
    unaligned = _hole_psnr(evaluate(stack, ["guided"], masks=["rectangles"], ratios=[0.15], plane=2,
                                    reference="adjacent", align=False))  # fmt: skip
    assert unaligned["guided"] < scores["guided"]  # align is passed on


def test_a_plane_without_reference_scores_as_the_plane_alone(recorder):
    stack = _drifting_stack(planes=3)
    options = {"methods": ["harmonic", "telea"], "masks": ["strokes"], "ratios": [0.1], "keep_example": True}
    on_stack, alone = evaluate(stack, plane=-1, **options), evaluate(stack[2], **options)
    assert _hole_psnr(on_stack) == _hole_psnr(alone)
    assert all(c["image"].ndim == 2 for c in recorder)  # the plane is all the methods need
    np.testing.assert_array_equal(on_stack.example.fills["telea"], alone.example.fills["telea"])


def test_a_reference_array_is_passed_on_in_the_images_layout(recorder):
    stack = _drifting_stack(planes=3)
    rgb = np.stack([stack, 0.5 * stack, stack + 20], axis=1)  # (T, C, Y, X)
    table = evaluate(rgb, ["guided", "harmonic"], masks=["rectangles"], ratios=[0.15], plane=1,
                     channel_axis=1, reference=rgb[0], keep_example=True)  # fmt: skip
    scores = _hole_psnr(table)
    assert scores["guided"] > scores["harmonic"] + 6
    guided = [c for c in recorder if c["method"] == "guided" and c["image"].shape == (160, 160, 3)]
    assert guided and all(c["channel_axis"] == -1 for c in guided)
    np.testing.assert_array_equal(guided[0]["reference"], np.moveaxis(rgb[0], 0, -1))
    assert all("reference" not in c for c in recorder if c["method"] == "harmonic")
    assert table.example.fills["guided"].shape == (3, 160, 160)  # the plane's own layout


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"methods": ["guided"]}, ValueError, "fills from reference data: pass reference='adjacent'"),
        ({"reference": "adjacent"}, ValueError, "single plane"),
        ({"reference": "nearby", "plane": 0}, ValueError, "reference must be None, 'adjacent' or an array"),
        ({"reference": np.zeros((3, 3)), "plane": 0}, ValueError, r"reference of shape \(3, 3\) does not"),
        ({"reference": "adjacent", "plane": 5}, ValueError, "plane must be an index into the stack's 3"),
        ({"reference": "adjacent", "plane": 0, "align": "yes"}, TypeError, "align must be True or False"),
    ],
)
def test_bad_reference_requests_raise_before_any_fill(kwargs, error, message):
    stack = np.stack([_ramp()] * 3)
    image = stack if "plane" in kwargs else stack[0]
    with pytest.raises(error, match=message):
        evaluate(image, **{"methods": ["harmonic", "guided"], "masks": ["strokes"], **kwargs})


def test_default_methods_are_the_classical_ones_and_those_made_for_the_hidden_damage(register_method):
    @register_method("toy-debris-only", any_hole=False, artifacts=("debris",))
    @register_method("toy-network", family="network", artifacts=("debris",))
    def fill(image, mask):
        return image

    @register_method("toy-from-a-reference", needs_reference=True)
    def fill_from_reference(image, mask, reference=None):
        return image

    classical = [m.name for m in list_methods() if m.family == "classical" and m.any_hole and not m.needs_reference]
    assert default_methods() == classical
    assert not {"toy-network", "toy-from-a-reference"} & set(default_methods(["debris"]))
    # With reference data, the methods that need it join.
    assert {"toy-from-a-reference", "guided"} <= set(default_methods(reference=True))
    assert default_methods(["debris", "strokes"]) == [*classical, "toy-debris-only"]
    assert "interpolate" in default_methods(["dropped_lines"]) and "interpolate" not in default_methods()


def _table() -> EvaluationTable:
    def trial(method, bucket, psnr, error=None):
        scores = dict.fromkeys(("psnr_hole", "ssim_hole", "mae_hole", "psnr_image", "seconds"), None)
        if error is None:
            scores.update(psnr_hole=psnr, ssim_hole=0.9, mae_hole=1.5, psnr_image=psnr + 10, seconds=0.25)
        ratio = {"0-10%": 0.05, "10-20%": 0.15}[bucket]
        return {"method": method, "mask": "strokes", "ratio": ratio, "bucket": bucket, "seed": 0,
                "lpips": None, **scores, "error": error}  # fmt: skip

    return EvaluationTable(
        [trial("tv", "10-20%", 30.0), trial("tv", "0-10%", 31.0), trial("tv", "0-10%", 33.0),
         trial("lama", "0-10%", None, "DownloadError: offline")],
        notes=["LPIPS left out: no weights"],
    )  # fmt: skip


def test_the_kept_example_is_a_scored_hole_with_the_fills_that_were_scored(recorder):
    image = data.camera()[200:264, 200:264]
    table = evaluate(image, ["harmonic", "telea"], masks=["debris", "strokes"], ratios=[0.05, 0.15, 0.25],
                     lpips=False, per_mask=True, keep_example=True)  # fmt: skip
    timed = [c for c in recorder if c["mask"].shape == image.shape]
    assert len(timed) == len(table.trials) == 12  # no second fill for the example
    example = table.example
    assert (example.kind, example.ratio) == ("debris", 0.15)
    assert example.hole.dtype == bool and example.hole.shape == image.shape and example.hole.any()
    assert list(example.fills) == ["harmonic", "telea"]
    for method, filled in example.fills.items():
        assert filled.shape == image.shape and filled.dtype == image.dtype
        np.testing.assert_array_equal(filled[~example.hole], image[~example.hole])
        (trial,) = [t for t in table.trials if (t["method"], t["mask"], t["bucket"]) == (method, "debris", "10-20%")]
        assert metrics.psnr(image, filled, mask=example.hole) == trial["psnr_hole"]
    assert evaluate(image, ["harmonic"], masks=["debris"], ratios=[0.15]).example is None


def test_the_example_keeps_the_image_layout_and_leaves_out_failed_fills(monkeypatch):
    def flaky(image, mask, method, **kwargs):
        if method == "telea":
            raise RuntimeError("no")
        return inpaint(image, mask, method, **kwargs)

    monkeypatch.setattr(evaluate_module, "inpaint", flaky)
    channels_first = np.moveaxis(data.astronaut()[:48, :48], -1, 0)
    table = evaluate(channels_first, ["harmonic", "telea"], masks=["rectangles"], ratios=[0.1], channel_axis=0,
                     keep_example=True)  # fmt: skip
    (filled,) = table.example.fills.values()
    assert list(table.example.fills) == ["harmonic"] and filled.shape == channels_first.shape
    hole = table.example.hole
    assert hole.shape == (48, 48)
    np.testing.assert_array_equal(filled[:, ~hole], channels_first[:, ~hole])


def test_rows_average_within_a_bucket_in_bucket_order():
    rows = _table().rows
    assert [(r["method"], r["bucket"], r["n"]) for r in rows] == [
        ("tv", "0-10%", 2), ("tv", "10-20%", 1), ("lama", "0-10%", 0)
    ]  # fmt: skip
    assert rows[0]["psnr_hole"] == 32.0 and rows[0]["psnr_image"] == 42.0
    assert rows[2]["psnr_hole"] is None and rows[2]["error"] == "DownloadError: offline"


def test_table_renders_as_text_dict_and_csv(tmp_path):
    table = _table()
    text = str(table)
    assert text == table.to_text()
    header, first = text.splitlines()[:2]
    assert header.split()[:4] == ["method", "holes", "hole", "%"]
    assert first.split() == ["tv", "0-10%", "5.0%", "32.00", "0.9000", "1.50", "42.00", "0.250", "2"]
    assert "lama    0-10%" in text and text.endswith("note: LPIPS left out: no weights")
    as_dict = table.to_dict()
    assert as_dict["columns"][0] == "method" and as_dict["rows"] == table.rows and as_dict["notes"] == table.notes
    path = tmp_path / "scores.csv"
    assert table.to_csv(path) == path.read_text()
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["bucket"] for r in rows] == ["0-10%", "10-20%", "0-10%"]
    assert float(rows[0]["psnr_hole"]) == 32.0 and rows[2]["psnr_hole"] == "" and rows[0]["error"] == ""


def test_lpips_column_when_the_weights_load(monkeypatch):
    monkeypatch.setattr(evaluate_module.metrics, "fetch_lpips", lambda: None)
    monkeypatch.setattr(evaluate_module.metrics, "lpips", lambda *args, **kwargs: 0.125)
    table = evaluate(data.camera()[:64, :64], ["harmonic"], masks=["strokes"], ratios=[0.1], lpips=True)
    assert table.rows[0]["lpips"] == 0.125 and "LPIPS" in str(table) and not table.notes


def test_lpips_by_default_only_when_available_without_a_download(monkeypatch):
    monkeypatch.setattr(evaluate_module.metrics, "fetch_lpips", lambda: None)
    monkeypatch.setattr(evaluate_module.metrics, "lpips", lambda *args, **kwargs: 0.125)
    image = data.camera()[:64, :64]
    monkeypatch.setattr(evaluate_module.metrics, "lpips_available", lambda: True)
    assert evaluate(image, ["harmonic"], masks=["strokes"], ratios=[0.1]).rows[0]["lpips"] == 0.125
    monkeypatch.setattr(evaluate_module.metrics, "lpips_available", lambda: False)
    table = evaluate(image, ["harmonic"], masks=["strokes"], ratios=[0.1])
    assert "lpips" not in table.columns
    assert table.notes[0].startswith("LPIPS left out") and "lpips=True" in table.notes[0]


def test_lpips_failure_leaves_the_column_out_with_a_note(monkeypatch):
    def offline():
        raise RuntimeError("LPIPS needs the weight files: offline")

    monkeypatch.setattr(evaluate_module.metrics, "fetch_lpips", offline)
    table = evaluate(data.camera()[:64, :64], ["harmonic"], masks=["strokes"], ratios=[0.1], lpips=True)
    assert "lpips" not in table.columns
    assert table.notes == ["LPIPS left out: LPIPS needs the weight files: offline"]


# ----------------------------------------------------------------------------- command line


@pytest.fixture
def photo_file(tmp_path):
    path = tmp_path / "photo.png"
    skio.imsave(path, data.camera()[200:264, 180:260], check_contrast=False)
    return path


def test_compare_prints_the_table_and_writes_csv(photo_file, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    status = main(["compare", str(photo_file), "--methods", "harmonic,telea", "--masks", "strokes", "scratches",
                   "--ratios", "0.05,0.15", "--per-mask", "--param", "radius=3", "--csv", str(out)])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["method", "mask", "holes"]
    assert "telea     scratches  10-20%" in printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 and {r["method"] for r in rows} == {"harmonic", "telea"}


def test_compare_with_a_region(photo_file, tmp_path, capsys):
    region = np.zeros((64, 80), np.uint8)
    region[:, :40] = 255
    skio.imsave(tmp_path / "region.png", region, check_contrast=False)
    status = main(["compare", str(photo_file), "--methods", "harmonic", "--ratios", "0.1",
                   "--region", str(tmp_path / "region.png")])  # fmt: skip
    assert status == 0 and "harmonic  0-10%" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--masks", "blobs"], "unknown mask kind"),
        (["--methods", "harmonic", "--param", "radius=3"], "no selected method"),
        (["--methods", "telea", "--param", "radius=x"], "must be an integer"),
        (["--ratios", "half"], "--ratios must be a number"),
    ],
)
def test_compare_user_errors(photo_file, capsys, args, message):
    assert main(["compare", str(photo_file), *args]) == 2
    assert message in capsys.readouterr().err


def test_compare_a_stack_plane_with_adjacent_planes(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", _drifting_stack().astype(np.float32), photometric="minisblack")
    arguments = ["compare", str(tmp_path / "stack.tif"), "--masks", "rectangles", "--ratios", "0.15", "--csv"]
    assert main([*arguments, str(tmp_path / "scores.csv"), "--plane", "2", "--reference", "adjacent"]) == 0
    rows = {r["method"]: float(r["psnr_hole"]) for r in csv.DictReader((tmp_path / "scores.csv").open())}
    assert set(default_methods()) < set(rows) and rows["guided"] > rows["biharmonic"] + 10
    assert "guided" in capsys.readouterr().out
    # The same plane without a reference: the methods that need one are left out.
    assert main([*arguments, str(tmp_path / "plain.csv"), "--plane", "2", "--methods", "biharmonic"]) == 0
    plain = list(csv.DictReader((tmp_path / "plain.csv").open()))
    assert [row["method"] for row in plain] == ["biharmonic"]
    assert float(plain[0]["psnr_hole"]) == pytest.approx(rows["biharmonic"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference", "adjacent"], "give --plane N"),
        (["--methods", "guided"], "'guided' fills from reference data: give --plane N --reference adjacent"),
        (["--plane", "7", "--reference", "adjacent"], "plane must be an index into the stack's 3 planes"),
        (["--plane", "0"], "leave plane out"),
    ],
)
def test_compare_reference_errors(tmp_path, capsys, args, message):
    import tifffile

    stack = np.stack([_ramp()] * 3)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "plane.tif", stack[0])
    image = tmp_path / ("plane.tif" if args == ["--plane", "0"] else "stack.tif")
    assert main(["compare", str(image), *args]) == 2
    assert message in capsys.readouterr().err


def test_compare_refuses_to_overwrite_csv(photo_file, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    out.write_text("keep")
    assert main(["compare", str(photo_file), "--methods", "harmonic", "--csv", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "keep"
