"""Face-image inputs of the predict commands: files and folders, fixed boxes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from vislab.errors import InputError, VislabError
from vislab.faces.inputs import load_faces, parse_box


def test_load_faces_box_and_folders(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(d / "a.png")
    files, crops, notes = load_faces([str(d)], box="2,3,12,13")
    assert [f.name for f in files] == ["a.png"] and crops[0].shape == (3, 10, 10) and notes == ["box"]
    assert float(crops[0].max()) == pytest.approx(128 / 255)
    with pytest.raises(InputError, match="lies outside the 30x20 image"):
        load_faces([str(d / "a.png")], box="40,40,50,50")
    with pytest.raises(InputError, match="image not found"):
        load_faces([str(tmp_path / "none.png")])
    with pytest.raises(VislabError, match="is empty"):
        parse_box("5,5,5,9")
