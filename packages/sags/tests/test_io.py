"""INRIA PLY round trip and bad fields; camera files."""

import json

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement
from sags.cameras import (
    Camera,
    intrinsics,
    load_cameras,
    load_cameras_json,
    load_transforms_json,
    look_at,
    save_cameras_json,
)
from sags.gaussians import load_ply, random_splats, save_ply
from vislab.errors import InputError


@pytest.mark.parametrize("deg", [0, 3])
def test_ply_round_trip_bit_exact(tmp_path, deg):
    s = random_splats(57, sh_degree=deg, generator=torch.Generator().manual_seed(deg))
    s["means"][3] = float("nan")  # rows are never filtered
    save_ply(s, tmp_path / "a.ply")
    t = load_ply(tmp_path / "a.ply")
    for k in s:
        assert t[k].shape == s[k].shape
        assert torch.equal(t[k].view(torch.int32), s[k].float().contiguous().view(torch.int32)), k
    save_ply(t, tmp_path / "b.ply")
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()


def test_ply_layout_is_inria(tmp_path):
    s = random_splats(2, sh_degree=1)
    s["shN"][:] = torch.arange(9, dtype=torch.float32).reshape(1, 3, 3)  # [N, K-1=3 coeffs, 3 channels]
    save_ply(s, tmp_path / "a.ply")
    v = PlyData.read(str(tmp_path / "a.ply"))["vertex"]
    names = [p.name for p in v.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    # channel-major: f_rest_{c(K-1)+j} = shN[j, c]
    for c in range(3):
        for j in range(3):
            assert v[f"f_rest_{c * 3 + j}"][0] == s["shN"][0, j, c]
    assert (np.asarray(v["nx"]) == 0).all()


def _write(path, names, n=3):
    arr = np.zeros(n, dtype=[(k, "<f4") for k in names])
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


def test_bad_ply_fields(tmp_path):
    base = [
        "x",
        "y",
        "z",
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    _write(tmp_path / "noopa.ply", [n for n in base if n != "opacity"])
    with pytest.raises(InputError, match="opacity"):
        load_ply(tmp_path / "noopa.ply")
    _write(tmp_path / "sh.ply", base + [f"f_rest_{i}" for i in range(10)])
    with pytest.raises(InputError, match="f_rest"):
        load_ply(tmp_path / "sh.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply at all")
    with pytest.raises(InputError, match="cannot read PLY"):
        load_ply(tmp_path / "junk.ply")
    _write(tmp_path / "empty.ply", base, n=0)
    with pytest.raises(InputError, match="0 vertices"):
        load_ply(tmp_path / "empty.ply")
    with pytest.raises(InputError, match="not found"):
        load_ply(tmp_path / "missing.ply")
    _write(tmp_path / "ok.ply", base)
    assert load_ply(tmp_path / "ok.ply")["shN"].shape == (3, 0, 3)


def test_save_ply_is_atomic(tmp_path):
    s = random_splats(5, 0)
    save_ply(s, tmp_path / "a.ply")
    before = (tmp_path / "a.ply").read_bytes()
    bad = dict(s)
    bad["scales"] = torch.zeros(4, 3)  # wrong row count -> the write fails
    with pytest.raises(RuntimeError):
        save_ply(bad, tmp_path / "a.ply")
    assert (tmp_path / "a.ply").read_bytes() == before


def test_cameras_json_round_trip_and_projection(tmp_path):
    cam = Camera(look_at(torch.tensor([2.0, 1.0, 1.5]), torch.zeros(3)), intrinsics(50, 64, 48), 64, 48, "v0")
    save_cameras_json([cam], tmp_path / "cameras.json")
    back = load_cameras(tmp_path / "cameras.json")[0]
    assert torch.allclose(back.viewmat, cam.viewmat, atol=1e-5) and torch.allclose(back.K, cam.K)
    uv, z = back.project(torch.zeros(1, 3))
    assert torch.allclose(uv, torch.tensor([[32.0, 24.0]]), atol=1e-3) and z[0] > 0  # looks at the target
    o, d = back.ray(32.0, 24.0)
    assert torch.allclose(o + z[0] * d, torch.zeros(3), atol=1e-4)  # unit camera-space z ray


def test_cameras_json_keeps_the_principal_point(tmp_path):
    K = torch.tensor([[50.0, 0, 20.5], [0, 52.0, 30.25], [0, 0, 1]])
    cam = Camera(look_at(torch.tensor([2.0, 1.0, 1.5]), torch.zeros(3)), K, 64, 48, "v0")
    save_cameras_json([cam], tmp_path / "cameras.json")
    d = json.loads((tmp_path / "cameras.json").read_text())[0]
    assert d["cx"] == 20.5 and d["cy"] == 30.25
    assert torch.equal(load_cameras_json(tmp_path / "cameras.json")[0].K, K)
    del d["cx"], d["cy"]  # INRIA's own files: principal point at the image centre
    (tmp_path / "inria.json").write_text(json.dumps([d]))
    assert load_cameras_json(tmp_path / "inria.json")[0].K[:2, 2].tolist() == [32.0, 24.0]


def test_cameras_without_intrinsics(tmp_path):
    (tmp_path / "cameras.json").write_text(
        json.dumps(
            [{"id": 0, "width": 4, "height": 4, "position": [0, 0, 0], "rotation": np.eye(3).tolist()}]
        )
    )
    with pytest.raises(InputError, match="fx"):
        load_cameras_json(tmp_path / "cameras.json")
    (tmp_path / "transforms.json").write_text(
        json.dumps({"frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}], "w": 8, "h": 8})
    )
    with pytest.raises(InputError, match="intrinsics"):
        load_transforms_json(tmp_path / "transforms.json")


def test_transforms_json_opengl_to_opencv(tmp_path):
    c2w = np.eye(4)
    c2w[:3, 3] = [0, 0, 4]  # OpenGL camera at z=4 looking down -z towards the origin
    (tmp_path / "transforms.json").write_text(
        json.dumps(
            {
                "camera_angle_x": 0.8,
                "w": 10,
                "h": 10,
                "frames": [{"file_path": "./r_0", "transform_matrix": c2w.tolist()}],
            }
        )
    )
    cam = load_transforms_json(tmp_path / "transforms.json")[0]
    uv, z = cam.project(torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0]]))
    assert torch.allclose(z, torch.tensor([4.0, 4.0]))
    assert torch.allclose(uv[0], torch.tensor([5.0, 5.0]))
    assert uv[1, 0] > 5 and uv[1, 1] < 5  # +x right, +y (world up) is up in the image (v decreases)


def test_datasets_without_images(tmp_path):
    from PIL import Image
    from sags.data import ViewDataset, load_blender_scene, load_colmap_scene

    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": np.eye(4).tolist()} for i in range(2)]
    (tmp_path / "transforms_train.json").write_text(
        json.dumps({"camera_angle_x": 0.7, "w": 8, "h": 8, "frames": frames})
    )
    with pytest.raises(InputError, match="no image files"):
        load_blender_scene(tmp_path / "transforms_train.json")
    (tmp_path / "train").mkdir()
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(tmp_path / "train" / "r_0.png")
    with pytest.raises(InputError, match="missing"):
        load_blender_scene(tmp_path / "transforms_train.json")
    (tmp_path / "train" / "r_1.png").write_bytes(b"corrupt")
    with pytest.raises(InputError, match="cannot read image"):
        load_blender_scene(tmp_path / "transforms_train.json")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(tmp_path / "train" / "r_1.png")
    d = load_blender_scene(tmp_path / "transforms_train.json")
    assert d.images.shape == (2, 8, 8, 3) and torch.allclose(d.images, torch.ones(1))  # transparent -> white
    # COLMAP text model whose images are absent
    sp = tmp_path / "scene" / "sparse" / "0"
    sp.mkdir(parents=True)
    (sp / "cameras.txt").write_text("1 PINHOLE 8 8 10 10 4 4\n")
    (sp / "images.txt").write_text("1 1 0 0 0 0 0 3 1 a.png\n\n2 1 0 0 0 0 0 3 1 b.png\n\n")
    (tmp_path / "scene" / "images").mkdir()
    with pytest.raises(InputError, match="no image files"):
        load_colmap_scene(tmp_path / "scene")
    (sp / "images.txt").write_text("1 1 0 0 0 0 0 3 7 a.png\n\n")
    with pytest.raises(InputError, match="no intrinsics"):
        load_colmap_scene(tmp_path / "scene")
    with pytest.raises(InputError, match="empty dataset"):
        ViewDataset(torch.zeros(0, 8, 8, 3), [], [])


def test_colmap_binary_model(tmp_path):
    import struct

    from sags.cameras import read_colmap

    sp = tmp_path / "sparse"
    sp.mkdir()
    with open(sp / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 1, 16, 12) + struct.pack("<4d", 20, 21, 8, 6))
    with open(sp / "images.bin", "wb") as f:
        f.write(
            struct.pack("<Q", 1)
            + struct.pack("<i7di", 5, 1, 0, 0, 0, 0.5, 0, 2, 1)
            + b"img.png\x00"
            + struct.pack("<Q", 0)
        )
    with open(sp / "points3D.bin", "wb") as f:
        f.write(
            struct.pack("<Q", 1)
            + struct.pack("<Q3d3Bd", 1, 0.1, 0.2, 0.3, 255, 0, 0, 0.5)
            + struct.pack("<Q", 0)
        )
    cams, xyz, rgb = read_colmap(sp)
    assert cams[0].width == 16 and cams[0].K[0, 0] == 20 and cams[0].K[1, 1] == 21
    assert torch.allclose(cams[0].viewmat[:3, 3], torch.tensor([0.5, 0, 2.0]))
    assert np.allclose(xyz, [[0.1, 0.2, 0.3]]) and rgb.tolist() == [[255, 0, 0]]
