"""``sags view``: browser cameras, the click-to-segment session, bad inputs, and the viewer in headless Chromium."""

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sags.cli import main
from sags.metrics import iou_3d
from sags.scene import SPHERE_C, SPHERE_R, membership_3d, rotmat_to_quat
from sags.view_scene import (
    ViewSession,
    camera_from_pose,
    camera_pose,
    load_view_input,
    screen_to_pixel,
    tinted,
)
from vislab.errors import VislabError

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def run_dir(scene, tmp_path_factory):
    """A run folder laid out as ``train`` writes it (point_cloud.ply, cameras.json, config.yaml), holding
    the ground-truth Gaussians of the embedded default's scene."""
    from sags.cameras import save_cameras_json
    from sags.gaussians import save_ply
    from sags.view_scene import _default_preset
    from vislab.config import dump_yaml

    d = tmp_path_factory.mktemp("view_run")
    save_ply(scene.splats, d / "point_cloud.ply")
    save_cameras_json(scene.train_cams, d / "cameras.json")
    (d / "config.yaml").write_text(dump_yaml(_default_preset()))
    return d


def _wxyz(cam) -> np.ndarray:
    return rotmat_to_quat(cam.viewmat[:3, :3].T[None])[0].double().numpy()


def _iou(splats, labels) -> float:
    mem, valid = membership_3d(splats["means"], splats["opacities"], 1)
    return iou_3d(torch.as_tensor(labels) == 1, mem, valid)


def _sphere_front(cam) -> torch.Tensor:
    """A point on the sphere's visible side, half way between its centre and the surface."""
    return SPHERE_C + 0.5 * SPHERE_R * torch.nn.functional.normalize(cam.center - SPHERE_C, dim=0)


def test_browser_camera_round_trip_and_letterbox(scene):
    cam = scene.train_cams[3]
    pz = camera_pose(cam)
    c = camera_from_pose(_wxyz(cam), pz["position"], pz["fov"], 1.0, cam.height)
    assert torch.allclose(c.viewmat, cam.viewmat, atol=1e-5) and torch.allclose(c.K, cam.K, atol=1e-4)
    # a 3:2 canvas shown in the 64x64 camera: the whole canvas fits (horizontal fov decides the focal)
    full = camera_from_pose(_wxyz(cam), pz["position"], pz["fov"], 1.5, 200)
    box = camera_from_pose(_wxyz(cam), pz["position"], pz["fov"], 1.5, 64, 64)
    assert (box.width, box.height) == (64, 64)
    assert float(box.K[0, 0]) == pytest.approx(32 / (1.5 * np.tan(pz["fov"] / 2)), rel=1e-5)
    pts = torch.tensor([[-0.45, 0.0, 0.3], [0.4, 0.2, 0.1], [0.0, -0.5, 0.4]])
    uv_full, _ = full.project(pts)
    uv_box, _ = box.project(pts)
    for (u, v), (ub, vb) in zip(uv_full.tolist(), uv_box.tolist()):
        x, y = screen_to_pixel(box, pz["fov"], 1.5, u / full.width, v / full.height)
        assert x == pytest.approx(ub, abs=1e-3) and y == pytest.approx(vb, abs=1e-3)


def test_tint_blends_colours_in_every_direction():
    from sags.gaussians import random_splats
    from sags.render import eval_sh

    s = random_splats(5, sh_degree=2, generator=torch.Generator().manual_seed(0))
    lab = torch.tensor([1, 0, 1, 0, 0], dtype=torch.int8)
    t = tinted(s, lab, tint=(0.2, 0.4, 1.0), weight=0.25)
    d = torch.randn(5, 3)
    before = 0.5 + eval_sh(2, d, torch.cat([s["sh0"], s["shN"]], 1))
    after = 0.5 + eval_sh(2, d, torch.cat([t["sh0"], t["shN"]], 1))
    want = 0.75 * before + 0.25 * torch.tensor([0.2, 0.4, 1.0])
    assert torch.allclose(after[lab == 1], want[lab == 1], atol=1e-5)
    assert torch.equal(after[lab == 0], before[lab == 0])


def test_session_click_revote_edits_export(run_dir, scene, tmp_path):
    inp = load_view_input(run_dir, export_dir=tmp_path / "exp")
    assert inp.provider["name"] == "floodfill" and inp.seg_cfg.vote_denominator == "valid"
    s = ViewSession(inp)
    cam = inp.cameras[0]
    with pytest.raises(VislabError, match="nothing to export"):
        s.export()
    with pytest.raises(VislabError, match="empty space"):
        s.click(cam, 1.5, 1.5)  # the black sky in the corner
    assert s.seg is None and s.clicks == []
    u, v = cam.project(_sphere_front(cam)[None])[0][0].tolist()
    steps = []
    msg = s.click(cam, u, v, progress=lambda it, desc: steps.append(desc) or it)
    assert "Gaussians selected" in msg and steps == ["masks + labels"]
    # what is shown is the segmentation itself (same vote, same Gaussian Decomposition)
    assert torch.equal(s.sel_labels, s.seg.labels) and torch.equal(
        s.sel_splats["means"], s.seg.splats["means"]
    )
    n = len(s.base["means"])
    assert _iou({k: x[:n] for k, x in s.sel_splats.items()}, s.sel_labels[:n]) > 0.8
    s.set_options(gd=False)
    assert torch.equal(s.sel_labels, s.seg.labels_no_gd) and _iou(s.sel_splats, s.sel_labels) > 0.8
    n07 = int((s.sel_labels == 1).sum())
    s.set_options(tau=0.95)
    assert int((s.sel_labels == 1).sum()) < n07
    s.set_options(tau=0.7)
    assert int((s.sel_labels == 1).sum()) == n07
    # edits (sags.edit) on the selection
    obj = s.sel_labels == 1
    s.edit("translate", [0.1, 0.0, -0.05])
    d = s.scene_splats["means"] - s.sel_splats["means"]
    assert torch.allclose(d[obj], torch.tensor([0.1, 0.0, -0.05]).expand(int(obj.sum()), 3), atol=1e-6)
    assert torch.equal(d[~obj], torch.zeros_like(d[~obj]))
    s.edit("rotate", ([0.0, 0.0, 1.0], 90.0))
    c = s.scene_splats["means"][obj].mean(0)
    assert torch.allclose(c, s.sel_splats["means"][obj].mean(0) + torch.tensor([0.1, 0.0, -0.05]), atol=1e-5)
    v0 = s.version
    out = s.export()
    meta = json.loads((out / "view.json").read_text())
    assert meta["edits"][0] == ["translate", [0.1, 0.0, -0.05]] and meta["n_object"] == n07
    from sags.gaussians import load_ply

    obj_ply = load_ply(out / "object.ply")
    assert torch.allclose(obj_ply["means"], s.scene_splats["means"][obj])
    s.edit("remove")
    assert len(s.scene_splats["means"]) == len(s.sel_splats["means"]) - n07 and s.version > v0
    with pytest.raises(VislabError, match="no object"):
        s.edit("translate", [1, 0, 0])
    s.undo_edits()
    assert torch.equal(s.scene_splats["means"], s.sel_splats["means"])
    # a negative click from another view: the first click is carried over as its 3D prompt
    cam2 = inp.cameras[1]
    (u2, v2) = cam2.project(torch.tensor([[0.45, 0.1, 0.36]]))[0][0].tolist()  # the cube's top
    s.click(cam2, u2, v2, positive=False)
    assert [c.positive for c in s.clicks] == [True, False] and _iou(s.sel_splats, s.sel_labels) > 0.8
    s.clear()
    assert s.seg is None and int((s.scene_labels == 1).sum()) == 0


def test_inria_output_folder_and_bad_inputs(scene, run_dir, tmp_path, capsys):
    """INRIA 3DGS output layout (graphdeco-inria/gaussian-splatting, ``train.py``: <model>/cameras.json,
    <model>/point_cloud/iteration_<N>/point_cloud.ply): the latest iteration is viewed."""
    from sags.gaussians import save_ply

    m = tmp_path / "model"
    for it, k in ((7000, 10), (30000, 20)):
        (m / "point_cloud" / f"iteration_{it}").mkdir(parents=True)
        save_ply(
            {key: x[:k] for key, x in scene.splats.items()},
            m / "point_cloud" / f"iteration_{it}" / "point_cloud.ply",
        )
    shutil.copy(run_dir / "cameras.json", m / "cameras.json")
    inp = load_view_input(m)
    assert len(inp.splats["means"]) == 20 and len(inp.cameras) == len(scene.train_cams)
    assert load_view_input(m / "point_cloud" / "iteration_7000" / "point_cloud.ply").cameras is not None
    lone = tmp_path / "lone.ply"
    shutil.copy(run_dir / "point_cloud.ply", lone)
    assert load_view_input(lone).cameras is None  # viewing only
    capsys.readouterr()

    def fails(args, text):
        assert main(["view", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0] and "Traceback" not in err[0], err

    free = _free_port()
    fails([str(tmp_path / "nope"), "--port", str(free)], "does not exist")
    (tmp_path / "empty").mkdir()
    fails([str(tmp_path / "empty"), "--port", str(free)], "not a sags run folder")
    (tmp_path / "notes.txt").write_text("hi")
    fails([str(tmp_path / "notes.txt"), "--port", str(free)], "not a run folder or a .ply file")
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat ascii 1.0\nend_header\ngarbage")
    fails([str(tmp_path / "bad.ply"), "--port", str(free)], "bad.ply")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        fails([str(run_dir), "--port", str(port)], f"cannot serve on 127.0.0.1:{port}")
    fails([str(run_dir), "--port", "70000"], "not a TCP port")
    fails(
        [
            str(run_dir),
            "--port",
            str(free),
            "--provider",
            "sam",
            "--sam-checkpoint",
            str(tmp_path / "no.pth"),
        ],
        "no.pth",
    )


def test_session_with_sam_provider(run_dir, scene):
    """The SAM provider (tiny random SAM: plumbing only) caches one embedding per scene view across clicks."""
    pytest.importorskip("segment_anything")
    inp = load_view_input(run_dir, provider="sam", sam_type="tiny")
    s = ViewSession(inp)
    cam = inp.cameras[0]
    u, v = cam.project(_sphere_front(cam)[None])[0][0].tolist()
    s.click(cam, u, v)
    n_cached = len(s.provider().cache)
    assert s.seg is not None and 1 <= n_cached <= len(inp.cameras) + 1
    s.click(cam, u + 1, v)
    assert len(s.provider().cache) == n_cached and len(s.clicks) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, what: str):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_view_in_headless_chromium(run_dir, tmp_path):
    """Serve the default scene on 127.0.0.1, click the sky and then the sphere in headless Chromium,
    check the overlay and the exported PLY (3D IoU > 0.8), and stop the server."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pw = pytest.importorskip("playwright.sync_api")
    from sags.view import Viewer

    inp = load_view_input(run_dir, export_dir=tmp_path / "exports")
    viewer = Viewer(inp, host="127.0.0.1", port=_free_port(), res=256)
    server = threading.Thread(target=viewer.serve, kwargs={"max_seconds": 240}, daemon=True)
    server.start()

    def still(version: int = 0) -> bool:
        rs = list(viewer.renderers.values())
        return bool(
            rs
            and rs[0].last_key is not None
            and rs[0].last_key[-1] == min(viewer.res, 600)
            and rs[0].last_key[0] >= version
            and time.monotonic() - rs[0].last_move > viewer.settle_seconds
        )

    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 900, "height": 600})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("websocket", lambda w: requests.append(w.url))
            page.goto(viewer.url)
            _wait(still, 90, "the first full-resolution frame")
            close = page.locator(".mantine-Notification-root button")
            if close.count():  # "Software WebGL rendering detected"
                close.first.click()
            time.sleep(1.0)  # the page decodes the frame
            before = page.screenshot(path=str(tmp_path / "before.png"))
            box = page.locator("canvas").first.bounding_box()
            cam = next(iter(viewer.server.get_clients().values())).camera
            full = camera_from_pose(cam.wxyz, cam.position, cam.fov, cam.aspect, int(box["height"]))
            (u, v) = full.project(_sphere_front(full)[None])[0][0].tolist()
            x, y = box["x"] + u * box["width"] / full.width, box["y"] + v * box["height"] / full.height

            page.mouse.click(box["x"] + 4, box["y"] + 4)  # the sky
            _wait(lambda: "empty space" in viewer.last_message, 60, "the sky message")
            page.get_by_text("empty space").wait_for(timeout=10_000)
            assert viewer.session.seg is None

            page.mouse.click(x, y)  # the sphere
            _wait(lambda: "Gaussians selected" in viewer.last_message, 120, "the segmentation")
            page.get_by_text("Gaussians selected").wait_for(timeout=10_000)
            _wait(lambda: still(viewer.session.version), 60, "the overlay frame")
            time.sleep(1.0)
            after = page.screenshot(path=str(tmp_path / "after.png"))

            page.get_by_role("checkbox").first.click()  # Gaussian Decomposition off
            _wait(lambda: not viewer.session.gd, 30, "the GD switch")
            page.get_by_role("button", name="Export segmented PLY").click()
            _wait(lambda: viewer.last_export is not None, 60, "the export")
            page.get_by_role("button", name="Clear clicks").click()
            _wait(lambda: viewer.session.seg is None and viewer._clicks_node is None, 30, "clearing")
            browser.close()
    finally:
        viewer.stop()
    server.join(timeout=10)
    assert not server.is_alive() and viewer.stopped.is_set()
    local = (f"http://127.0.0.1:{viewer.port}", f"ws://127.0.0.1:{viewer.port}", "data:", "blob:")
    assert requests and all(u.startswith(local) for u in requests), requests  # nothing fetched elsewhere

    from PIL import Image

    a = np.asarray(Image.open(tmp_path / "before.png").convert("RGB")).astype(float)
    b = np.asarray(Image.open(tmp_path / "after.png").convert("RGB")).astype(float)
    assert before and after
    r = int(
        0.25
        * abs(full.K[1, 1].item())
        * SPHERE_R
        / float((full.center - SPHERE_C).norm())
        * box["height"]
        / full.height
    )
    on = [(int(y) + dy, int(x) + dx) for dy, dx in ((r, 0), (-r, 0), (0, r), (0, -r))]
    for py, px in on:  # the sphere is tinted blue (the click marker at the centre is left out)
        assert (
            b[py - 2 : py + 3, px - 2 : px + 3, 2].mean() - a[py - 2 : py + 3, px - 2 : px + 3, 2].mean() > 40
        )
    plane = (int(box["height"] * 0.85), int(box["width"] * 0.2))  # the checker plane, bottom left
    assert (
        np.abs(
            b[plane[0] - 3 : plane[0] + 4, plane[1] - 3 : plane[1] + 4]
            - a[plane[0] - 3 : plane[0] + 4, plane[1] - 3 : plane[1] + 4]
        ).mean()
        < 8
    )

    from sags.gaussians import load_ply

    d = viewer.last_export
    scene_ply, labels = load_ply(d / "scene.ply"), np.load(d / "labels.npy")
    obj = load_ply(d / "object.ply")
    assert torch.allclose(obj["means"], scene_ply["means"][torch.from_numpy(labels == 1)])
    assert _iou(scene_ply, labels) > 0.8
    if os.environ.get("SAGS_VIEW_SCREENSHOT"):
        shutil.copy(tmp_path / "after.png", os.environ["SAGS_VIEW_SCREENSHOT"])
