"""Any request as a ready-to-run snippet, like the relay page's example code: curl, Python (httpx)
and JavaScript (fetch).

The key is never written unless the caller asks with ``include_key=True``: the snippet reads it
from the ``SDKIT_API_KEY`` environment variable instead (``$SDKIT_API_KEY`` in the shell,
``os.environ`` in Python, ``process.env`` in Node.js). A base URL left out is read the same way
from ``SDKIT_BASE_URL``. The body is the request's JSON exactly (``request.to_json()``).
"""

from __future__ import annotations

import json
import mimetypes
import os
import pprint
import shlex
import textwrap

from sdkit.backends.relay.apirequest import (
    ChatRequest,
    ImageEditRequest,
    ImagesRequest,
    endpoint_url,
    request_headers,
)
from sdkit.errors import ValidationError
from sdkit.secret import Secret

__all__ = ["KEY_ENV", "LANGUAGES", "export_request", "to_curl", "to_javascript", "to_python"]

LANGUAGES = ("curl", "python", "js")
KEY_ENV = "SDKIT_API_KEY"
BASE_URL_ENV = "SDKIT_BASE_URL"


Request = ChatRequest | ImagesRequest | ImageEditRequest
#: Where an edits snippet reads the init image when no path is given.
DEFAULT_IMAGE_PATH = "image.png"


def _check(request: object) -> None:
    if not isinstance(request, (ChatRequest, ImagesRequest, ImageEditRequest)):
        raise ValidationError("request", request, "must be a ChatRequest, an ImagesRequest or an ImageEditRequest")


def _file(image_path: str | os.PathLike | None) -> tuple[str, str, str]:
    """(path, file name, media type) of the init image an edits snippet uploads."""
    path = os.fspath(image_path) if image_path is not None else DEFAULT_IMAGE_PATH
    mime = mimetypes.guess_type(path)[0] or "image/png"
    return path, os.path.basename(path) or DEFAULT_IMAGE_PATH, mime


def _curl_quoted(text: str) -> str:
    """A file name in curl's ``--form`` syntax: double-quoted, so ``;`` and ``,`` in it stay part of the name."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _form_headers() -> dict[str, str]:
    """A multipart request's headers: the client writes Content-Type (with its boundary) itself."""
    return {k: v for k, v in request_headers("KEY").items() if k != "Content-Type"}


def _key(api_key: Secret | str | None, include_key: bool) -> str | None:
    """The literal key when asked to include it, else None (the snippet reads the environment)."""
    if not include_key:
        return None
    value = api_key.reveal() if isinstance(api_key, Secret) else api_key
    if not value:
        raise ValidationError("api_key", None, f"include_key=True needs a key (pass api_key or set {KEY_ENV})")
    return value


def to_curl(
    request: Request,
    base_url: str | None = None,
    api_key: Secret | str | None = None,
    *,
    include_key: bool = False,
    image_path: str | os.PathLike | None = None,
) -> str:
    """A curl command in the page's layout: ``--location --request POST``, the three headers,
    ``--data-raw`` with the JSON body (an edits request: ``--form`` parts, the image read from ``image_path``)."""
    _check(request)
    key = _key(api_key, include_key)
    url = shlex.quote(endpoint_url(base_url, request.path)) if base_url else f'"${BASE_URL_ENV}{request.path}"'
    lines = [f"curl --location --request POST {url}"]
    edit = isinstance(request, ImageEditRequest)
    for name, value in (_form_headers() if edit else request_headers("KEY")).items():
        if name == "Authorization":
            lines.append(
                f"--header {shlex.quote('Authorization: Bearer ' + key)}"
                if key
                else f'--header "Authorization: Bearer ${KEY_ENV}"'
            )
        else:
            lines.append(f"--header {shlex.quote(f'{name}: {value}')}")
    if isinstance(request, ImageEditRequest):
        path, filename, mime = _file(image_path)
        part = f"image=@{_curl_quoted(path)};type={mime};filename={_curl_quoted(filename)}"
        lines.append(f"--form {shlex.quote(part)}")
        lines += [f"--form-string {shlex.quote(f'{k}={v}')}" for k, v in request.to_fields()]
    else:
        lines.append(f"--data-raw {shlex.quote(request.to_json())}")
    return " \\\n".join(lines) + "\n"


def _py_literal(value: object) -> str:
    return pprint.pformat(value, sort_dicts=False, width=100)


def to_python(
    request: Request,
    base_url: str | None = None,
    api_key: Secret | str | None = None,
    *,
    include_key: bool = False,
    image_path: str | os.PathLike | None = None,
) -> str:
    """A Python script using httpx that sends the request and prints the reply."""
    _check(request)
    key = _key(api_key, include_key)
    edit = isinstance(request, ImageEditRequest)
    needs_os = not base_url or not key
    if base_url:
        url = json.dumps(endpoint_url(base_url, request.path))
    else:
        url = f'os.environ["{BASE_URL_ENV}"].rstrip("/") + {json.dumps(request.path)}'
    auth = json.dumps(f"Bearer {key}") if key else f'"Bearer " + os.environ["{KEY_ENV}"]'
    headers = "\n".join(
        f"        {json.dumps(name)}: {auth if name == 'Authorization' else json.dumps(value)},"
        for name, value in (_form_headers() if edit else request_headers("KEY")).items()
    )
    if isinstance(request, ImageEditRequest):
        path, filename, mime = _file(image_path)
        data = textwrap.indent(_py_literal(dict(request.to_fields())), " " * 4).lstrip()
        files = f"{{'image': ({filename!r}, open({path!r}, 'rb'), {mime!r})}}"
        payload = f"    data={data},\n    files={files},\n"
    else:
        body = textwrap.indent(_py_literal(request.to_body()), " " * 4).lstrip()
        payload = f"    json={body},\n"
    head = "import os\n\nimport httpx\n" if needs_os else "import httpx\n"
    return (
        f"{head}\n"
        f"response = httpx.post(\n"
        f"    {url},\n"
        f"    headers={{\n{headers}\n    }},\n"
        f"{payload}"
        f"    timeout=300,\n"
        f")\n"
        f"response.raise_for_status()\n"
        f"print(response.json())\n"
    )


def to_javascript(
    request: Request,
    base_url: str | None = None,
    api_key: Secret | str | None = None,
    *,
    include_key: bool = False,
    image_path: str | os.PathLike | None = None,
) -> str:
    """JavaScript ``fetch`` (Node.js 18+ or a browser with the key filled in) that logs the reply."""
    _check(request)
    key = _key(api_key, include_key)
    if base_url:
        url = json.dumps(endpoint_url(base_url, request.path))
    else:
        url = f"`${{process.env.{BASE_URL_ENV}}}{request.path}`"
    auth = json.dumps(f"Bearer {key}") if key else f"`Bearer ${{process.env.{KEY_ENV}}}`"
    headers = "\n".join(
        f"    {json.dumps(name)}: {auth if name == 'Authorization' else json.dumps(value)},"
        for name, value in (
            _form_headers() if isinstance(request, ImageEditRequest) else request_headers("KEY")
        ).items()
    )
    head = ""
    if isinstance(request, ImageEditRequest):  # Node.js 18+: FormData and Blob are global
        path, filename, mime = _file(image_path)
        blob = f'new Blob([require("fs").readFileSync({json.dumps(path)})], {{ type: {json.dumps(mime)} }})'
        head = f'const form = new FormData();\nform.append("image", {blob}, {json.dumps(filename)});\n'
        head += "".join(
            f"form.append({json.dumps(k)}, {json.dumps(v, ensure_ascii=False)});\n" for k, v in request.to_fields()
        )
        body_line = "  body: form,\n"
    else:
        body = textwrap.indent(json.dumps(request.to_body(), ensure_ascii=False, indent=2), " " * 2).lstrip()
        body_line = f"  body: JSON.stringify({body}),\n"
    return (
        f"{head}"
        f"fetch({url}, {{\n"
        f'  method: "POST",\n'
        f"  headers: {{\n{headers}\n  }},\n"
        f"{body_line}"
        f"}})\n"
        f"  .then((response) => response.json())\n"
        f"  .then((result) => console.log(JSON.stringify(result)))\n"
        f"  .catch((error) => console.error(error));\n"
    )


def export_request(
    request: Request,
    language: str = "curl",
    base_url: str | None = None,
    api_key: Secret | str | None = None,
    *,
    include_key: bool = False,
    image_path: str | os.PathLike | None = None,
) -> str:
    """The request as a snippet in ``language`` (``curl``, ``python`` or ``js``); an edits request's snippet
    uploads the file at ``image_path`` (default ``image.png``)."""
    makers = {"curl": to_curl, "python": to_python, "js": to_javascript}
    if language not in makers:
        raise ValidationError("language", language, f"must be one of {', '.join(LANGUAGES)}")
    return makers[language](request, base_url, api_key, include_key=include_key, image_path=image_path)
