"""How torch uses the CPU: thread count, OpenMP's wait policy and the portable mode.

These decide both speed and the exact floats of a CPU image, so each is chosen here, applied around
each pipeline call and recorded with every result.

**Threads.** ``threads="auto"`` (the default) runs small pipeline calls on one thread: their
operations are too small to share, and one thread keeps its speed when another process competes
for the cores. A call is small when UNet parameters × images × (pixels / 64²) is under
:data:`SMALL_WORK`: the embedded models' single images and batches of up to 4 at 64×64. Larger
calls get torch's default (one thread per core). An int pins it.

**Wait policy.** OpenMP threads spin between parallel regions by default; on a shared or busy
machine a spinning team is 4–15× slower. Before sdkit first imports torch it sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already says otherwise (it must be set
before the OpenMP runtime starts, so a torch imported earlier keeps its policy; the effective
policy is recorded).

**Portable mode.** Float results on a CPU depend on the thread count and on the kernels chosen
for the CPU's vector units (AVX-512, AMX, AVX2, …). Portable mode pins what the libraries let us
pin so that the same request gives the same pixels on any x86-64 CPU with AVX2:

- one thread;
- ATen's kernels at the AVX2 level (``ATEN_CPU_CAPABILITY=avx2``, read when torch starts);
- MKL's conditional numerical reproducibility at the AVX2 level (``MKL_CBWR=AVX2``; set through
  MKL's own ``mkl_cbwr_set`` when torch has not used MKL yet);
- oneDNN (mkldnn) off for the call: its JIT convolutions pick ISA and blocking from the CPU, so
  convolutions run through ATen's im2col + MKL GEMM instead.

What cannot be pinned from inside a running process is checked, and a clear error says how to
start over. GPUs, and CPUs of other architectures (ARM), are outside its promise.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sdkit.errors import MissingDependencyError, ValidationError

__all__ = ["CpuSettings", "cpu_details", "import_torch", "numerics"]

#: Pipeline calls with less work than this (UNet parameters × images × pixels / 64²) run on one thread under
#: ``threads="auto"``. Measured on 2 cores with the 2.4 M-parameter ``tiny`` at 64×64: batches of 2 and 4 were as
#: fast or faster on one thread, a batch of 8 took 2.6 s on one and 1.65 s on two.
SMALL_WORK = 16_000_000
#: The vector level portable mode pins (x86-64-v3: every x86-64 server and desktop CPU since ~2015).
PORTABLE_CAPABILITY = "AVX2"
_MKL_CBWR_AVX2 = 10  # mkl_cbwr_set's MKL_CBWR_AVX2
_MKL_CBWR_NAMES = {1: "AUTO", 2: "COMPATIBLE", 3: "SSE2", 8: "SSE4_2", 9: "AVX", 10: "AVX2", 12: "AVX512"}

Threads = int | Literal["auto"]


@dataclass(frozen=True)
class CpuSettings:
    """What a local backend asks of the CPU: ``threads`` (``"auto"`` or a count) and ``portable``."""

    threads: Threads = "auto"
    portable: bool = False

    def __post_init__(self) -> None:
        t = self.threads
        if t != "auto" and (not isinstance(t, int) or isinstance(t, bool) or t < 1):
            raise ValidationError("threads", t, 'must be "auto" or a positive integer')
        if not isinstance(self.portable, bool):
            raise ValidationError("portable", self.portable, "must be True or False")
        if self.portable and t not in ("auto", 1):
            raise ValidationError("threads", t, "portable mode runs on one thread; leave threads out or set it to 1")


def import_torch(*, portable: bool = False) -> Any:
    """torch, imported the way sdkit wants it: a passive OpenMP wait policy unless the environment
    chose one and, for portable mode, the AVX2 kernel level, both set before torch starts."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if portable:
            os.environ["ATEN_CPU_CAPABILITY"] = PORTABLE_CAPABILITY.lower()
            os.environ["MKL_CBWR"] = PORTABLE_CAPABILITY
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("torch", "local") from None
    if portable:
        _check_portable(torch)
    return torch


def _mkl() -> Any | None:
    """torch's statically linked MKL service functions, where they can be reached."""
    import torch

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        lib.mkl_serv_cbwr_get.restype = ctypes.c_int
        lib.mkl_serv_cbwr_set.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


def _mkl_cbwr() -> str | None:
    lib = _mkl()
    if lib is None:
        return None
    mode = lib.mkl_serv_cbwr_get(1)  # MKL_CBWR_BRANCH
    return _MKL_CBWR_NAMES.get(mode, str(mode))


def _check_portable(torch: Any) -> None:
    restart = (
        "portable mode must be chosen before torch starts: restart the Python process (the notebook's kernel) "
        "and create LocalBackend(portable=True) before importing torch, or start Python with "
        f"ATEN_CPU_CAPABILITY={PORTABLE_CAPABILITY.lower()} MKL_CBWR={PORTABLE_CAPABILITY} in the environment"
    )
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != PORTABLE_CAPABILITY:
        if "ATEN_CPU_CAPABILITY" in os.environ and os.environ["ATEN_CPU_CAPABILITY"].upper() == PORTABLE_CAPABILITY:
            raise ValidationError("portable", True, f"this CPU has no {PORTABLE_CAPABILITY} (torch uses {capability})")
        raise ValidationError("portable", True, f"torch already runs its {capability} kernels; {restart}")
    if torch.backends.mkl.is_available():
        lib = _mkl()
        # mkl_cbwr_set fails once MKL has computed anything in this process
        unpinned = lib is not None and lib.mkl_serv_cbwr_get(1) != _MKL_CBWR_AVX2
        if unpinned and lib.mkl_serv_cbwr_set(_MKL_CBWR_AVX2) != 0:
            raise ValidationError("portable", True, f"MKL has already run in this process; {restart}")


def resolve_threads(
    settings: CpuSettings, device: str, unet_params: int, *, images: int = 1, pixels: int = 64 * 64
) -> int | None:
    """The thread count for a call of ``images`` images of ``pixels`` pixels each, or None to leave
    torch's as it is (GPUs)."""
    if settings.portable:
        return 1
    if isinstance(settings.threads, int):
        return settings.threads
    if not device.startswith("cpu"):
        return None
    work = unet_params * images * pixels / (64 * 64)
    return 1 if work < SMALL_WORK else _default_threads()


def _default_threads() -> int:
    import torch

    return _DEFAULT_THREADS.setdefault("n", torch.get_num_threads())


_DEFAULT_THREADS: dict[str, int] = {}


@contextlib.contextmanager
def numerics(torch: Any, threads: int | None, *, portable: bool) -> Iterator[None]:
    """Within the block torch uses ``threads`` threads and, in portable mode, no oneDNN; restored after."""
    _default_threads()  # remember torch's own default before the first change
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        if portable:
            with torch.backends.mkldnn.flags(enabled=False):
                yield
        else:
            yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def cpu_details(torch: Any, threads: int | None, *, portable: bool) -> dict[str, Any]:
    """What decided a CPU result's floats, for its record."""
    return {
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "portable": portable,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default").upper(),
    }
