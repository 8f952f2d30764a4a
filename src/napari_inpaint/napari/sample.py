"""napari's File > Open Sample > napari-inpaint: the damaged cell of :mod:`napari_inpaint.evaluation.sample`."""

from napari_inpaint.evaluation.sample import LABELS, damaged_cell


def make_sample_data() -> list[tuple]:
    """The napari sample: the damaged cell image and its damage labels (layer data tuples).

    The labels are named in the layer's features table (napari shows the
    name under the cursor; the Inpaint widget offers each label by name).
    """
    _, damaged, labels = damaged_cell()
    names = {"index": [0, *LABELS.values()], "damage": ["none", *LABELS]}
    return [
        (damaged, {"name": "damaged cell", "colormap": "gray"}, "image"),
        (labels, {"name": "damage", "opacity": 0.5, "features": names}, "labels"),
    ]
