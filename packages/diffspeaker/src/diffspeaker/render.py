"""Pure-Python mesh rendering (matplotlib, Agg): shaded triangles, painter's algorithm, front view.

``render_sequence(verts (T,V,3), faces (F,3) | None) -> list of (H,W,3) uint8``; without faces the
vertices are drawn as points. ``save_video`` writes .mp4 (imageio-ffmpeg) or .gif.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def render_sequence(
    verts: np.ndarray,
    faces: np.ndarray | None,
    size: int = 256,
    title: str | None = None,
    color: tuple[float, float, float] = (0.75, 0.72, 0.68),
) -> list[np.ndarray]:
    """Render every frame of ``verts`` (T,V,3) looking along -z with x right, y up; fixed framing."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    verts = np.asarray(verts, dtype=np.float64)
    lo, hi = verts[..., :2].reshape(-1, 2).min(0), verts[..., :2].reshape(-1, 2).max(0)
    c, r = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.08 + 1e-9
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.text(0.02, 0.97, title, transform=ax.transAxes, va="top", fontsize=9)
    base = np.asarray(color)
    wire = faces is not None and 0 < len(faces) < 3000  # small meshes: show the edges too
    if faces is not None and len(faces):
        coll = PolyCollection(
            [],
            edgecolors=(0.25, 0.25, 0.3, 0.6) if wire else "none",
            linewidths=0.4 if wire else 0.0,
            antialiaseds=wire,
        )
        ax.add_collection(coll)
    else:
        pts = ax.scatter([], [], s=4)
    frames = []
    for v in verts:
        if faces is not None and len(faces):
            tri = v[faces]  # (F,3,3)
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            shade = np.abs(n[:, 2]) / (np.linalg.norm(n, axis=1) + 1e-12)
            order = np.argsort(tri[:, :, 2].mean(1))  # far (small z) first
            cols = np.clip(
                base[None]
                * ((0.6 + 0.4 * shade[order, None]) if wire else (0.25 + 0.75 * shade[order, None])),
                0,
                1,
            )
            coll.set_verts(tri[order][:, :, :2])
            coll.set_facecolors(np.concatenate([cols, np.ones((len(cols), 1))], 1))
        else:
            pts.set_offsets(v[:, :2])
            z = v[:, 2]
            pts.set_array((z - z.min()) / (np.ptp(z) + 1e-12))
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames


def side_by_side(*sequences: list[np.ndarray]) -> list[np.ndarray]:
    """Concatenate equally long frame lists horizontally."""
    return [np.concatenate(fs, axis=1) for fs in zip(*sequences)]


def save_video(
    frames: list[np.ndarray],
    path: str | Path,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> Path:
    """Write frames as .mp4 (H.264 via imageio-ffmpeg; ``audio`` muxed in when given) or .gif, atomically."""
    import imageio.v2 as imageio
    from vislab.io import atomic_path

    path = Path(path)
    if path.suffix.lower() == ".gif":
        with atomic_path(path) as tmp:
            imageio.mimsave(tmp, frames, format="GIF", duration=1000.0 / fps, loop=0)
        return path
    import subprocess
    import tempfile

    import imageio_ffmpeg
    import soundfile as sf

    with tempfile.TemporaryDirectory() as td:
        silent = Path(td) / "video.mp4"
        h, w = frames[0].shape[:2]
        frames = [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0))) for f in frames]
        writer = imageio.get_writer(
            silent, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p"
        )
        for f in frames:
            writer.append_data(f)
        writer.close()
        with atomic_path(path) as tmp:
            if audio is None:
                Path(tmp).write_bytes(silent.read_bytes())
            else:
                wav = Path(td) / "audio.wav"
                sf.write(wav, audio, sample_rate)
                cmd = [
                    imageio_ffmpeg.get_ffmpeg_exe(),
                    "-y",
                    "-loglevel",
                    "error",
                    "-i",
                    str(silent),
                    "-i",
                    str(wav),
                    "-c:v",
                    "copy",
                    "-c:a",
                    "aac",
                    "-shortest",
                    "-f",
                    "mp4",
                    str(tmp),
                ]
                subprocess.run(cmd, check=True, capture_output=True)
    return path
