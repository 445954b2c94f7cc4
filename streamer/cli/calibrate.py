"""`persense calibrate`: millimetres on the belt from one image of a printed checkerboard or ChArUco board."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np

from streamer.errors import UserError

_SIZE = re.compile(r"^(\d{1,3})x(\d{1,3})$")


def register(subparsers) -> None:
    from streamer.calibration import CHARUCO_DICTIONARIES

    parser = subparsers.add_parser(
        "calibrate",
        help="millimetres per pixel over the belt (tilt and lens distortion included) from an image of a board",
        description="Find a printed checkerboard or ChArUco board lying flat on the belt in IMAGE, fit the belt "
        "plane's homography and the lens's radial distortion, and write them as the camera's calibration into "
        "--config (stream.tally.camera_calibration.CAMERA; the file is created if missing, other settings kept, "
        "comments not). Take the image with the camera's own resolution and focus, the board covering as much of "
        "the frame as it can.",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the camera's image of the board on the belt")
    parser.add_argument("--board", choices=("checkerboard", "charuco"), default="checkerboard")
    parser.add_argument("--size", required=True, metavar="COLSxROWS",
                        help="checkerboard: inner corners (where four squares meet), e.g. 9x6; charuco: squares")
    parser.add_argument("--square-mm", type=float, required=True, help="a square's printed side in millimetres")
    parser.add_argument("--marker-mm", type=float, help="charuco: a marker's printed side in millimetres")
    parser.add_argument("--dictionary", choices=CHARUCO_DICTIONARIES, default="DICT_4X4_50",
                        help="charuco: the markers' dictionary (default DICT_4X4_50)")
    parser.add_argument("--camera", default="cam0", help="the camera id the calibration is for (default cam0)")
    parser.add_argument("--config", type=Path, required=True, metavar="YAML", help="the configuration to write into")
    parser.add_argument("--no-distortion", action="store_true", help="fit the homography only (a distortion-free "
                        "lens, or a board too small to show the distortion)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    parser.set_defaults(func=run)


def parse_board(args: argparse.Namespace):
    """The arguments -> a streamer.calibration.Board; UserError for a bad one."""
    from streamer.calibration import Board

    match = _SIZE.match(args.size.strip().lower())
    if not match:
        raise UserError(f"--size must be COLSxROWS, e.g. 9x6, got {args.size!r}")
    cols, rows = int(match.group(1)), int(match.group(2))
    least = 2 if args.board == "checkerboard" else 3
    if cols < least or rows < least:
        raise UserError(f"--size {args.size}: a {args.board} needs at least {least}x{least}")
    if not (math.isfinite(args.square_mm) and 0 < args.square_mm <= 10_000):
        raise UserError(f"--square-mm must be a length above 0 (mm), got {args.square_mm}")
    if args.board == "charuco":
        if args.marker_mm is None or not (math.isfinite(args.marker_mm) and 0 < args.marker_mm < args.square_mm):
            raise UserError("a charuco board needs --marker-mm, above 0 and smaller than --square-mm")
        return Board("charuco", cols, rows, args.square_mm, args.marker_mm, args.dictionary)
    return Board("checkerboard", cols, rows, args.square_mm)


def write_calibration(path: Path, camera: str, entry: dict) -> None:
    """Set stream.tally.camera_calibration.<camera> in the YAML at `path` (created if missing), checked by loading
    the result as a configuration before anything is written; UserError for a file that is not a configuration."""
    import yaml
    from pydantic import ValidationError

    from streamer.config import Config, read_yaml_mapping

    raw = read_yaml_mapping(path, "config") if path.exists() else {}
    section = raw
    for key in ("stream", "tally", "camera_calibration"):
        section = section.setdefault(key, {})
        if not isinstance(section, dict):
            raise UserError(f"config {path}: {key} must be a mapping")
    section[camera] = entry
    try:
        Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"config {path}: {where}: {first['msg']} (nothing written)") from None
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def run(args: argparse.Namespace) -> int:
    from streamer.calibration import BoardNotFound, calibrate
    from streamer.imageio import read_image
    from streamer.stream.config import _CAMERA_ID
    from streamer.tracking.belt_plane import BeltPlane

    if not _CAMERA_ID.match(args.camera):
        raise UserError("--camera must be 1-64 characters of letters, digits, '_', '.', '-'")
    board = parse_board(args)
    image = read_image(args.image, "image")
    try:
        found = calibrate(image, board, distortion=not args.no_distortion)
    except BoardNotFound as exc:
        raise UserError(f"{args.image}: {exc}") from None
    entry = found.to_config()
    plane = BeltPlane(None, found.homography, found.camera_matrix, found.distortion)
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height:max(height // 16, 1), 0:width:max(width // 16, 1)]
    scale = plane.local_px_per_mm(np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64))
    centre = float(plane.local_px_per_mm(np.array([[width / 2, height / 2]]))[0])
    print(f"{args.image}: {found.corners} corners, residual {found.rms_mm:.3f} mm; {centre:.4f} px/mm at the frame's "
          f"centre ({scale.min():.4f} to {scale.max():.4f} across the frame); lens k1 {found.distortion[0]:+.4f}, "
          f"k2 {found.distortion[1]:+.4f}")
    if args.dry_run:
        import yaml

        print(yaml.safe_dump({"stream": {"tally": {"camera_calibration": {args.camera: entry}}}}, sort_keys=False))
        return 0
    write_calibration(args.config, args.camera, entry)
    print(f"wrote stream.tally.camera_calibration.{args.camera} to {args.config}")
    return 0
