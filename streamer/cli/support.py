"""`persense support`: make a support mask by pointing at the product, no paint program needed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from streamer.cli.common import add_config_argument, config_from_args
from streamer.errors import UserError
from streamer.imageio import read_image, write_image
from streamer.persense.pick import check_point, parse_point, pick_object
from streamer.pick_checks import background_warning

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "support",
        help="make a support mask: the configured decoder's mask of the object at a point",
        description="Write the mask the configured engines' decoder makes at --point on --image (white object "
        "on black, the image's size): with the image, it is the support set of `persense segment` and `run`.",
    )
    parser.add_argument("--image", type=Path, required=True, metavar="IMAGE", help="an image showing the product")
    parser.add_argument("--point", required=True, metavar="X,Y", help="a pixel inside one product, e.g. 120,80")
    add_config_argument(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="MASK.png", help="the mask to write (PNG)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.engine_factory import build_engines

    point = parse_point(args.point)
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file (a lossless mask), got {args.out.name}")
    image = read_image(args.image, "image")
    check_point(point, image.shape[:2])  # before the models load
    config = config_from_args(args)
    pick = pick_object(build_engines(config.engines), image, point)
    for warning in (background_warning(image, pick.mask), pick.warning):
        if warning:
            log.warning("%s", warning)
    write_image(args.out, pick.mask.astype(np.uint8) * 255)
    x0, y0, x1, y1 = pick.bbox
    print(f"{args.out}: {pick.area} px object at x {x0}-{x1}, y {y0}-{y1} (decoder score {pick.score:.2f}); use it "
          f"as --support {args.image} --support-mask {args.out}")
    return 0
