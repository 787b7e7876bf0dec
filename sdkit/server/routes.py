"""The endpoints, as top-level handlers on two routers (``/v1`` behind the key, the rest open), each taking
the :class:`~sdkit.server.state.ServerState` as a dependency.

A request's body is read within its byte cap and time limit, parsed by :mod:`sdkit.server.wire`,
checked against the work budget, and queued; the reply waits for the job, or answers 504 when the
request's deadline passes and 499 when the client goes away (the job is then dropped if it waits,
stopped at its next step if it runs).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from sdkit.errors import InvalidRequestError, SdkitError
from sdkit.server.auth import authorized
from sdkit.server.defaults import DEFAULT_HOST, DEFAULT_PORT
from sdkit.server.jobqueue import Job, JobOutput
from sdkit.server.state import ServerState
from sdkit.server.wire import (
    chat_chunks,
    chat_completion,
    chat_role_chunks,
    check_work,
    error_body,
    images_reply,
    load_json,
    models_reply,
    parse_chat_request,
    parse_images_request,
    sse_event,
)

__all__ = ["api", "error_response", "public", "require_key", "server_state"]

#: How often a waiting request looks whether its client is still there.
_DISCONNECT_POLL_S = 0.25


def server_state(request: Request) -> ServerState:
    """The state :func:`~sdkit.server.app.create_app` put on the app."""
    return request.app.state.sdkit


State = Annotated[ServerState, Depends(server_state)]


def require_key(request: Request, state: State) -> None:
    """Refuse (401) a request without one of the server's keys as its Bearer token."""
    if not authorized(request.headers.get("authorization"), state.keys):
        raise HTTPException(
            401,
            "Incorrect or missing API key: send it as a Bearer token in the Authorization header.",
            headers={"WWW-Authenticate": "Bearer"},
        )


#: ``/health`` and the image files: no key needed (image names are unguessable).
public = APIRouter()
#: The OpenAI-style API: every request needs a key when the server has any.
api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A reply in OpenAI's error shape."""
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


# --- reading, checking and waiting ------------------------------------------------------------------


def _too_large(max_body_bytes: int) -> InvalidRequestError:
    return InvalidRequestError(
        None, None, f"the body is larger than {max_body_bytes} bytes", status=413, code="request_too_large"
    )


async def read_json(request: Request, state: ServerState) -> dict[str, Any]:
    """The body as a JSON object, read within the byte cap (413) and the body timeout (408)."""
    limit, timeout_s = state.limits.max_body_bytes, state.limits.body_timeout_s
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise InvalidRequestError(
            None, None, f"the body was not sent within {timeout_s:g} s", status=408, code="request_timeout"
        ) from None
    return load_json(b"".join(chunks))


def parse(kind: Callable[..., Any], data: dict[str, Any], state: ServerState) -> Any:
    """``data`` parsed by ``kind`` (a :mod:`~sdkit.server.wire` parser) and checked against the work budget."""
    limits = state.limits
    req = kind(data, state.served, max_images=limits.max_images, max_prompt_chars=limits.max_prompt_chars)
    check_work(req.params, max_work=state.work_budget(), native_size=state.native_size())
    return req


def _timeout_message(state: ServerState) -> str:
    return f"the request did not finish within this server's limit of {state.limits.request_timeout_s:g} s"


async def wait_for(job: Job, request: Request, started: float, state: ServerState) -> JobOutput | Response:
    """The job's output; or, when the client went away (499) or the deadline passed (504), a
    reply, the job being dropped if it waits or stopped at its next step if it runs."""
    future = asyncio.wrap_future(job.future)
    deadline = started + state.limits.request_timeout_s

    def abandon() -> None:
        job.abandon()
        future.cancel()  # nobody will read its outcome

    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                abandon()
                return error_response(504, _timeout_message(state) + "; it was stopped", code="timeout")
            done, _ = await asyncio.wait({future}, timeout=min(_DISCONNECT_POLL_S, left))
            if done:
                return future.result()
            if await request.is_disconnected():
                abandon()
                return Response(status_code=499)
    except asyncio.CancelledError:
        abandon()
        raise


def _own_url(request: Request) -> str:
    """``http://host:port`` of the socket the request came in on (never its ``Host`` header)."""
    host, port = request.scope.get("server") or (DEFAULT_HOST, DEFAULT_PORT)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}" if port is None else f"http://{shown}:{port}"


# --- endpoints ---------------------------------------------------------------------------------------


@public.get("/health")
async def health(state: State):
    queue = state.queue
    stats = queue.stats()
    status = "error" if queue.warmup_error else "ok" if stats["ready"] else "loading"
    reply: dict[str, Any] = {"status": status, "model": state.served.id, "queue": stats}
    if queue.warmup_error:
        reply["error"] = state.scrub(queue.warmup_error)
    return reply


@api.get("/models")
async def models(state: State):
    return models_reply(state.served)


@api.get("/models/{name:path}")
async def model_info(name: str, state: State):
    for item in models_reply(state.served)["data"]:
        if item["id"] == name:
            return item
    raise InvalidRequestError("model", name, f"the model {name!r} does not exist", status=404, code="model_not_found")


@api.post("/chat/completions")
async def chat_completions(request: Request, state: State) -> Response:
    started = time.monotonic()
    req = parse(parse_chat_request, await read_json(request, state), state)
    job = state.queue.submit(req.params)
    ident = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": req.model}
    if req.stream:
        return StreamingResponse(
            _stream_chat(job, req, ident, started, state),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    output = await wait_for(job, request, started, state)
    if isinstance(output, Response):
        return output
    reply = chat_completion(**ident, pngs=output.pngs, choices=req.choices, prompt_tokens=output.prompt_tokens)
    return JSONResponse(reply)


async def _stream_chat(
    job: Job, req: Any, ident: dict[str, Any], started: float, state: ServerState
) -> AsyncIterator[bytes]:
    # Starlette cancels this generator when the client disconnects; the job is dropped with it.
    try:
        for event in chat_role_chunks(**ident, choices=req.choices):
            yield sse_event(event)
        left = max(0.0, started + state.limits.request_timeout_s - time.monotonic())
        try:
            output = await asyncio.wait_for(asyncio.wrap_future(job.future), left)
        except TimeoutError:
            yield sse_event(error_body(504, _timeout_message(state), code="timeout"))
        except SdkitError as exc:
            yield sse_event(error_body(500, state.scrub(f"generation failed: {exc}"), code="generation_failed"))
        else:
            events = chat_chunks(
                **ident,
                pngs=output.pngs,
                choices=req.choices,
                prompt_tokens=output.prompt_tokens,
                include_usage=req.include_usage,
            )
            for event in events:
                yield sse_event(event)
        yield sse_event("[DONE]")
    finally:
        job.abandon()


@api.post("/images/generations")
async def images_generations(request: Request, state: State) -> Response:
    started = time.monotonic()
    req = parse(parse_images_request, await read_json(request, state), state)
    job = state.queue.submit(req.params)
    output = await wait_for(job, request, started, state)
    if isinstance(output, Response):
        return output
    if req.response_format == "b64_json":
        items = [{"b64_json": base64.b64encode(png).decode("ascii")} for png in output.pngs]
    else:
        base = (state.public_url or _own_url(request)).rstrip("/")
        items = [{"url": f"{base}/files/images/{state.images.put(png)}"} for png in output.pngs]
    return JSONResponse(images_reply(created=int(time.time()), items=items))


@public.get("/files/images/{name}")
async def stored_image(name: str, state: State) -> Response:
    png = state.images.get(name)
    if png is None:
        raise HTTPException(404, "no such image (image URLs expire after an hour)")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
