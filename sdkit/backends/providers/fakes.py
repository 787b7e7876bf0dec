"""Loopback fakes of Stability AI's and Black Forest Labs' APIs, for tests, notebooks and benchmarks.

Both are :class:`~sdkit.FakeRelay` servers (standard library, 127.0.0.1, a free port) speaking the
providers' official formats; ``relay.script(…)`` still queues replies to ``POST`` requests first, and
every request is recorded in ``relay.requests``::

    with FakeStability(api_key="sk-test") as stability:
        backend = sdkit.create_backend("stability", base_url=stability.url, api_key="sk-test")

Images are flat colours from the prompt and seed (:func:`~sdkit.backends.relay.fakerelay.fake_png`),
``image_size`` pixels on the long side at the requested aspect ratio. A prompt holding a word in
``refuse`` gets a 400 that echoes the key sent (as careless services do); Stability: a word in
``filter`` gets ``finish_reason: CONTENT_FILTERED``; Flux: ``final`` maps a word to a terminal status
(``Content Moderated``, ``Error``, …) and each task answers ``Pending`` ``pending_polls`` times first.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sdkit.backends.relay.fakerelay import FakeRelay, FakeReply, RecordedRequest, fake_png

__all__ = ["FakeBFL", "FakeStability", "parse_multipart"]

_STABILITY_PATH = re.compile(r"/v2beta/stable-image/generate/(ultra|core|sd3)$")
_FLUX_PATH = re.compile(r"/v1/(flux[\w.-]*)$")


def parse_multipart(body: bytes, content_type: str) -> dict[str, str | bytes]:
    """The fields of a ``multipart/form-data`` body: text for form fields, bytes for files."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, str | bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = payload if part.get_filename() else payload.decode()
    return fields


def _sized(ratio: str | None, width: Any, height: Any, long_side: int) -> tuple[int, int]:
    if isinstance(width, int) and isinstance(height, int):
        return width, height
    w, h = (int(x) for x in (ratio or "1:1").split(":"))
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _drawn_seed(prompt: str) -> int:
    """The seed the fake 'draws' when asked for a random one (seed 0)."""
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") % 4_294_967_294 + 1


class _ProviderFake(FakeRelay):
    def __init__(self, *, api_key: str | None = None, image_size: int = 64, refuse: Sequence[str] = (), **kw: Any):
        super().__init__(api_key=api_key, image_size=(image_size, image_size), **kw)
        self.long_side = image_size
        self.refuse = tuple(refuse)

    def _refused(self, prompt: str, sent: str) -> str | None:
        word = next((w for w in self.refuse if w in prompt), None)
        return None if word is None else f"refused {word!r} (request sent with {sent})"


class FakeStability(_ProviderFake):
    """Stability AI's Stable Image API on loopback (any path prefix, as relays use)."""

    def __init__(self, *, filter: Sequence[str] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.filter = tuple(filter)

    @staticmethod
    def error(status: int, name: str, *errors: str) -> FakeReply:
        return FakeReply.json({"id": "fake-" + name, "name": name, "errors": list(errors)}, status=status)

    def default_reply(self, request: RecordedRequest) -> FakeReply:
        if request.method == "GET":
            return super().default_reply(request)
        sent = request.headers.get("authorization", "")
        if self.api_key is not None and sent != f"Bearer {self.api_key}":
            return self.error(401, "unauthorized", f"Incorrect API key: {sent.removeprefix('Bearer ')}")
        match = _STABILITY_PATH.search(request.path)
        if match is None:
            return self.error(404, "not_found", f"no route {request.path}")
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return self.error(400, "bad_request", "content-type must be multipart/form-data")
        form = parse_multipart(request.body, ctype)
        prompt = str(form.get("prompt", ""))
        if not prompt:
            return self.error(400, "bad_request", "prompt: is required")
        refused = self._refused(prompt, sent)
        if refused:
            return self.error(400, "bad_request", refused)
        seed = int(form.get("seed") or 0) or _drawn_seed(prompt)
        fmt = str(form.get("output_format", "png"))
        size = _sized(str(form.get("aspect_ratio", "1:1")), None, None, self.long_side)
        data = fake_png(prompt, seed, size, {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}.get(fmt, "PNG"))
        finish = "CONTENT_FILTERED" if any(w in prompt for w in self.filter) else "SUCCESS"
        if request.headers.get("accept", "").startswith("image/"):
            headers = (("Content-Type", f"image/{fmt}"), ("seed", str(seed)), ("finish-reason", finish))
            return FakeReply(body=data, headers=headers)
        return FakeReply.json({"image": base64.b64encode(data).decode(), "seed": seed, "finish_reason": finish})


class FakeBFL(_ProviderFake):
    """Black Forest Labs' Flux API on loopback: submit, poll ``polling_url``, fetch the signed sample.

    ``polling_host`` puts the polling URLs on another name of this server (``"localhost"``), as the
    public API's regional hosts do; ``poll_needs_key=False`` answers polls sent without the key.
    ``final`` maps a prompt word to the task's terminal status.
    """

    def __init__(
        self,
        *,
        pending_polls: int = 1,
        final: Mapping[str, str] | None = None,
        polling_host: str | None = None,
        poll_needs_key: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.pending_polls = pending_polls
        self.final = dict(final or {})
        self.polling_host = polling_host
        self.poll_needs_key = poll_needs_key
        self.tasks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def _key_sent(self, request: RecordedRequest) -> str:
        return request.headers.get("x-key") or request.headers.get("authorization", "").removeprefix("Bearer ")

    def default_reply(self, request: RecordedRequest) -> FakeReply:
        parts = urlsplit(request.path)
        if request.method == "GET" and parts.path.startswith("/files/"):
            return super().default_reply(RecordedRequest("GET", parts.path, request.headers, b""))
        sent = self._key_sent(request)
        polling = request.method == "GET" and parts.path.endswith("/v1/get_result")
        if self.api_key is not None and sent != self.api_key and (self.poll_needs_key or not polling):
            return FakeReply.json({"detail": f"Invalid key: {sent}"}, status=403)
        if polling:
            task_id = (parse_qs(parts.query).get("id") or [""])[0]
            return self._poll(task_id)
        match = _FLUX_PATH.search(parts.path)
        if request.method != "POST" or match is None:
            return FakeReply.json({"detail": "Not Found"}, status=404)
        try:
            body = request.json()
        except ValueError:
            return FakeReply.json({"detail": [{"msg": "the body is not JSON"}]}, status=422)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt:
            return FakeReply.json({"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}, status=422)
        refused = self._refused(prompt, sent)
        if refused:
            return FakeReply.json({"detail": [{"loc": ["body", "prompt"], "msg": refused}]}, status=422)
        task_id = f"task-{next(self._ids):05d}"
        seed = body.get("seed") or _drawn_seed(prompt)
        size = _sized(body.get("aspect_ratio"), body.get("width"), body.get("height"), self.long_side)
        final = next((status for word, status in self.final.items() if word in prompt), "Ready")
        with self._lock:
            self.tasks[task_id] = {
                "model": match.group(1),
                "prompt": prompt,
                "seed": seed,
                "size": size,
                "pending": self.pending_polls,
                "final": final,
            }
        base = self.url if self.polling_host is None else self.url.replace("127.0.0.1", self.polling_host)
        return FakeReply.json({"id": task_id, "polling_url": f"{base}/v1/get_result?id={task_id}"})

    def _poll(self, task_id: str) -> FakeReply:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is not None and task["pending"] > 0:
                task["pending"] -= 1
                return FakeReply.json({"id": task_id, "status": "Pending", "result": None, "progress": 0.5})
        if task is None:
            return FakeReply.json({"id": task_id, "status": "Task not found"})
        if task["final"] != "Ready":
            return FakeReply.json({"id": task_id, "status": task["final"], "result": None})
        data = fake_png(task["prompt"], task["seed"], task["size"])
        url = self.host(data, f"{task_id}.png") + "?se=2026-12-04T21%3A00&sig=fake-signature"
        result = {"sample": url, "prompt": task["prompt"], "seed": task["seed"]}
        return FakeReply.json({"id": task_id, "status": "Ready", "result": result})
