"""The ``sdkit`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from sdkit import __version__
from sdkit.backends.base import check
from sdkit.backends.registry import backend_kinds, backend_options, create_backend
from sdkit.backends.relay.apirequest import DEFAULT_API_MODEL, ChatRequest, ImagesRequest, SDExtras
from sdkit.backends.relay.credentials import resolve_api_key, resolve_base_url
from sdkit.backends.relay.expand import EXPANSIONS_DIR, expand_count, resolve_expand_axes
from sdkit.backends.relay.snippet import export_request
from sdkit.cli.expand import add_chat_args, add_expand_parser, chat_options
from sdkit.errors import SdkitError, ValidationError
from sdkit.metadata.imagemeta import read_image_metadata
from sdkit.metadata.pngfile import save_result
from sdkit.params import DEFAULT_MODEL, GenerationParams, parse_size
from sdkit.studies.folder import study_sweep
from sdkit.studies.report import write_report
from sdkit.studies.run import backend_options as study_backend_options
from sdkit.studies.run import run_study
from sdkit.studies.spec import parse_study_spec
from sdkit.studies.verify import verify_study
from sdkit.sweeps.axis import prompt_axis
from sdkit.sweeps.runner import resume_seed, run_sweep
from sdkit.sweeps.sweep import Sweep, parse_seeds

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
        default=DEFAULT_MODEL,
        metavar="ID|PATH|tiny",
        help="diffusers model id, local folder, or an embedded model (tiny, tiny-random, tiny-sdxl)",
    )
    p.add_argument("--n", type=int, default=1, metavar="N", help="number of images (seeds SEED, SEED+1, …)")
    _add_clip_skip(p)
    _add_mode_args(p)
    _add_lora_args(p)


def _add_clip_skip(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--clip-skip",
        type=int,
        default=None,
        metavar="N",
        help="CLIP skip as in A1111: 1 = the text encoder's last layer (the default), 2 = the one before, …",
    )


def _add_mode_args(p: argparse.ArgumentParser) -> None:
    """Variation seeds, img2img and hires fix (issue 16); only what is given reaches GenerationParams."""
    m = p.add_argument_group("variation, img2img, hires fix")
    m.add_argument("--variation-seed", type=int, default=None, metavar="N", help="A1111's variation seed")
    m.add_argument(
        "--variation-strength", type=float, default=None, metavar="F", help="0 = the seed, 1 = the variation seed"
    )
    m.add_argument("--init-image", default=None, metavar="PATH|URL", help="img2img: the picture to start from")
    m.add_argument(
        "--strength", type=float, default=None, metavar="F", help="img2img denoising strength 0-1 (default 0.75)"
    )
    m.add_argument("--hires-scale", type=float, default=None, metavar="F", help="hires fix: upscale by F (e.g. 2)")
    m.add_argument("--hires-steps", type=int, default=None, metavar="N", help="hires pass steps (default: --steps)")
    m.add_argument("--hires-denoising", type=float, default=None, metavar="F", help="hires pass strength (default 0.5)")
    m.add_argument("--hires-upscaler", default=None, metavar="NAME", help="latent (default) or lanczos")


def _mode_fields(args: argparse.Namespace) -> dict[str, object]:
    names = {"variation_seed": "variation_seed", "variation_strength": "variation_strength", "init_image": "init_image",
             "strength": "denoising_strength", "hires_scale": "hires_scale", "hires_steps": "hires_steps",
             "hires_denoising": "hires_denoising", "hires_upscaler": "hires_upscaler"}  # fmt: skip
    return {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg, None) is not None}


def _add_lora_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="NAME[:W]",
        help="apply a LoRA at weight W (default 1), like <lora:NAME:W> in the prompt; repeatable",
    )
    p.add_argument(
        "--lora-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of LoRA .safetensors files (searched before $SDKIT_LORA_DIR and the model's own); repeatable",
    )


def _loras_from_args(args: argparse.Namespace) -> tuple[tuple[str, float], ...]:
    """``--lora NAME:W`` → ``(NAME, W)``; the weight is 1 when left out."""
    out = []
    for text in getattr(args, "lora", None) or ():
        name, sep, weight = text.rpartition(":")
        if not sep:
            name, weight = text, "1"
        try:
            out.append((name, float(weight)))
        except ValueError:
            raise ValidationError("--lora", text, "must be NAME or NAME:WEIGHT, e.g. hexagon:0.8") from None
    return tuple(out)


def _threads(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be "auto" or a positive integer, not {text!r}')
    return value


def _add_cpu_args(p: argparse.ArgumentParser) -> None:
    cpu = p.add_argument_group("CPU", "how the local pipeline uses the CPU (recorded with every image)")
    cpu.add_argument(
        "--threads",
        type=_threads,
        default="auto",
        metavar="N|auto",
        help="torch threads (default auto: 1 for small calls such as one tiny image, one per core for larger ones)",
    )
    p.add_argument(
        "--embeddings",
        default=None,
        metavar="DIR",
        help="folder of textual-inversion embeddings, used where their file name is a word of the prompt "
        "(default: $SDKIT_EMBEDDINGS_DIR)",
    )
    cpu.add_argument(
        "--portable",
        action="store_true",
        help="the same pixels on any x86-64 CPU with AVX2 (one thread, AVX2 kernels, no oneDNN; slower)",
    )


def _backend_from_args(
    args: argparse.Namespace, params: list[GenerationParams], *, progress: bool, with_options: bool = False
):
    """The backend ``--backend KIND`` names, built through the registry with the options the command line
    gave (flags and ``--backend-option KEY=VALUE``); it checks ``params`` before any work when it can."""

    flags = {
        "device": args.device,
        "dtype": args.dtype,
        "memory": None if args.memory == "none" else args.memory,  # the defaults are the backend's own
        "threads": None if args.threads == "auto" else args.threads,
        "portable": args.portable or None,
        "embeddings": getattr(args, "embeddings", None),
        "max_batch": getattr(args, "max_batch", None),
        "base_url": args.base_url,
        "sd_extras": args.sd_extras or None,
        "timeout": args.timeout,
        "max_retries": args.max_retries,
        "lora_dirs": getattr(args, "lora_dir", None) or None,
    }
    options = {name: value for name, value in flags.items() if value is not None}
    options.update(args.backend_option)
    accepted = backend_options(args.backend)
    if accepted is None or "progress" in accepted:
        options.setdefault("progress", progress)
    backend = create_backend(args.backend, **options)
    check(backend, params)
    return (backend, options) if with_options else backend


def _backend_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` → (key, value); the value is read as JSON when it is JSON (numbers, true, null), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE, e.g. max_concurrency=4")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _build_parser() -> argparse.ArgumentParser:
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
    _add_cpu_args(gen)
    _add_remote_args(gen)
    gen.set_defaults(func=_cmd_generate)

    info = sub.add_parser(
        "info",
        help="print the parameters stored in an image",
        description="Print the parameters stored in an image: sdkit's record, A1111 infotext (PNG, or EXIF in "
        "JPEG/WebP), ComfyUI or InvokeAI metadata.",
    )
    info.add_argument("image", help="a PNG, JPEG or WebP file")
    info.add_argument("--json", action="store_true", help="print everything as one JSON object")
    info.set_defaults(func=_cmd_info)
    _add_request_parser(sub)
    _add_sweep_parser(sub)
    _add_study_parser(sub)
    add_expand_parser(sub)
    _add_serve_parser(sub)
    _add_convert_parser(sub)
    return parser


def _add_convert_parser(sub) -> None:
    conv = sub.add_parser(
        "convert",
        help="write a diffusers model as one .safetensors checkpoint (A1111/Civitai layout)",
        description="Write an SD 1.x-family diffusers folder (or an embedded model) as one original-layout "
        ".safetensors file that A1111-style tools and `--model FILE` load; its configs travel in the file's "
        "metadata, so sdkit loads it offline. Prints the file and its A1111 Model hash.",
    )
    conv.add_argument("model", help="a diffusers folder or an embedded model (tiny-random)")
    conv.add_argument("out", help="the .safetensors file to write (never overwritten)")
    conv.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    from sdkit.backends.local.embedded import embedded_model_path, is_embedded
    from sdkit.checkpoint import file_sha256, write_single_file

    if os.path.exists(args.out):
        raise ValidationError("out", args.out, "exists; give a new file name")
    folder = embedded_model_path(args.model) if is_embedded(args.model) else args.model
    path = write_single_file(folder, args.out)
    print(f"{path}  Model hash: {file_sha256(path)[:10]}")
    return 0


def _add_serve_parser(sub) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve the OpenAI-style Stable Diffusion API from a local pipeline",
        description="Serve POST /v1/chat/completions, POST /v1/images/generations, GET /v1/models and GET /health "
        "from a local diffusers pipeline (FastAPI + uvicorn). Keys also come from $SDKIT_SERVER_API_KEYS "
        "(comma-separated) or --api-key-file. The port is taken and the model loaded before anything is served: "
        "either failing exits with status 1.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="ID|PATH|tiny",
        help="diffusers model id, local folder, or tiny (default)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept this Bearer key (repeatable); other users of this machine can read it in ps: "
        "prefer --api-key-file or $SDKIT_SERVER_API_KEYS",
    )
    serve.add_argument(
        "--api-key-file", default=None, metavar="PATH", help="accept the keys in this file (one per line)"
    )
    serve.add_argument("--max-queue", type=int, default=32, metavar="N", help="requests that may wait (then 429)")
    serve.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="pipelines run at once, each its own copy (default 1)"
    )
    serve.add_argument("--max-images", type=int, default=4, metavar="N", help="images per request at most (default 4)")
    serve.add_argument("--public-url", default=None, metavar="URL", help="base of image URLs (e.g. a tunnel's address)")
    serve.add_argument(
        "--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps; cuda:0,cuda:1 serves from each GPU"
    )
    serve.add_argument(
        "--dtype", default=None, help="auto (default: fp16 on GPU, fp32 on CPU), float32, float16, bfloat16"
    )
    serve.add_argument("--memory", default="none", help="memory preset: none, t4, low, minimal")
    _add_cpu_args(serve)
    serve.add_argument(
        "--max-work",
        type=int,
        default=None,
        metavar="PIXEL_STEPS",
        help="most work one request may ask for, width × height × steps × images "
        "(default: the model's native size × 200 steps, e.g. 512×512×200 for SD 1.5)",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a request not done by then is stopped and answered 504 (default 300)",
    )
    serve.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from sdkit.server.auth import exposure_warning, keys_from_env  # the serve extra: imported when serving
    from sdkit.server.serve import run_server

    keys = (*keys_from_env(), *args.api_key, *_keys_from_file(args.api_key_file))
    if (message := exposure_warning(args.host, keys)) is not None:
        print(f"sdkit: warning: {message}", file=sys.stderr)
    run_server(
        host=args.host,
        port=args.port,
        api_keys=keys,
        model=args.model,
        max_queue=args.max_queue,
        concurrency=args.concurrency,
        max_images=args.max_images,
        public_url=args.public_url,
        device=args.device,
        dtype=args.dtype,
        memory=args.memory,
        threads=args.threads,
        portable=args.portable,
        embeddings=args.embeddings,
        max_work=args.max_work,
        request_timeout_s=args.timeout,
    )
    return 0


def _keys_from_file(path: str | None) -> tuple[str, ...]:
    """The keys in a file, one per line (blank lines and ``#`` comments skipped)."""
    if path is None:
        return ()
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError("--api-key-file", path, f"cannot be read: {exc}") from None
    keys = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise ValidationError("--api-key-file", path, "holds no key (one per line)")
    return keys


def _params_from_args(args: argparse.Namespace):
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
        clip_skip=getattr(args, "clip_skip", None),
        **_mode_fields(args),
        loras=_loras_from_args(args),
    )


def _check_out(folder: str) -> None:
    """Refuse an output folder that cannot be written, before any generation (it is created now)."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValidationError("out", folder, "is a file; --out takes a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValidationError("out", folder, f"cannot write there: {exc.strerror or exc}") from None


def _cmd_generate(args: argparse.Namespace) -> int:
    params = _params_from_args(args)
    backend = _backend_from_args(args, [params], progress=not args.no_progress)
    _check_out(args.out)
    result = backend.generate(params)
    for path in save_result(result, args.out):
        print(path)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    if os.path.isdir(args.image):
        raise ValidationError("image", args.image, "is a folder; give an image file (PNG, JPEG or WebP)")
    if not os.path.isfile(args.image):
        raise ValidationError("image", args.image, "no such file")
    try:
        meta = read_image_metadata(args.image)
    except OSError as exc:
        raise ValidationError("image", args.image, f"cannot be read as an image: {exc}") from None
    if args.json:
        print(json.dumps(dataclasses.asdict(meta), indent=2, ensure_ascii=False, default=str))
        return 0
    if meta.source is None:
        print(f"{args.image}: no generation parameters found", file=sys.stderr)
        return 1
    if "parameters" in meta.raw and meta.source in ("sdkit", "a1111"):  # Fooocus keeps JSON there
        print(meta.raw["parameters"])
    else:
        print(f"read from {meta.source} metadata:")
        for field in (
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "guidance_scale",
            "width",
            "height",
            "sampler",
            "model",
        ):
            value = getattr(meta, field)
            if value is not None:
                print(f"  {field}: {value}")
    if meta.record:
        print()
        print("sdkit record:")
        print(json.dumps(meta.record, indent=2, ensure_ascii=False))
    return 0


def _add_remote_args(p: argparse.ArgumentParser) -> None:
    remote = p.add_argument_group(
        "Backends",
        "Generate locally (default) or through an API. An API key is read from SDKIT_API_KEY "
        "(or OPENAI_API_KEY), never from the command line.",
    )
    remote.add_argument(
        "--backend",
        default="local",
        metavar="KIND",
        help=f"{', '.join(backend_kinds())} (chat: /v1/chat/completions, images: /v1/images/generations; "
        "installed packages may add kinds); default local",
    )
    remote.add_argument(
        "--backend-option",
        type=_backend_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the backend, e.g. max_concurrency=4 (repeatable)",
    )
    remote.add_argument("--base-url", default=None, metavar="URL", help="API base URL (default: $SDKIT_BASE_URL)")
    remote.add_argument(
        "--sd-extras",
        action="store_true",
        help="also send seed, negative prompt, steps, CFG and size as top-level fields (some relays refuse them)",
    )
    remote.add_argument("--timeout", type=float, default=None, metavar="S", help="seconds to wait for a reply")
    remote.add_argument("--max-retries", type=int, default=None, metavar="N", help="retries after the first try")


def _add_request_parser(sub) -> None:
    req = sub.add_parser(
        "request",
        help="print an API request as a ready-to-run snippet (curl, Python, JavaScript)",
        description="Print the API request for PROMPT as a snippet to run elsewhere. The key is read from "
        "$SDKIT_API_KEY when the snippet runs, unless --include-key writes it in.",
    )
    req.add_argument("prompt", help="the SD prompt (the user message)")
    lang = req.add_mutually_exclusive_group()
    lang.add_argument("--curl", dest="language", action="store_const", const="curl", help="curl (the default)")
    lang.add_argument("--python", dest="language", action="store_const", const="python", help="Python with httpx")
    lang.add_argument("--js", dest="language", action="store_const", const="js", help="JavaScript fetch")
    req.add_argument("--backend", choices=("chat", "images"), default="chat", help="which endpoint (default chat)")
    req.add_argument("--base-url", default=None, metavar="URL", help="API base URL (default: $SDKIT_BASE_URL)")
    req.add_argument("--model", default=DEFAULT_API_MODEL, metavar="NAME", help=f"default {DEFAULT_API_MODEL}")
    req.add_argument(
        "--include-key", action="store_true", help="write the key from $SDKIT_API_KEY into the snippet (careful)"
    )
    req.add_argument("--stream", action="store_true", help="ask for server-sent events (chat only)")
    extras = req.add_argument_group("SD extras", "sent as top-level fields, only those given")
    extras.add_argument("--seed", type=int, default=None, metavar="N", help="seed")
    extras.add_argument("--negative-prompt", default=None, metavar="TEXT", help="negative_prompt")
    extras.add_argument("--steps", type=int, default=None, metavar="N", help="num_inference_steps (1-100)")
    extras.add_argument("--cfg", type=float, default=None, metavar="F", help="guidance_scale (0-100)")
    extras.add_argument("--size", default=None, metavar="WxH", help="size (with --backend images: its own size field)")
    edit = req.add_argument_group("img2img", "with --backend images: POST /v1/images/edits, the picture uploaded")
    edit.add_argument("--init-image", default=None, metavar="PATH", help="the picture the snippet uploads")
    edit.add_argument("--strength", type=float, default=None, metavar="F", help="denoising strength 0-1 (strength)")
    req.set_defaults(func=_cmd_request, language="curl")


def _cmd_request(args: argparse.Namespace) -> int:

    given = (args.seed, args.negative_prompt, args.steps, args.cfg)
    extras = None
    if any(v is not None for v in given) or (args.size and args.backend == "chat"):
        extras = SDExtras(args.seed, args.negative_prompt, args.steps, args.cfg, args.size)
    if args.backend == "chat":
        request = ChatRequest.from_prompt(args.prompt, model=args.model, stream=args.stream, extras=extras)
    else:
        if args.stream:
            raise ValidationError("stream", True, "only the chat endpoint streams")
        if extras is not None:
            extras = SDExtras(args.seed, args.negative_prompt, args.steps, args.cfg)
        request = ImagesRequest(prompt=args.prompt, model=args.model, size=args.size, extras=extras)
    request = _edit_request(args, request)
    base_url = None  # left out: the snippet reads $SDKIT_BASE_URL when it runs
    if args.base_url is not None or any(os.environ.get(v) for v in ("SDKIT_BASE_URL", "OPENAI_BASE_URL")):
        base_url = resolve_base_url(args.base_url)
    key = resolve_api_key(prompt=False) if args.include_key else None
    image_path = getattr(args, "init_image", None)
    print(export_request(request, args.language, base_url, key, include_key=args.include_key, image_path=image_path),
          end="")  # fmt: skip
    return 0


def _edit_request(args: argparse.Namespace, request):
    """``sdkit request --init-image PATH``: the images request as ``/v1/images/edits`` (issue 16)."""
    init, strength = getattr(args, "init_image", None), getattr(args, "strength", None)
    if init is None:
        if strength is not None:
            raise ValidationError("strength", strength, "needs --init-image (img2img)")
        return request
    if args.backend != "images":
        raise ValidationError("init_image", init, "the chat API takes no input image: use --backend images")
    if init.startswith(("http://", "https://", "data:")) or not os.path.isfile(init):
        raise ValidationError("init_image", init, "must be a file the snippet can upload")
    from sdkit.backends.relay.apirequest import ImageEditRequest
    from sdkit.initimage import init_image_key, init_image_png

    key = init_image_key(init)
    return ImageEditRequest(image=init_image_png(key), prompt=request.prompt, model=request.model, size=request.size,
                            strength=strength, extras=request.extras, image_key=key)  # fmt: skip


def _add_sweep_parser(sub) -> None:
    sw = sub.add_parser(
        "sweep",
        help="sweep parameters over X/Y/Z axes and draw labelled grids",
        description="Make one image per combination of the axes' values (A1111 X/Y/Z plot syntax), write them "
        "with their parameters, a labelled grid per Z value and manifest.json. Already-made images in DIR are "
        "reused, so a second run makes nothing and an interrupted one resumes (without --seed, the seed drawn "
        "by the first run, recorded in DIR/manifest.json, is used again). Prints the image count first "
        "(stderr) and the grid path(s) last (stdout).",
        epilog='Axis values: CSV lists (a,"b, c"), ranges 1-5, 5-20 (+5), 10-5 (-3), 1-10 [5], 0-1 (+0.25); '
        "parameters: seed, steps (num_inference_steps), cfg (guidance_scale), width, height, size, sampler "
        "(scheduler), model, prompt, negative_prompt, prompt_sr (search,replace,…), prompt_matrix, variation_seed, "
        "variation_strength, denoising_strength, hires_scale, hires_steps, hires_denoising, hires_upscaler.",
    )
    sw.add_argument(
        "prompt", help="the base prompt (a prompt matrix or dynamicprompts template with --matrix/--dynamic)"
    )
    sw.add_argument("--x", metavar="AXIS", help='X axis, e.g. "guidance_scale=1,4,7.5"')
    sw.add_argument("--y", metavar="AXIS", help='Y axis, e.g. "num_inference_steps=5-20 (+5)"')
    sw.add_argument("--z", metavar="AXIS", help="Z axis: one grid per value")
    sw.add_argument("--seeds", default=None, metavar="N|LIST", help="images per cell (N) or seeds (1,2,3 or 1-4)")
    sw.add_argument("--negative-prompt", default="", metavar="TEXT", help="what to keep out of the images")
    sw.add_argument("--seed", type=int, default=None, metavar="N", help="base seed (random if left out; recorded)")
    sw.add_argument("--steps", type=int, default=20, metavar="N", help="denoising steps (default 20)")
    sw.add_argument("--cfg", type=float, default=7.5, metavar="F", help="guidance scale (default 7.5)")
    sw.add_argument("--size", default=None, metavar="WxH", help="image size (default: the model's native size)")
    sw.add_argument("--scheduler", default=None, metavar="NAME", help="A1111 sampler name or diffusers class name")
    _add_mode_args(sw)
    sw.add_argument("--model", default=DEFAULT_MODEL, metavar="ID|PATH|tiny", help="model (default: the embedded tiny)")
    _add_clip_skip(sw)
    _add_lora_args(sw)
    prompts = sw.add_mutually_exclusive_group()
    prompts.add_argument("--matrix", action="store_true", help="PROMPT is a prompt matrix base|a|b (first free axis)")
    prompts.add_argument(
        "--dynamic",
        choices=("combinatorial", "random"),
        default=None,
        help="PROMPT is a dynamicprompts template; its prompts go on the first free axis",
    )
    sw.add_argument("--max-prompts", type=int, default=None, metavar="N", help="with --dynamic: how many prompts")
    sw.add_argument("--prompt-seed", type=int, default=None, metavar="N", help="with --dynamic random: its seed")
    sw.add_argument("--wildcards", default=None, metavar="DIR", help="with --dynamic: folder of wildcard files")
    sw.add_argument("--out", default="outputs/sweep", metavar="DIR", help="output folder (default outputs/sweep)")
    sw.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    sw.add_argument("--dtype", default=None, help="auto (default), float32, float16, bfloat16")
    sw.add_argument("--memory", default="none", help="memory preset: none, t4, low, minimal")
    sw.add_argument(
        "--max-batch", type=int, default=None, metavar="N", help="most images per pipeline call (default 8)"
    )
    sw.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_cpu_args(sw)
    _add_remote_args(sw)
    add_chat_args(sw)
    _add_executor_args(sw)
    sw.set_defaults(func=_cmd_sweep, n=1)


def _sweep_from_args(args: argparse.Namespace):

    axes = {"x": args.x, "y": args.y, "z": args.z}
    prompt = args.prompt
    if args.matrix or args.dynamic:
        free = next((name for name, value in axes.items() if value is None), None)
        if free is None:
            raise ValidationError("prompt", prompt, "--matrix/--dynamic need a free axis, but X, Y and Z are all used")
        mode = "matrix" if args.matrix else args.dynamic
        axis = prompt_axis(prompt, mode, count=args.max_prompts, seed=args.prompt_seed, wildcards=args.wildcards)
        axes[free] = axis
        args.prompt = axis.values[0]
    base = _params_from_args(args)
    if any(expand_count(text) is not None for text in axes.values()):  # prompt_expand=N: asked once, kept in OUT
        cache = os.path.join(args.out, EXPANSIONS_DIR)
        axes, _ = resolve_expand_axes(axes, base.prompt, cache=cache, **chat_options(args))
    return Sweep(base, **axes, seeds=parse_seeds(args.seeds) if args.seeds else None)


def _cmd_sweep(args: argparse.Namespace) -> int:
    sweep = _sweep_from_args(args)
    backend, options = _backend_from_args(args, [c.params for c in sweep.cells()], progress=False, with_options=True)
    executor = _executor_from_args(args, args.backend, options, args.executor)
    _check_out(args.out)
    if args.seed is None and (resumed := resume_seed(sweep, args.out)) is not None:
        sweep = resumed
        print(f"sweep: resuming with seed {sweep.base.seed}, recorded in {args.out}/manifest.json", file=sys.stderr)
    n = sweep.shape[3]
    shape = " x ".join(str(len(a)) for a in sweep.axes.values()) or "1 cell"
    print(f"sweep: {sweep.count()} image(s) ({shape}, {n} per cell) -> {args.out}", file=sys.stderr)
    try:
        result = run_sweep(sweep, backend, args.out, progress=not args.no_progress, executor=executor)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    print(
        f"sweep: {result.count('generated')} generated, {result.count('cached')} cached, "
        f"{result.count('failed')} failed in {result.elapsed_s:.1f}s; "
        f"manifest: {os.path.join(args.out, 'manifest.json')}",
        file=sys.stderr,
    )
    for cell in result.failed[:5]:
        print(f"sweep: image {cell.cell.index} failed: {cell.error}", file=sys.stderr)
    for path in result.grid_paths:
        print(path)
    return 1 if result.failed else 0


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("executor", "who makes the images (the run folder is written here either way)")
    group.add_argument(
        "--executor",
        choices=("in-process", "ray"),
        default=None,
        help="in-process (default) or ray: Ray actors, each holding one backend (pip install 'sdkit-lab[ray]')",
    )
    group.add_argument(
        "--ray-address", default=None, metavar="ADDR", help="join this Ray cluster (default: start a local instance)"
    )
    group.add_argument(
        "--ray-workers", type=int, default=None, metavar="N", help="Ray actors (default: one per GPU, else per CPU)"
    )
    group.add_argument(
        "--ray-gpus-per-worker",
        type=float,
        default=None,
        metavar="G",
        help="GPUs each actor reserves (default 1 when the cluster has GPUs)",
    )


def _executor_from_args(args: argparse.Namespace, kind: str, options: dict, name: str | None):
    from sdkit.engine.raycluster import executor_from_options

    ray_options = {"workers": args.ray_workers, "gpus_per_worker": args.ray_gpus_per_worker}
    if name != "ray":
        for flag, value in (("--ray-workers", args.ray_workers), ("--ray-gpus-per-worker", args.ray_gpus_per_worker)):
            if value is not None:
                raise ValidationError(flag, value, "needs --executor ray")
        ray_options = {}
    return executor_from_options(kind, options, name, address=args.ray_address, **ray_options)


def _add_study_parser(sub) -> None:
    study = sub.add_parser(
        "study",
        help="reproducible prompt studies: run a YAML spec, verify a run folder, write its report",
        description="A study is a sweep that someone else can re-run and check. "
        "'run' writes a run folder (images, manifest.jsonl, grids, the resolved spec, environment.json) and "
        "resumes an interrupted run; 'verify' makes every image again the way it was made and compares; "
        "'report' writes one self-contained HTML page.",
    )
    actions = study.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run (or resume) a study", description="Run or resume a study spec.")
    run.add_argument("spec", help="the study's YAML spec")
    run.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/NAME)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument(
        "--threads", type=_threads, default=None, metavar="N|auto", help="torch threads (the spec's `threads` key)"
    )
    run.add_argument("--portable", action="store_true", help="portable mode (the spec's `portable: true`)")
    _add_executor_args(run)
    run.set_defaults(func=_cmd_study_run)
    verify = actions.add_parser(
        "verify",
        help="make every image again and compare",
        description="Check a run folder: files against the manifest, then every local image made again "
        "(same batching, same thread count) and compared. Exit status 1 on any mismatch, missing or tampered file.",
    )
    verify.add_argument("folder", help="a study run folder")
    verify.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    verify.set_defaults(func=_cmd_study_verify)
    report = actions.add_parser("report", help="write report.html", description="Write the run's HTML report.")
    report.add_argument("folder", help="a study run folder")
    report.set_defaults(func=_cmd_study_report)


def _cmd_study_run(args: argparse.Namespace) -> int:

    if not os.path.isfile(args.spec):
        raise ValidationError("spec", args.spec, "no such file")
    with open(args.spec, encoding="utf-8") as f:
        spec = parse_study_spec(f.read())
    if args.threads is not None or args.portable:
        spec = spec.with_cpu(threads=args.threads, portable=args.portable or spec.portable)
    folder = args.out or os.path.join("runs", spec.name)
    print(f"study {spec.name}: {study_sweep(spec, folder, offline=False).count()} image(s)", file=sys.stderr)
    executor = _executor_from_args(args, spec.backend, study_backend_options(spec), args.executor or spec.executor)
    run = run_study(spec, args.out, progress=not args.no_progress, executor=executor)
    print(
        f"made {run.made}, kept {run.kept}, failed {run.failed} of {run.total} in {run.elapsed_s:.1f}s", file=sys.stderr
    )
    for note in run.notes:
        print(f"study {spec.name}: {note}", file=sys.stderr)
    for cell, error in run.errors[:5]:
        print(f"study {spec.name}: image {cell} failed: {error}", file=sys.stderr)
    print(run.folder)
    return 0 if run.complete else 1


def _cmd_study_verify(args: argparse.Namespace) -> int:
    result = verify_study(args.folder, progress=not args.no_progress)
    print(result.summary())
    return 0 if result.ok else 1


def _cmd_study_report(args: argparse.Namespace) -> int:
    print(write_report(args.folder))
    return 0


def _in_sdkit(filename: str) -> bool:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the sdkit package
    return os.path.abspath(filename).startswith(root + os.sep)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """sdkit's own warnings as one line (``sdkit: warning: …``); others as Python shows them."""
    if category is UserWarning and _in_sdkit(filename):
        print(f"sdkit: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad input)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # `sdkit info X | head`: the reader left. Python's advice: point stdout at devnull so the
        # flush at exit does not fail again, and end without a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
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
