"""The ``sdkit`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .errors import SdkitError, ValidationError

__all__ = ["main"]


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="what to draw")
    p.add_argument("--negative-prompt", default="", metavar="TEXT", help="what to keep out of the image")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the first image (random if left out; always recorded)",
    )
    p.add_argument("--steps", type=int, default=20, metavar="N", help="denoising steps (default 20)")
    p.add_argument("--cfg", type=float, default=7.5, metavar="F", help="guidance scale (default 7.5)")
    p.add_argument(
        "--size", default=None, metavar="WxH", help="image size, e.g. 512x512 (default: the model's native size)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="NAME",
        help='A1111 sampler name ("Euler a", "DPM++ 2M Karras", …) or diffusers class name',
    )
    p.add_argument(
        "--model",
        default="tiny",
        metavar="ID|PATH|tiny",
        help="diffusers model id, local folder, or an embedded model (tiny, tiny-random, tiny-sdxl)",
    )
    p.add_argument("--n", type=int, default=1, metavar="N", help="number of images (seeds SEED, SEED+1, …)")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sdkit",
        description="Stable Diffusion prompt work: generate images locally, read their parameters back.",
    )
    parser.add_argument("--version", action="version", version=f"sdkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = sub.add_parser(
        "generate",
        help="generate images and write them as PNGs",
        description="Generate images and write them as PNGs carrying their parameters "
        "(A1111 infotext and sdkit's JSON record). Prints each file's path, one a line.",
    )
    _add_generation_args(gen)
    gen.add_argument("--out", default="outputs", metavar="DIR", help="folder for the PNGs (default: outputs)")
    gen.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    gen.add_argument(
        "--dtype", default=None, help="auto (default: fp16 on GPU, fp32 on CPU), float32, float16, bfloat16"
    )
    gen.add_argument("--memory", default="none", help="memory preset: none, t4, low, minimal")
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=_cmd_generate)

    info = sub.add_parser(
        "info",
        help="print the parameters stored in an image",
        description="Print the parameters stored in a PNG: A1111 infotext and sdkit's record.",
    )
    info.add_argument("image", help="a PNG file")
    info.add_argument("--json", action="store_true", help="print everything as one JSON object")
    info.set_defaults(func=_cmd_info)
    return parser


def _params_from_args(args: argparse.Namespace):
    from .params import GenerationParams, parse_size

    width = height = None
    if args.size:
        width, height = parse_size(args.size)
    return GenerationParams(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        seed=args.seed,
        num_inference_steps=args.steps,
        guidance_scale=args.cfg,
        width=width,
        height=height,
        scheduler=args.scheduler,
        num_images=args.n,
        model=args.model,
    )


def _cmd_generate(args: argparse.Namespace) -> int:
    from .local import LocalBackend
    from .pngfile import save_result

    params = _params_from_args(args)
    backend = LocalBackend(device=args.device, dtype=args.dtype, memory=args.memory, progress=not args.no_progress)
    result = backend.generate(params)
    for path in save_result(result, args.out):
        print(path)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .pngfile import read_png_metadata

    if not os.path.isfile(args.image):
        raise ValidationError("image", args.image, "no such file")
    try:
        meta = read_png_metadata(args.image)
    except OSError as exc:
        raise ValidationError("image", args.image, f"cannot be read as an image: {exc}") from None
    if args.json:
        print(json.dumps(meta, indent=2, ensure_ascii=False))
        return 0
    if "parameters" not in meta and "sdkit" not in meta:
        print(f"{args.image}: no generation parameters found", file=sys.stderr)
        return 1
    if "parameters" in meta:
        print(meta["text"]["parameters"])
    if meta.get("sdkit"):
        print()
        print("sdkit record:")
        print(json.dumps(meta["sdkit"], indent=2, ensure_ascii=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad input)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:
        print(f"sdkit: error: {exc}", file=sys.stderr)
        return 2
    except SdkitError as exc:
        print(f"sdkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sdkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
