"""The Ray executor: a plan's batches made by Ray actors, on this machine or across a cluster.

Each worker is a Ray actor that builds its own backend with :func:`sdkit.create_backend` from the
backend's kind and options (so any kind works: the local pipeline, loaded once per actor, or a remote
relay) and makes whole planned batches through the same call as :class:`InProcessExecutor`, with
the same per-image CPU generators, so the pixels are the in-process ones. The driver sends batches out,
at most two per actor at a time, and hands every result to ``on_result`` as it comes back: the driver
stays the only writer of the run folder.

Faults: when an actor's process dies, the batches it held go to another worker (a new actor replaces
the dead one) up to ``max_attempts`` times, then their cells settle as failed with the reason. A batch
settles as a whole, once: no result is reported twice. An interrupt (or an error raised by
``on_result``) stops the run; the actors are ended and, when this executor started Ray, Ray too.

When Ray was already running (``ray.init`` in a notebook, or a driver joined to a cluster before the
run), a run that finishes leaves its actors loaded, and the next run of the same backend on the same
resources reuses them: no process start, no model load. :func:`release_workers` ends them (so does
``ray.shutdown()`` or the end of the driver).

A result made on Ray carries ``details["executor"]``: the kind, the worker's host, Ray node, process
and device; a study writes it into its manifest (it stays out of the PNG record, which is the
in-process one).
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sdkit.backends.base import capabilities
from sdkit.errors import MissingDependencyError, SdkitError, ValidationError

if TYPE_CHECKING:
    from sdkit.backends.base import Backend
    from sdkit.engine.executor import Batch, OnResult, Request

__all__ = ["RayExecutor", "import_ray", "release_workers"]

#: Batches an actor holds at once: one running, one waiting, so it never idles on the round trip.
IN_FLIGHT_PER_WORKER = 2
#: Requests of a backend that does not batch (a remote one) sent to a worker in one call.
REMOTE_CHUNK = 8
#: Environment variables the workers get from the driver (never credentials: a cluster's nodes hold
#: their own, as they would for any job; a local instance inherits the driver's environment).
FORWARDED_ENV = ("OMP_WAIT_POLICY", "HF_HUB_OFFLINE", "TRANSFORMERS_VERBOSITY", "HF_HOME", "TQDM_DISABLE")


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


@dataclass(frozen=True)
class RayExecutor:
    """Makes a plan's batches on Ray actors, each holding one backend built from ``kind`` and ``options``.

    ``address``: a running cluster (``ray://…`` or ``HOST:PORT``, or ``"auto"``); None starts a local
    instance for the run (with ``num_cpus`` CPUs, default all). ``workers``: how many actors (default:
    one per GPU when the cluster has GPUs, else one per ``cpus_per_worker`` CPUs, never more than the
    batches). ``gpus_per_worker``: GPUs each actor reserves (default 1 when the cluster has GPUs, else 0).
    """

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1
    num_cpus: int | None = None
    max_attempts: int = 3
    #: Called with the dashboard's address when Ray has one (the CLI prints it).
    announce: Any = None

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or not int(self.workers) >= 1):
            raise ValidationError("ray_workers", self.workers, "must be a positive integer")
        if self.gpus_per_worker is not None and not self.gpus_per_worker >= 0:
            raise ValidationError("ray_gpus_per_worker", self.gpus_per_worker, "must be 0 or more")
        if not self.cpus_per_worker >= 0:
            raise ValidationError("ray_cpus_per_worker", self.cpus_per_worker, "must be 0 or more")
        if self.max_attempts < 1:
            raise ValidationError("max_attempts", self.max_attempts, "must be at least 1")

    def run(self, backend: Backend, batches: Sequence[Batch], on_result: OnResult) -> None:
        together = capabilities(backend).max_batch > 1
        work = [list(b) for b in batches if b]
        if not together:  # as in-process, a remote backend gets many requests at once and sends them concurrently
            flat = [r for b in work for r in b]
            work = [flat[i : i + REMOTE_CHUNK] for i in range(0, len(flat), REMOTE_CHUNK)]
        if not work:
            return
        ray = import_ray()
        started = _connect(ray, self.address, self.num_cpus, self.announce)
        try:
            _Dispatch(ray, self, work, together, on_result, keep=not started).run()
        finally:
            if started:
                ray.shutdown()


def _connect(ray: Any, address: str | None, num_cpus: int | None, announce: Any) -> bool:
    """Join Ray (or start a local instance); True when this call started it. ``announce`` gets the
    dashboard's address when there is one."""
    if ray.is_initialized():
        return False
    import logging

    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    pythonpath = _package_root()
    if pythonpath:  # a local worker imports this sdkit, not whichever one its Python would find
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH")) if p)
    options: dict[str, Any] = {
        "address": address or "local",
        "runtime_env": {"env_vars": env},
        "logging_level": logging.WARNING,
        "log_to_driver": False,
        "configure_logging": True,
    }
    if address is None:
        options.update(num_cpus=num_cpus, include_dashboard=False)
    try:
        context = ray.init(**options)
    except Exception as exc:  # Ray raises bare Exception when its processes do not come up in time
        if address is not None:
            raise ValidationError("ray_address", address, f"could not join a Ray cluster there: {exc}") from None
        raise SdkitError(f"could not start a local Ray instance: {_first_line(exc)}") from None
    dashboard = getattr(context, "dashboard_url", None)
    if dashboard and announce is not None:
        announce(f"Ray dashboard: http://{dashboard}")
    return True


def _package_root() -> str | None:
    import sdkit

    return os.path.dirname(os.path.dirname(os.path.abspath(sdkit.__file__)))


class _Dispatch:
    """One run: the queue of batches, the actors, and what each one holds."""

    def __init__(
        self, ray: Any, executor: RayExecutor, work: list[list[Request]], together: bool, on_result, *, keep: bool
    ) -> None:
        self.ray, self.executor, self.together, self.on_result = ray, executor, together, on_result
        self.keep = keep
        self.queue: deque[tuple[list[Request], int, str]] = deque((b, 0, "") for b in work)
        resources = ray.cluster_resources()
        gpus = executor.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        self.gpus = gpus
        count = executor.workers
        if count is None:
            if gpus > 0:
                count = int(resources.get("GPU", 0) // gpus)
            else:
                per = executor.cpus_per_worker or 1
                count = int(resources.get("CPU", 1) // per)
        self.count = max(1, min(int(count), len(work)))
        self.spawns_left = self.count * executor.max_attempts  # replacements for actors that die
        self.actor_class = ray.remote(num_cpus=executor.cpus_per_worker, num_gpus=gpus, max_restarts=0)(_Worker)
        self.actors: dict[int, Any] = {}
        self.held: dict[int, int] = {}  # actor id -> batches in flight
        self.inflight: dict[Any, tuple[int, list[Request], int]] = {}  # ref -> (actor id, batch, attempt)
        self.next_id = 0
        context = ray.get_runtime_context()
        options = json.dumps(dict(executor.options), sort_keys=True, default=str)
        self.pool_key = (
            context.get_node_id(),
            context.get_job_id(),
            executor.kind,
            options,
            executor.cpus_per_worker,
            gpus,
        )

    def spawn(self, actor: Any = None) -> None:
        if actor is None:
            actor = self.actor_class.remote(self.executor.kind, dict(self.executor.options))
        self.actors[self.next_id] = actor
        self.held[self.next_id] = 0
        self.next_id += 1

    def run(self) -> None:
        ray = self.ray
        clean = False
        try:
            for actor in _idle_workers(ray, self.pool_key, self.count):
                self.spawn(actor)
            while len(self.actors) < self.count:
                self.spawn()
            while self.queue or self.inflight:
                self.send()
                if not self.inflight:  # work left, no actor alive and none may be started
                    while self.queue:
                        batch, _, reason = self.queue.popleft()
                        self.fail(batch, reason or "no Ray worker left to make it")
                    break
                (ref,), _ = ray.wait(list(self.inflight), num_returns=1)
                actor_id, batch, attempt = self.inflight.pop(ref)
                self.held[actor_id] = self.held.get(actor_id, 1) - 1
                try:
                    settled = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    self.lost(actor_id, batch, attempt, f"Ray worker died: {_first_line(exc)}")
                    continue
                except ray.exceptions.RayError as exc:  # the call itself failed (not the process)
                    self.fail(batch, f"Ray worker failed: {_first_line(exc)}")
                    continue
                for key, outcome, made_with in settled:
                    self.on_result(key, outcome, tuple(made_with))
            clean = True
        finally:
            if clean and self.keep:  # Ray outlives the run: the next run of this backend reuses the loaded models
                _IDLE.setdefault(self.pool_key, []).extend(self.actors.values())
            else:
                for actor in self.actors.values():
                    try:
                        ray.kill(actor, no_restart=True)
                    except Exception:  # already gone
                        pass

    def send(self) -> None:
        while self.queue:
            free = [a for a in self.actors if self.held[a] < IN_FLIGHT_PER_WORKER]
            if not free:
                return
            actor_id = min(free, key=lambda a: self.held[a])
            batch, attempt, _ = self.queue.popleft()
            ref = self.actors[actor_id].make.remote(batch, self.together)
            self.inflight[ref] = (actor_id, batch, attempt)
            self.held[actor_id] += 1

    def lost(self, actor_id: int, batch: list[Request], attempt: int, reason: str) -> None:
        """An actor died with ``batch`` in hand: try it elsewhere, or fail it after ``max_attempts``."""
        if actor_id in self.actors:
            del self.actors[actor_id]
            if self.spawns_left > 0:
                self.spawns_left -= 1
                self.spawn()
        if attempt + 1 < self.executor.max_attempts:
            self.queue.appendleft((batch, attempt + 1, reason))
        else:
            self.fail(batch, f"{reason} ({self.executor.max_attempts} attempts)")

    def fail(self, batch: list[Request], reason: str) -> None:
        for key, _ in batch:
            self.on_result(key, SdkitError(reason), (key,))


#: Actors a finished run left loaded, by (Ray node and job, backend kind and options, resources): only
#: when Ray was running before the run (a notebook, a long-lived driver), which keeps it after.
_IDLE: dict[tuple, list[Any]] = {}


def _idle_workers(ray: Any, key: tuple, count: int) -> list[Any]:
    """Up to ``count`` idle actors for ``key`` that still answer; every other idle actor is ended, so
    that none holds CPUs or GPUs this run needs."""
    idle = _IDLE.pop(key, [])
    found = []
    while idle and len(found) < count:
        actor = idle.pop()
        try:
            ray.get(actor.pid.remote(), timeout=30)
        except Exception:  # dead or unreachable: not reused
            continue
        found.append(actor)
    _IDLE[key] = idle
    release_workers()
    return found


def release_workers() -> int:
    """End the idle Ray actors earlier runs left loaded (see :class:`RayExecutor`); returns how many."""
    ray = import_ray()
    actors = [a for idle in _IDLE.values() for a in idle]
    _IDLE.clear()
    if ray.is_initialized():
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
    return len(actors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Worker:
    """A Ray actor: one backend, built where it runs; makes batches exactly as in-process."""

    def __init__(self, kind: str, options: dict[str, Any]) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from sdkit.backends.registry import create_backend

        self.backend = create_backend(kind, **options)
        import ray

        context = ray.get_runtime_context()
        self.where = {
            "kind": "ray",
            "host": socket.gethostname(),
            "node": context.get_node_id(),
            "pid": os.getpid(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
        }

    def pid(self) -> int:
        return os.getpid()

    def make(self, batch: list[Request], together: bool) -> list[tuple[int, Any, tuple[int, ...]]]:
        from sdkit.engine.executor import _call

        settled: list[tuple[int, Any, tuple[int, ...]]] = []

        def collect(key: int, outcome: Any, made_with: tuple[int, ...]) -> None:
            settled.append((key, _portable(outcome, self.where), made_with))

        _call(self.backend, batch, collect, together=together)
        return settled


def _portable(outcome: Any, where: Mapping[str, Any]) -> Any:
    """A result with where it was made; an error the driver can unpickle (else its text as an SdkitError)."""
    if isinstance(outcome, BaseException):
        try:
            back = pickle.loads(pickle.dumps(outcome))
            if type(back) is type(outcome) and str(back) == str(outcome):
                return outcome
        except Exception:  # any failure to round-trip
            pass
        return SdkitError(f"{type(outcome).__name__}: {outcome}")
    device = outcome.details.get("device")
    return replace(outcome, details={**outcome.details, "executor": {**where, "device": device or "remote"}})


def executor_from_options(
    kind: str, options: Mapping[str, Any], name: str | None, *, address: str | None = None, **ray_options: Any
):
    """The executor ``name`` names (``ray`` or ``in-process``; None: in-process) for a backend built from
    ``kind`` and ``options``."""
    from sdkit.engine.executor import InProcessExecutor

    if name in (None, "in-process", "inprocess", "local"):
        if address is not None:
            raise ValidationError("ray_address", address, "needs the Ray executor (--executor ray)")
        return InProcessExecutor()
    if name != "ray":
        raise ValidationError("executor", name, "must be in-process or ray")
    announce = ray_options.pop("announce", None)
    if announce is None:
        announce = lambda text: print(text, file=sys.stderr)  # noqa: E731
    return RayExecutor(kind, dict(options), address=address, announce=announce, **ray_options)
