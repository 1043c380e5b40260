"""``sags view RUN_DIR_OR_PLY``: the scene in the browser (viser), click an object to segment it with SA-GS.

Each browser tab gets a render thread: frames come from gsplat's CUDA rasteriser on a GPU or from
our CPU rasteriser, at ``move_res`` pixels high while the camera moves and at ``res`` once it
stops, and are sent to the page as its background image (with depth, so the click markers are
occluded correctly). A click (shift-click: negative) runs :meth:`ViewSession.click`; the panel
holds the view mode, the Gaussian Decomposition switch, the τ slider, export and the edits. Errors
from the user's actions end up as one line in the panel, never as a traceback.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from vislab.errors import VislabError

from sags.view_scene import (
    MODES,
    ViewInput,
    ViewSession,
    camera_from_pose,
    camera_pose,
    scene_target,
    scene_up,
    screen_to_pixel,
)


def check_port(host: str, port: int) -> None:
    """Raise :class:`VislabError` when ``host:port`` cannot be bound (in use, or not a local address)."""
    if not 0 < int(port) < 65536:
        raise VislabError(f"--port {port} is not a TCP port (1..65535)")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise VislabError(
                f"cannot serve on {host}:{port}: {e.strerror or e} (is another server using the port? choose one with --port)"
            ) from None


class _ClientRenderer(threading.Thread):
    """Renders one browser tab's view whenever its camera, the scene or the view mode changes."""

    def __init__(self, viewer: Viewer, client):
        super().__init__(daemon=True, name=f"sags-view-render-{client.client_id}")
        self.viewer, self.client = viewer, client
        self.wake = threading.Event()
        self.alive = True
        self.last_move = 0.0
        self.last_key = None
        self.frames = 0
        self.last_seconds = float("nan")

    def moved(self) -> None:
        self.last_move = time.monotonic()
        self.wake.set()

    def run(self) -> None:
        v = self.viewer
        while self.alive and not v.stopped.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            try:
                cam = self.client.camera
                wxyz, pos, fov, aspect = cam.wxyz, cam.position, cam.fov, cam.aspect
                canvas_h = int(cam.image_height or 0)
            except (AssertionError, AttributeError):  # no camera message from the page yet
                continue
            moving = time.monotonic() - self.last_move < v.settle_seconds
            h = v.move_res if moving else v.res
            if canvas_h > 0:
                h = min(h, canvas_h)
            key = (
                v.session.version,
                v.mode,
                tuple(np.round(wxyz, 6)),
                tuple(np.round(pos, 6)),
                fov,
                aspect,
                h,
            )
            if key == self.last_key:
                continue
            try:
                t0 = time.perf_counter()
                c = camera_from_pose(wxyz, pos, fov, aspect, h)
                rgb, alpha, depth = v.session.render(c, v.mode)
                depth = np.where(alpha > 0.5, depth, 1e3).astype(np.float32)
                self.client.scene.set_background_image(rgb, format="jpeg", jpeg_quality=92, depth=depth)
                self.last_seconds = time.perf_counter() - t0
                self.frames += 1
                self.last_key = key
                v.frame_info(self)
            except Exception as e:  # noqa: BLE001 - a failed frame must not kill the viewer
                if not v.stopped.is_set():
                    v.message(f"render failed: {e.__class__.__name__}: {str(e)[:160]}")
                time.sleep(0.5)


class Viewer:
    """A viser server showing a :class:`ViewSession`; ``serve()`` blocks (bounded by ``max_seconds``)."""

    def __init__(
        self,
        inp: ViewInput,
        host: str = "127.0.0.1",
        port: int = 8080,
        res: int | None = None,
        move_res: int | None = None,
        device: str | None = None,
        export_dir: str | Path | None = None,
        verbose: bool = False,
    ):
        import viser

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        gpu = str(dev).startswith("cuda")
        self.res = int(res or (1024 if gpu else 256))
        self.move_res = int(move_res or (384 if gpu else 72))
        self.settle_seconds = 0.25
        # the clicked view is rendered at the size of the scene's first camera (the masks' resolution)
        c0 = inp.cameras[0] if inp.cameras else None
        self.seg_h = c0.height if c0 else 256
        self.seg_w = c0.width if c0 else None
        self.export_dir = export_dir
        self.session = ViewSession(inp, dev)
        if inp.cameras:
            self.session.provider()  # a missing or wrong SAM checkpoint fails here, before serving
        self.mode = MODES[0]
        self.stopped = threading.Event()
        self.renderers: dict[int, _ClientRenderer] = {}
        self.last_message = ""
        self.last_export: Path | None = None
        self._clicks_node = None
        check_port(host, port)
        self.server = viser.ViserServer(host=host, port=port, label="sags view", verbose=verbose)
        if self.server.get_port() != int(port):  # viser moves on to the next free port by itself
            self.server.stop()
            raise VislabError(f"cannot serve on {host}:{port}: the port is in use; choose one with --port")
        self.host, self.port = host, int(port)
        self._setup_scene(inp)
        self._setup_gui(inp)
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        self.server.scene.on_click()(lambda ev: self._on_click(ev, True))
        self.server.scene.on_click(modifier="shift")(lambda ev: self._on_click(ev, False))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- set-up
    def _setup_scene(self, inp: ViewInput) -> None:
        s = self.server
        s.scene.world_axes.visible = False
        if inp.cameras:
            up = scene_up(inp.cameras)
            s.scene.set_up_direction(tuple(float(x) for x in up))
            pz = camera_pose(inp.cameras[0])
            target = scene_target(inp.cameras)
            fwd = pz["forward"] / np.linalg.norm(pz["forward"])
            dist = max(float((target - pz["position"]) @ fwd), 1e-3)
            s.initial_camera.position = tuple(pz["position"])
            s.initial_camera.look_at = tuple(pz["position"] + dist * fwd)
            s.initial_camera.up = tuple(float(x) for x in up)
            s.initial_camera.fov = float(pz["fov"])
        else:
            mu = inp.splats["means"].float()
            c = mu.median(0).values.numpy()
            r = float((mu - mu.median(0).values).norm(dim=-1).quantile(0.9))
            s.initial_camera.position = tuple(c + np.array([2.0, 0.0, 1.0]) * max(r, 1e-3))
            s.initial_camera.look_at = tuple(c)

    def _setup_gui(self, inp: ViewInput) -> None:
        g = self.server.gui
        g.configure_theme(control_layout="floating", control_width="medium", dark_mode=False)
        g.add_markdown(
            "**SA-GS** — click an object to segment it (shift-click: not this). "
            f"Masks: `{inp.provider['name']}`; {len(inp.splats['means'])} Gaussians."
        )
        self.status = g.add_markdown(" ")
        self.progress = g.add_progress_bar(0.0, visible=False, animated=True)
        self.mode_gui = g.add_dropdown("Show", MODES, initial_value=self.mode)
        self.gd_gui = g.add_checkbox("Gaussian Decomposition", initial_value=self.session.gd)
        self.tau_gui = g.add_slider(
            "τ (vote threshold)", min=0.05, max=0.95, step=0.05, initial_value=round(self.session.tau, 2)
        )
        self.clear_gui = g.add_button("Clear clicks")
        self.export_gui = g.add_button("Export segmented PLY")
        with g.add_folder("Edit object", expand_by_default=False):
            self.remove_gui = g.add_button("Remove object")
            self.t_gui = g.add_vector3("Translation", initial_value=(0.1, 0.0, 0.0), step=0.01)
            self.translate_gui = g.add_button("Translate")
            self.axis_gui = g.add_vector3(
                "Rotation axis", initial_value=tuple(float(x) for x in self._up()), step=0.1
            )
            self.deg_gui = g.add_number("Degrees", initial_value=30.0, step=1.0)
            self.rotate_gui = g.add_button("Rotate")
            self.undo_gui = g.add_button("Undo edits")
        with g.add_folder("Rendering", expand_by_default=False):
            self.res_gui = g.add_slider(
                "Resolution (still)", min=32, max=2048, step=8, initial_value=self.res
            )
            self.fps_gui = g.add_markdown(" ")
        self.mode_gui.on_update(lambda _: self._set_mode(self.mode_gui.value))
        self.gd_gui.on_update(lambda _: self._guarded(lambda: self.session.set_options(gd=self.gd_gui.value)))
        self.tau_gui.on_update(
            lambda _: self._guarded(lambda: self.session.set_options(tau=self.tau_gui.value))
        )
        self.clear_gui.on_click(lambda _: self._guarded(self._clear))
        self.export_gui.on_click(lambda _: self._guarded(self._export))
        self.remove_gui.on_click(lambda _: self._guarded(lambda: self.session.edit("remove")))
        self.translate_gui.on_click(
            lambda _: self._guarded(
                lambda: self.session.edit("translate", [float(x) for x in self.t_gui.value])
            )
        )
        self.rotate_gui.on_click(
            lambda _: self._guarded(
                lambda: self.session.edit(
                    "rotate", ([float(x) for x in self.axis_gui.value], float(self.deg_gui.value))
                )
            )
        )
        self.undo_gui.on_click(lambda _: self._guarded(self.session.undo_edits))
        self.res_gui.on_update(lambda _: self._set_res(int(self.res_gui.value)))
        for n in inp.notes:
            self.message(n)
        if not inp.notes:
            self.message("click an object" if inp.cameras else "viewing only: no cameras.json")

    def _up(self) -> np.ndarray:
        return scene_up(self.session.cams) if self.session.cams else np.array([0.0, 0.0, 1.0])

    # -- clients
    def _connect(self, client) -> None:
        r = _ClientRenderer(self, client)
        self.renderers[client.client_id] = r
        client.camera.on_update(lambda _: r.moved())
        r.start()

    def _disconnect(self, client) -> None:
        r = self.renderers.pop(client.client_id, None)
        if r is not None:
            r.alive = False
            r.wake.set()

    def _redraw(self) -> None:
        for r in list(self.renderers.values()):
            r.wake.set()

    def frame_info(self, r: _ClientRenderer) -> None:
        self.fps_gui.content = f"last frame {r.last_seconds * 1000:.0f} ms ({self.session.device.type})"

    # -- panel actions
    def message(self, text: str) -> None:
        """Show one line in the panel (the last message wins) and on the console."""
        self.last_message = text
        self.status.content = text
        print(f"sags view: {text}", file=sys.stderr, flush=True)

    def _guarded(self, fn) -> None:
        """Run a panel action; a user error or a failure becomes one line in the panel."""
        try:
            out = fn()
            if isinstance(out, str):
                self.message(out)
        except VislabError as e:
            self.message(f"⚠ {e}")
        except Exception as e:  # noqa: BLE001 - the viewer keeps running
            self.message(f"⚠ failed: {e.__class__.__name__}: {str(e)[:200]}")
        self._redraw()

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self._redraw()

    def _set_res(self, res: int) -> None:
        self.res = res
        self._redraw()

    def _clear(self) -> str:
        self.session.clear()
        self._draw_clicks()
        return "clicks cleared"

    def _export(self) -> str:
        d = self.session.export(self.export_dir)
        self.last_export = d
        return f"exported {d / 'object.ply'} (+ scene.ply, labels.npy, background.ply)"

    def _progress(self, items: Iterable, desc: str):
        items = list(items)
        for i, x in enumerate(items):
            self.progress.value = 100.0 * i / max(len(items), 1)
            self.status.content = f"segmenting… {desc} {i + 1}/{len(items)}"
            yield x
        self.progress.value = 100.0

    def _on_click(self, ev, positive: bool) -> None:
        cam = ev.client.camera
        wxyz, pos, fov, aspect = cam.wxyz, cam.position, cam.fov, cam.aspect
        c = camera_from_pose(wxyz, pos, fov, aspect, self.seg_h, self.seg_w)
        x, y = screen_to_pixel(c, fov, aspect, *ev.screen_pos)
        self.progress.value = 0.0
        self.progress.visible = True
        self.status.content = "segmenting…"
        try:
            self._guarded(lambda: self.session.click(c, x, y, positive, progress=self._progress))
        finally:
            self.progress.visible = False
        self._draw_clicks()

    def _draw_clicks(self) -> None:
        """The lifted clicks as dots (green: object, red: not the object)."""
        if self._clicks_node is not None:
            self._clicks_node.remove()
            self._clicks_node = None
        seg = self.session.seg
        if seg is None or not self.session.clicks:
            return
        pts = seg.prompts3d.numpy().astype(np.float32)
        col = np.where(seg.prompt_labels[:, None] == 1, [[40, 220, 60]], [[230, 40, 40]]).astype(np.uint8)
        size = 0.01 * (self._scene_extent() or 1.0)
        self._clicks_node = self.server.scene.add_point_cloud(
            "/clicks", pts, col, point_size=size, point_shape="circle"
        )

    def _scene_extent(self) -> float:
        if self.session.cams:
            from sags.cameras import scene_scale

            return scene_scale(self.session.cams)
        return 1.0

    # -- life cycle
    def serve(self, max_seconds: float | None = None) -> None:
        """Block until :meth:`stop`, Ctrl+C or ``max_seconds``; then stop the server."""
        t_end = None if max_seconds is None else time.monotonic() + float(max_seconds)
        try:
            while not self.stopped.is_set():
                left = 0.5 if t_end is None else min(0.5, t_end - time.monotonic())
                if left <= 0:
                    break
                self.stopped.wait(left)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        for r in list(self.renderers.values()):
            r.alive = False
            r.wake.set()
        self.server.stop()
        for r in list(self.renderers.values()):
            r.join(timeout=5)


def view_main(argv: list[str]) -> int:
    """``sags view``: serve the scene in the browser."""
    from sags.view_scene import load_view_input

    p = argparse.ArgumentParser(
        prog="sags view",
        description="Open a 3DGS scene in the browser; click an object to segment it with SA-GS, then export or edit it.",
    )
    p.add_argument("path", help="run folder (runs/sags/<timestamp>), 3DGS output folder, or an INRIA .ply")
    p.add_argument("--port", type=int, default=8080, help="HTTP/websocket port (default 8080)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--cameras",
        default=None,
        help="cameras.json / transforms.json / COLMAP sparse/0 (default: found beside the PLY)",
    )
    from vislab.cmdline import Option, add_config_options

    add_config_options(
        p,
        "sags",
        {
            "--provider": Option("segment.provider", choices=("sam", "floodfill"), help="mask provider"),
            "--sam-type": Option("segment.sam_type"),
            "--sam-checkpoint": Option("segment.sam_checkpoint", help="local SAM checkpoint (sam_vit_b_01ec64.pth, ...)"),
        },
        unset="the run's config",
    )
    p.add_argument("--background", default=None, help="r,g,b in [0,1] (default: the run's, else black)")
    p.add_argument(
        "--res", type=int, default=None, help="frame height when the camera is still (CPU 256, GPU 1024)"
    )
    p.add_argument(
        "--move-res", type=int, default=None, help="frame height while the camera moves (CPU 72, GPU 384)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", default=None, help="export folder (default: <run>/view_exports)")
    p.add_argument("--max-seconds", type=float, default=None, help="stop the server after this many seconds")
    a = p.parse_args(argv)
    bg = None
    if a.background:
        try:
            bg = tuple(float(x) for x in a.background.split(","))
        except ValueError:
            bg = ()
        if len(bg) != 3:
            raise VislabError(f"--background {a.background!r}: expected r,g,b")
    check_port(a.host, a.port)  # before loading a large scene
    inp = load_view_input(a.path, a.cameras, a.provider, a.sam_type, a.sam_checkpoint, bg, a.out)
    v = Viewer(inp, a.host, a.port, a.res, a.move_res, a.device, a.out)
    print(
        f"sags view: {inp.source} ({len(inp.splats['means'])} Gaussians, "
        f"{len(inp.cameras) if inp.cameras else 0} cameras) at {v.url}  (Ctrl+C stops)",
        flush=True,
    )
    try:
        v.serve(a.max_seconds)
    except KeyboardInterrupt:
        v.stop()
    return 0


__all__ = ["Viewer", "view_main", "check_port"]
