"""The local backend: diffusers pipelines on this machine's CPU or GPU."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdkit.backends.base import Capabilities, ResultCallback, StepCallback
from sdkit.backends.local.cpu import CpuSettings, Threads, cpu_details, import_torch, numerics, resolve_threads
from sdkit.backends.local.embedded import (
    EMBEDDED_MODELS,
    NATIVE_SIZE,
    built_model_path,
    embedded_model_path,
    is_embedded,
)
from sdkit.backends.local.encoding import (
    Conditioning,
    EmbeddingFolder,
    PromptEncoder,
    TextOnlyEncoder,
    encoder_for,
)
from sdkit.backends.local.loras import request_loras
from sdkit.backends.local.modes import mode_key, run_pipeline
from sdkit.backends.local.schedulers import a1111_name, check_steps, folder_scheduler, make_scheduler
from sdkit.checkpoint import is_checkpoint_file
from sdkit.engine.planner import plan_batches
from sdkit.errors import (
    GenerationError,
    InvalidModelError,
    MissingDependencyError,
    ModelError,
    SdkitError,
    ValidationError,
)
from sdkit.params import GenerationParams
from sdkit.prompts.networks import lift_networks
from sdkit.result import GenerationResult, Timings
from sdkit.suggestions import did_you_mean

__all__ = ["MEMORY_PRESETS", "LocalBackend", "check_model"]

#: Memory presets for small GPUs. ``t4`` suits a Colab T4 (15 GB) for SD 1.x/2.x and SDXL.
MEMORY_PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "t4": ("vae_slicing", "vae_tiling"),
    "low": ("model_cpu_offload", "attention_slicing", "vae_slicing", "vae_tiling"),
    "minimal": ("sequential_cpu_offload", "attention_slicing", "vae_slicing", "vae_tiling"),
}
DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_MAX_BATCH = 8
#: Where textual-inversion embeddings are looked up when ``embeddings=`` is not given.
EMBEDDINGS_ENV = "SDKIT_EMBEDDINGS_DIR"


def _torch():
    return import_torch()


def pick_device(device: str | None = None) -> str:
    """``cuda`` when there is one, then ``mps``, else ``cpu``; an explicit choice is checked."""
    torch = _torch()
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValidationError("device", device, "must be auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device", device, "no CUDA device is available")
    return device


def pick_dtype(device: str, dtype: str | None = None) -> str:
    """fp16 on a GPU, fp32 on the CPU, unless told otherwise."""
    if dtype is None or dtype == "auto":
        return "float32" if device == "cpu" else "float16"
    if dtype not in DTYPES:
        raise ValidationError("dtype", dtype, f"must be auto or one of {', '.join(DTYPES)}")
    return dtype


def weights_hash(folder: Path) -> str:
    """sha256 over a model folder's weight files and configs (sorted by path); LoRAs shipped in its
    ``loras/`` folder are not part of the model (each is recorded by its own hash when used)."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in (".safetensors", ".bin", ".json", ".txt")
        and p.relative_to(folder).parts[0] != "loras"
    )
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass
class _Loaded:
    model: str
    pipe: Any
    folder: Path | None
    weights_hash: str | None
    revision: str | None
    base_scheduler: tuple[str, dict[str, Any]]
    native_size: int
    unet_params: int
    load_s: float
    encoder: PromptEncoder | TextOnlyEncoder
    img2img: Any = None
    #: LoRA file → adapter name, for the adapters loaded into ``pipe`` (kept across calls).
    adapters: dict[Path, str] = field(default_factory=dict)


class LocalBackend:
    """Generates with diffusers on this machine.

    One pipeline is kept loaded and reused: asking for another model unloads the previous one.
    Noise comes from one CPU ``torch.Generator`` per image, so a seed gives the same start noise on
    any device. The floats that follow depend on the CPU's kernels and thread count: ``threads``
    (``"auto"``: one thread for small calls, one per core for large ones) and ``portable=True``
    (identical pixels on any x86-64 CPU with AVX2; see :mod:`sdkit.backends.local.cpu`) decide them, and every
    result records them.

    >>> backend = LocalBackend()                       # doctest: +SKIP
    >>> result = backend.generate(GenerationParams("a red circle", seed=7))  # doctest: +SKIP
    """

    name = "local"

    def __init__(
        self,
        *,
        device: str | None = None,
        dtype: str | None = None,
        memory: str = "none",
        progress: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
        threads: Threads = "auto",
        portable: bool = False,
        embeddings: str | Path | None = None,
        lora_dirs: Sequence[str | os.PathLike] = (),
    ) -> None:
        self.cpu = CpuSettings(threads, portable)
        if embeddings is None:
            embeddings = os.environ.get(EMBEDDINGS_ENV) or None
        self.embeddings = EmbeddingFolder(embeddings) if embeddings is not None else None
        if isinstance(lora_dirs, (str, os.PathLike)):
            lora_dirs = (lora_dirs,)
        for folder in lora_dirs:
            if not Path(folder).expanduser().is_dir():
                raise ValidationError("lora_dirs", str(folder), "no such folder")
        self.lora_dirs = tuple(str(d) for d in lora_dirs)
        if portable and device not in (None, "auto", "cpu"):
            raise ValidationError(
                "device", device, "portable mode is for the CPU (GPU results depend on the GPU and its libraries)"
            )
        import_torch(portable=portable)
        if portable:
            device = "cpu"
        if memory not in MEMORY_PRESETS:
            raise ValidationError("memory", memory, f"must be one of {', '.join(MEMORY_PRESETS)}")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValidationError("max_batch", max_batch, "must be a positive integer")
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        if any(o.endswith("offload") for o in MEMORY_PRESETS[memory]) and not self.device.startswith("cuda"):
            raise ValidationError("memory", memory, f"CPU offload needs a CUDA device, not {self.device}")
        self.memory = memory
        self.progress = progress
        self.max_batch = max_batch
        self._loaded: _Loaded | None = None

    @property
    def capabilities(self) -> Capabilities:
        """Batches of up to ``max_batch`` images, warm-up, per-step progress, and images ``verify`` can remake."""
        return Capabilities(
            max_batch=self.max_batch,
            batch_key=batch_key,
            loads=True,
            step_progress=True,
            regenerable=True,
            checks_params=True,
        )

    def check(self, params: Sequence[GenerationParams]) -> None:
        """Refuse, before anything loads, a model that cannot: an unknown name (close names suggested), a
        missing path, a file or folder that is not a diffusers pipeline, an uncached hub id while offline;
        and a step count the scheduler cannot run (PNDM below 4 steps, …) where the model's scheduler config
        can be read from disk."""
        for model in dict.fromkeys(p.model for p in params):
            check_model(model)
        for p in params:
            check_prompt_networks(p)
            self._lora_files(p)
        check_scheduler_steps(params)

    def _lora_files(self, p: GenerationParams) -> list[tuple[Path, str, float]]:
        """``(file, name, weight)`` of each of ``p.loras``; an unknown name is refused (close names suggested)."""
        from sdkit.backends.local.loras import find_lora, lora_dirs

        loras = request_loras(p)[1]
        if not loras:
            return []
        dirs = lora_dirs(p.model, self.lora_dirs)
        return [(find_lora(name, dirs), name, weight) for name, weight in loras]

    def identity(self) -> dict[str, Any]:
        """Device, dtype and memory preset; the thread count when pinned and portable mode when on
        (``threads="auto"`` decides per call, and each image records the count it used)."""
        ident: dict[str, Any] = {"device": self.device, "dtype": self.dtype, "memory": self.memory}
        if self.cpu.threads != "auto":
            ident["threads"] = self.cpu.threads
        if self.cpu.portable:
            ident["portable"] = True
        if self.embeddings is not None:
            ident["embeddings"] = str(self.embeddings.folder)
        return ident

    def __repr__(self) -> str:
        model = self._loaded.model if self._loaded else None
        cpu = f", threads={self.cpu.threads!r}" + (", portable=True" if self.cpu.portable else "")
        return (
            f"LocalBackend(device={self.device!r}, dtype={self.dtype!r}, memory={self.memory!r}{cpu}, loaded={model!r})"
        )

    # --- loading -------------------------------------------------------------------------

    def load(self, model: str) -> Any:
        """The diffusers pipeline for ``model`` (loaded once, then reused)."""
        return self._load(model).pipe

    def unload(self) -> None:
        """Drop the loaded pipeline and free its memory."""
        self._loaded = None
        torch = _torch()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _load(self, model: str) -> _Loaded:
        if self._loaded is not None and self._loaded.model == model:
            return self._loaded
        start = time.perf_counter()
        folder, revision = _model_folder(model)  # a model that cannot load is refused before the loaded one goes
        self.unload()
        torch = _torch()
        _hide_torchvision_notice()
        try:
            # DiffusionPipeline imports only the class a folder names; AutoPipelineForText2Image imports
            # every pipeline family (ControlNet's among them), ~3 s more before the first image.
            from diffusers import DiffusionPipeline
        except ImportError:  # pragma: no cover - depends on the install
            raise MissingDependencyError("diffusers", "local") from None
        source = str(folder) if folder is not None else model
        dtype = getattr(torch, self.dtype)
        if not self.progress:
            _quiet_loading()
        checkpoint_hash = None
        try:
            pipe = None
            if is_checkpoint_file(model):
                from sdkit.checkpoint import file_sha256, load_single_file

                checkpoint_hash = file_sha256(model)
                pipe = load_single_file(model, checkpoint_hash, dtype)
            if pipe is None and self.dtype == "float16" and not is_embedded(model):
                try:
                    pipe = _from_pretrained(DiffusionPipeline, source, dtype, variant="fp16")
                except (OSError, ValueError):
                    pipe = None
            if pipe is None:
                pipe = _from_pretrained(DiffusionPipeline, source, dtype)
            if not _is_text2image(pipe):
                from diffusers import AutoPipelineForText2Image

                pipe = AutoPipelineForText2Image.from_pipe(pipe)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(
                f"model={model!r}: could not load it as a diffusers text-to-image pipeline: {exc}"
            ) from exc
        self._apply_memory(pipe)
        pipe.set_progress_bar_config(disable=not self.progress)
        if folder is None and checkpoint_hash is None:
            folder, revision = _model_folder(model, check_hub=False)
        base = pipe.scheduler
        native = pipe.unet.config.sample_size * getattr(pipe, "vae_scale_factor", 8)
        self._loaded = _Loaded(
            model=model,
            pipe=pipe,
            folder=folder,
            weights_hash=checkpoint_hash or (weights_hash(folder) if folder is not None else None),
            revision=revision,
            base_scheduler=(type(base).__name__, dict(base.config)),
            native_size=int(native) if native else NATIVE_SIZE,
            unet_params=sum(p.numel() for p in pipe.unet.parameters()),
            load_s=time.perf_counter() - start,
            encoder=encoder_for(pipe, self.embeddings),
        )
        return self._loaded

    def _apply_memory(self, pipe: Any) -> None:
        options = MEMORY_PRESETS[self.memory]
        if "model_cpu_offload" in options:
            pipe.enable_model_cpu_offload(device=self.device)
        elif "sequential_cpu_offload" in options:
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        if "attention_slicing" in options:
            pipe.enable_attention_slicing()
        if "vae_slicing" in options:
            pipe.vae.enable_slicing()
        if "vae_tiling" in options:
            pipe.vae.enable_tiling()

    # --- generating ----------------------------------------------------------------------

    def generate(self, params: GenerationParams, *, on_step: StepCallback | None = None) -> GenerationResult:
        """Make ``params.num_images`` images in one pipeline call."""
        return self.generate_many([params], on_step=on_step)[0]

    def generate_many(
        self,
        params: Sequence[GenerationParams],
        *,
        on_step: StepCallback | None = None,
        on_result: ResultCallback | None = None,
        return_errors: bool = False,
    ) -> list[GenerationResult | Exception]:
        """Make several requests; those that share model, size, steps, guidance and scheduler
        run together in pipeline calls of up to ``max_batch`` images (one CPU generator per image).
        Results come back in the order asked. Models are taken one at a time, so each loads once.

        ``on_result(index, result_or_error)`` is called after each pipeline call for its requests.
        With ``return_errors=True`` a failed call leaves its error at its requests' indices and
        the rest goes on; otherwise the error is raised.
        """
        for i, p in enumerate(params):
            if not isinstance(p, GenerationParams):
                raise ValidationError(f"params[{i}]", p, "must be a GenerationParams")
        if not return_errors:
            check_scheduler_steps(params)
        results: list[GenerationResult | Exception | None] = [None] * len(params)
        for batch in plan_batches(params, self.capabilities):
            try:
                done: list[GenerationResult | Exception] = list(self._run(batch, params, on_step))
            except SdkitError as exc:
                if not return_errors:
                    raise
                done = [exc] * len(batch)
            except Exception as exc:  # CUDA out of memory, a tokenizer's TypeError on odd text, ...
                error = GenerationError(f"pipeline call failed for {len(batch)} request(s): {exc}")
                if not return_errors:
                    raise error from exc
                done = [error] * len(batch)
            for index, outcome in zip(batch, done, strict=True):
                results[index] = outcome
                if on_result is not None:
                    on_result(index, outcome)
        return results  # type: ignore[return-value]

    def _run(
        self, batch: list[int], params: Sequence[GenerationParams], on_step: StepCallback | None
    ) -> list[GenerationResult]:
        first = params[batch[0]]
        lora_files = self._lora_files(first)  # an unknown LoRA is refused before any loading
        was_loaded = self._loaded is not None and self._loaded.model == first.model
        loaded = self._load(first.model)
        load_s = 0.0 if was_loaded else loaded.load_s
        pipe = loaded.pipe
        check_steps(first.scheduler, first.num_inference_steps, loaded.base_scheduler)  # the batch shares both
        if lora_files or loaded.adapters:
            from sdkit.backends.local.loras import apply_loras

            apply_loras(pipe, loaded.adapters, lora_files)
        if first.scheduler is None:
            pipe.scheduler = make_scheduler(loaded.base_scheduler[0], loaded.base_scheduler[1])
        else:
            pipe.scheduler = make_scheduler(first.scheduler, loaded.base_scheduler[1])
        # Requests whose prompts need different numbers of 75-token chunks go in separate calls: padding a
        # short prompt to a long neighbour's length would make its image depend on the neighbour.
        groups: dict[int, list[int]] = {}
        for i in batch:
            p = params[i]
            check_prompt_networks(p)
            texts = (prompt_text(p.prompt), prompt_text(p.negative_prompt))
            groups.setdefault(loaded.encoder.chunk_count(texts, p.num_inference_steps), []).append(i)
        done: dict[int, GenerationResult] = {}
        for group in groups.values():
            for i, result in zip(group, self._call(group, params, on_step, loaded, load_s, lora_files), strict=True):
                done[i] = result
            load_s = 0.0
        return [done[i] for i in batch]

    def _call(
        self,
        batch: list[int],
        params: Sequence[GenerationParams],
        on_step: StepCallback | None,
        loaded: _Loaded,
        load_s: float,
        lora_files: Sequence[tuple[Path, str, float]] = (),
    ) -> list[GenerationResult]:
        torch = _torch()
        first = params[batch[0]]
        pipe = loaded.pipe
        width = first.width or loaded.native_size
        height = first.height or loaded.native_size
        sched_cls = type(pipe.scheduler).__name__
        sched_cfg = dict(pipe.scheduler.config)
        prompts, negatives, generators = [], [], []
        for i in batch:
            p = params[i]
            for seed in p.seeds:
                prompts.append(prompt_text(p.prompt))
                negatives.append(prompt_text(p.negative_prompt))
                generators.append(torch.Generator("cpu").manual_seed(seed))
        threads = resolve_threads(self.cpu, self.device, loaded.unet_params, images=len(prompts), pixels=width * height)
        with torch.inference_mode(), numerics(torch, threads, portable=self.cpu.portable):
            zero = not any(negatives) and bool(pipe.config.get("force_zeros_for_empty_prompt", False))
            cond = loaded.encoder.conditioning(
                prompts, negatives, steps=first.num_inference_steps, clip_skip=first.clip_skip, zero_negative=zero
            )
        kwargs: dict[str, Any] = dict(cond.kwargs)
        callback = _step_callback(on_step, cond, first.num_inference_steps)
        if callback is not None:
            kwargs["callback_on_step_end"] = callback
        start = time.perf_counter()
        with torch.inference_mode(), numerics(torch, threads, portable=self.cpu.portable):
            images = run_pipeline(
                loaded,
                [params[i] for i in batch],
                dict(
                    num_inference_steps=first.num_inference_steps,
                    guidance_scale=first.guidance_scale,
                    width=width,
                    height=height,
                    generator=generators,
                    output_type="pil",
                    **kwargs,
                ),
                width,
                height,
                getattr(torch, self.dtype),
                hires_callback=cond.make_callback() if cond.make_callback is not None else None,
            )
        elapsed = time.perf_counter() - start
        details = {
            "scheduler": a1111_name(sched_cls, sched_cfg),
            "scheduler_class": sched_cls,
            "scheduler_config": _jsonable(sched_cfg),
            "pipeline_class": type(pipe).__name__,
            "model_hash": loaded.weights_hash,
            "model_revision": loaded.revision,
            "device": self.device,
            "dtype": self.dtype,
            "memory": self.memory,
            "generator": "cpu",
            "batch_size": len(prompts),
            **cpu_details(torch, threads, portable=self.cpu.portable),
            "versions": dict(_versions()),
        }
        if cond.chunks > 1:
            details["prompt_chunks"] = cond.chunks
        if cond.embeddings:
            details["ti_hashes"] = dict(cond.embeddings)
        if lora_files:
            from sdkit.backends.local.loras import lora_hash

            details["lora_hashes"] = {name: lora_hash(path) for path, name, _ in lora_files}
        results = []
        offset = 0
        for i in batch:
            p = params[i].replace(width=width, height=height)
            n = p.num_images
            results.append(
                GenerationResult(
                    params=p,
                    images=tuple(images[offset : offset + n]),
                    seeds=p.seeds,
                    model=p.model,
                    backend=self.name,
                    timings=Timings(load_s=load_s, generate_s=elapsed * n / len(prompts)),
                    details={**details, "batch_offset": offset},
                )
            )
            load_s = 0.0
            offset += n
        return results


def _step_callback(on_step: StepCallback | None, cond: Conditioning, steps: int) -> Any:
    """One ``callback_on_step_end``: progress, and the prompt's next conditioning when it changes."""
    if on_step is None and cond.callback is None:
        return None

    def callback(pipe: Any, step: int, t: Any, tensors: dict) -> dict:
        if cond.callback is not None:
            tensors = cond.callback(pipe, step, t, tensors)
        if on_step is not None:
            # Heun, DPM2 and PNDM call back more often than num_inference_steps: count the pipeline's own
            on_step(step + 1, getattr(pipe, "num_timesteps", None) or steps)
        return tensors

    return callback


def prompt_text(text: str) -> str:
    """The text the text encoder reads: network tags (``<lora:…>``) taken out."""
    return lift_networks(text)[0] if "<" in text else text


def check_prompt_networks(p: GenerationParams) -> None:
    """Refuse network tags this backend cannot apply, naming the tag."""
    for name, text in (("prompt", p.prompt), ("negative_prompt", p.negative_prompt)):
        if "<" not in text:
            continue
        for tag in lift_networks(text, field=name)[1]:
            if tag.kind == "hypernet":
                raise ValidationError(name, str(tag), "hypernetworks are not supported; use a LoRA instead")


def batch_key(p: GenerationParams) -> tuple:
    """Requests with equal keys can share one pipeline call (besides the model, which the planner adds)."""
    key = (
        p.num_inference_steps,
        p.guidance_scale,
        p.width,
        p.height,
        p.scheduler,
        p.negative_prompt == "",
        p.clip_skip,
        *mode_key(p),
    )
    loras = request_loras(p)[1]
    return (*key, loras) if loras else key


def _from_pretrained(cls: Any, source: str, dtype: Any, **kwargs: Any) -> Any:
    # diffusers >= 0.42 renamed torch_dtype to dtype; the old name works everywhere, with a warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return cls.from_pretrained(source, torch_dtype=dtype, **kwargs)


def _is_text2image(pipe: Any) -> bool:
    name = type(pipe).__name__
    return not any(word in name for word in ("Img2Img", "Inpaint", "InstructPix2Pix", "Upscale", "Depth2Img"))


def _hide_torchvision_notice() -> None:
    """transformers says, once per image-processor class, that torchvision is missing and it falls back
    to PIL: sdkit needs neither. Only that logger is quietened, and only when nobody set its level."""

    notice = logging.getLogger("transformers.utils.import_utils")
    if notice.level == logging.NOTSET:
        notice.setLevel(logging.ERROR)


def _quiet_loading() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


#: Seconds the hub's reachability check may take before a model that is not cached is given up.
HUB_CHECK_S = 2.0
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_EXPECTED = "sdkit loads diffusers folders (model_index.json)"


def check_scheduler_steps(params: Sequence[GenerationParams]) -> None:
    """Refuse a step count that the scheduler cannot run, reading each model's scheduler config from disk
    (nothing loads, nothing is built). A model whose config is not on disk yet (an embedded model not built,
    a hub model not cached) is checked once loaded, still before its pipeline call."""
    bases: dict[str, tuple[str, dict[str, Any]] | None] = {}
    for p in params:
        if p.model not in bases:
            folder = built_model_path(p.model) if is_embedded(p.model) else _model_folder(p.model, check_hub=False)[0]
            bases[p.model] = folder_scheduler(folder) if folder is not None else None
        if (base := bases[p.model]) is not None:
            check_steps(p.scheduler, p.num_inference_steps, base)


def check_model(model: str) -> None:
    """Refuse, before torch or diffusers are imported, a model that cannot load: an unknown name
    (with close names suggested), a missing path, a file or a folder that is not a diffusers pipeline
    (:class:`InvalidModelError`), a hub id that is not cached while the hub cannot be reached
    (:class:`ModelError`). Embedded models pass without being built."""
    if not is_embedded(model):
        _model_folder(model)


def _model_folder(model: str, *, check_hub: bool = True) -> tuple[Path | None, str | None]:
    """The folder a model loads from and its hub revision, where they can be known: an embedded
    model, a local diffusers folder, a cached hub snapshot; ``(None, None)`` for a hub id that
    diffusers will download. Anything else is refused at once, saying what it is."""
    if is_embedded(model):
        return embedded_model_path(model), None
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return path, None
        raise InvalidModelError("model", model, _not_a_pipeline(path))
    if path.exists():
        if path.suffix.lower() == ".safetensors":
            from sdkit.checkpoint import check_checkpoint_file

            check_checkpoint_file(path)
            return None, None
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            raise InvalidModelError(
                "model", model, f"a pickle checkpoint ({path.suffix}); {_EXPECTED} and .safetensors single files"
            )
        raise InvalidModelError("model", model, f"a file, not a model folder; {_EXPECTED}")
    has_separator = "/" in model or os.path.sep in model
    if model.startswith((".", "/", "~")) or (has_separator and not _HUB_ID.fullmatch(model)):
        raise InvalidModelError("model", model, "no such folder")
    if model.lower().endswith(CHECKPOINT_SUFFIXES):
        raise InvalidModelError("model", model, f"no such file (and {_EXPECTED})")
    if not _HUB_ID.fullmatch(model):
        hint = did_you_mean(model, EMBEDDED_MODELS) or f"embedded models: {', '.join(EMBEDDED_MODELS)}"
        raise InvalidModelError(
            "model", model, f"not an embedded model, a local folder or a Hugging Face hub id (owner/name); {hint}"
        )
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached: diffusers will fetch it, if the hub can be reached
        if check_hub and (why := _hub_unreachable()) is not None:
            raise ModelError(
                f"model={model!r}: not in the local Hugging Face cache, and the hub cannot be reached ({why}); "
                "download it where there is a connection, or give a local diffusers folder"
            ) from None
        return None, None
    return folder, folder.name


def _not_a_pipeline(folder: Path) -> str:
    """What a folder without model_index.json holds instead, and what sdkit expects."""
    checkpoints = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)
    nested = sorted(p.parent for p in folder.glob("*/model_index.json"))
    reason = f"could not load it: a folder without model_index.json; {_EXPECTED}"
    if nested:
        reason += f"; did you mean {str(nested[0])!r}?"
    elif checkpoints:
        shown = ", ".join(checkpoints[:3]) + (", …" if len(checkpoints) > 3 else "")
        reason += f"; it holds single-file checkpoints ({shown}): give one of them"
    return reason


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached (offline mode, no connection), or None.
    A TCP connection to the hub's host, bounded to :data:`HUB_CHECK_S` seconds (name lookup included);
    behind a proxy nothing is checked."""
    import socket
    import threading
    import urllib.parse
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return "HF_HUB_OFFLINE is set"
    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    if url.hostname is None or urllib.request.getproxies().get(url.scheme):
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((url.hostname, port), timeout=HUB_CHECK_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    thread = threading.Thread(target=probe, name="sdkit-hub-check", daemon=True)
    thread.start()
    thread.join(HUB_CHECK_S)
    if not outcome:
        return f"no answer from {url.hostname} in {HUB_CHECK_S:g} s"
    return None if outcome[0] is None else f"{url.hostname}: {outcome[0]}"


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in config.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = list(v)
    return out


@functools.cache
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "diffusers", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            pass
    return out


def model_folder(model: str) -> tuple[Path | None, str | None]:
    """The folder ``model`` loads from (and its hub revision); refuses what cannot be a model, as loading does."""
    return _model_folder(model)
