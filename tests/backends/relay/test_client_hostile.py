"""Loopback relays written to hurt the client: each ends in an SdkitError, in time, in bounded memory.

Each relay is a raw socket server on 127.0.0.1 that answers every request with a function of the
connection; it stops when the client hangs up, when the test ends, or after ``MAX_SERVE_S``.
The limits are set small so that a gigabyte case trips early; ``ru_maxrss`` (this process's peak
so far) shows the memory never grew past ``MAX_RSS``.
"""

import asyncio
import gzip
import io
import json
import resource
import socket
import struct
import threading
import time
import zlib

import pytest
from PIL import Image

from sdkit import (
    APITimeoutError,
    AsyncClient,
    ChatRequest,
    Client,
    FakeRelay,
    FakeReply,
    Limits,
    ReplyError,
    ReplyTooLargeError,
    RetryPolicy,
    SdkitError,
    ServerError,
)
from sdkit.backends.relay.fakerelay import fake_png
from sdkit.backends.relay.reply import decode_image

MAX_SERVE_S = 15.0
MAX_RSS = 1.5 * 2**30
SLACK_S = 1.0  # scheduling on a busy machine: a limit of T seconds must end before T + SLACK_S
KEY = "sk-hostile-5d1f0c9e7a3b2468"
MiB = 2**20
NO_RETRY = RetryPolicy(max_retries=0)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def chat_json(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}).encode()


def head(status: int = 200, headers: dict | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Hostile:
    """A raw loopback server; ``behave(conn, method, path, relay)`` writes whatever it likes."""

    def __init__(self, behave):
        self.behave = behave
        self.stopped = threading.Event()
        self.requests: list[tuple[str, str, dict]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()

    def alive(self, start: float) -> bool:
        return not self.stopped.is_set() and time.monotonic() - start < MAX_SERVE_S

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    data += piece
                top, _, rest = data.partition(b"\r\n\r\n")
                first, *lines = top.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
                need = int(headers.get("content-length", 0)) - len(rest)
                while need > 0:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    need -= len(piece)
                method, path, _ = first.split(" ", 2)
                self.requests.append((method, path, headers))
                self.behave(conn, method, path, self)
            except OSError:  # the client hung up: that is the point
                pass


def run(kind: str, url: str, request="a cat", **kw):
    """``chat`` through the sync or the async client; (outcome, seconds)."""
    kw.setdefault("retry", NO_RETRY)
    start = time.monotonic()
    try:
        if kind == "sync":
            with Client(url, api_key=KEY, **kw) as client:
                outcome = client.chat(request)
        else:

            async def main():
                async with AsyncClient(url, api_key=KEY, **kw) as client:
                    return await client.chat(request)

            outcome = asyncio.run(main())
    except Exception as exc:  # the test looks at what came out
        outcome = exc
    return outcome, time.monotonic() - start


KINDS = ["sync", "async"]


def assert_error(outcome, cls, *words):
    assert isinstance(outcome, cls), repr(outcome)
    assert isinstance(outcome, SdkitError)
    for word in words:
        assert word in str(outcome), str(outcome)
    assert KEY not in str(outcome)
    assert peak_rss() < MAX_RSS


# --- bytes --------------------------------------------------------------------------------------


def gzip_bomb(conn, method, path, relay, layers=1):
    """A gzip body inflating to gigabytes of zeros, compressed as it is sent."""
    conn.sendall(head(200, {"Content-Type": "application/json", "Content-Encoding": ", ".join(["gzip"] * layers)}))
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MiB
    start = time.monotonic()
    for _ in range(4096):  # 4 GiB
        if not relay.alive(start):
            return
        out = z.compress(block)
        if out:
            conn.sendall(out)


@pytest.mark.parametrize("kind", KINDS)
def test_a_gzip_bomb_stops_at_max_reply_bytes(kind):
    with Hostile(gzip_bomb) as relay:
        outcome, seconds = run(kind, relay.url, limits=Limits(max_reply_bytes=4 * MiB), timeout=20)
    assert_error(outcome, ReplyTooLargeError, "max_reply_bytes=4194304", "Limits(max_reply_bytes=")
    assert outcome.limit == "max_reply_bytes" and outcome.value == 4 * MiB
    assert seconds < 20


def test_a_gzip_bomb_with_the_default_limits_stays_small():
    before = peak_rss()
    with Hostile(gzip_bomb) as relay:
        outcome, seconds = run("sync", relay.url, timeout=20)
    assert_error(outcome, ReplyTooLargeError, f"max_reply_bytes={Limits().max_reply_bytes}")
    assert peak_rss() - before < 512 * MiB
    assert seconds < 20


def test_gzip_inside_gzip_is_refused():
    with Hostile(lambda *a: gzip_bomb(*a, layers=2)) as relay:
        outcome, _ = run("sync", relay.url)
    assert_error(outcome, ReplyError, "gzip, gzip", "one layer")


@pytest.mark.parametrize("kind", KINDS)
def test_content_encoding_gzip_with_bytes_that_are_not_gzip_is_a_reply_error(kind):
    def behave(conn, *_):
        body = b"this is not gzip at all " * 10
        conn.sendall(head(200, {"Content-Encoding": "gzip", "Content-Length": len(body)}) + body)

    with Hostile(behave) as relay:
        outcome, _ = run(kind, relay.url)
    assert_error(outcome, ReplyError, "Content-Encoding: gzip")


def test_an_honest_gzip_reply_is_read():
    png = fake_png("a cat")
    import base64

    body = gzip.compress(chat_json(f"![x](data:image/png;base64,{base64.b64encode(png).decode()})"))

    def behave(conn, *_):
        conn.sendall(head(200, {"Content-Encoding": "gzip", "Content-Length": len(body)}) + body)

    with Hostile(behave) as relay:
        outcome, _ = run("sync", relay.url)
    assert not isinstance(outcome, Exception), outcome
    assert outcome.images[0].data == png
    assert "gzip" in relay.requests[0][2]["accept-encoding"]


def endless(conn, method, path, relay, content_length=None):
    headers = {"Content-Type": "application/json"}
    if content_length:
        headers["Content-Length"] = content_length
    conn.sendall(head(200, headers) + b'{"choices": [{"message": {"content": "')
    start = time.monotonic()
    chunk = b"A" * 65536
    while relay.alive(start):
        conn.sendall(chunk)


@pytest.mark.parametrize("kind", KINDS)
def test_a_declared_content_length_of_2_gb_is_refused_before_reading(kind):
    with Hostile(lambda *a: endless(*a, content_length=2 * 2**30)) as relay:
        outcome, seconds = run(kind, relay.url, timeout=20)
    assert_error(outcome, ReplyTooLargeError, "declares 2147483648 bytes", "max_reply_bytes=")
    assert seconds < 2


@pytest.mark.parametrize("kind", KINDS)
def test_an_endless_body_stops_at_max_reply_bytes(kind):
    with Hostile(endless) as relay:
        outcome, seconds = run(kind, relay.url, timeout=20, limits=Limits(max_reply_bytes=8 * MiB))
    assert_error(outcome, ReplyTooLargeError, "max_reply_bytes=8388608")
    assert seconds < 20


def test_a_huge_error_body_is_cut_not_held():
    def behave(conn, method, path, relay):
        conn.sendall(head(500, {"Content-Length": 2 * 2**30}) + b"the GPU fell over " * 100)
        start = time.monotonic()
        while relay.alive(start):
            conn.sendall(b"x" * 65536)

    with Hostile(behave) as relay:
        outcome, seconds = run("sync", relay.url, timeout=20)
    assert_error(outcome, ServerError, "HTTP 500", "the GPU fell over")
    assert seconds < 5


# --- time ---------------------------------------------------------------------------------------


def sse_forever(conn, method, path, relay):
    conn.sendall(head(200, {"Content-Type": "text/event-stream"}))
    start = time.monotonic()
    n = 0
    while relay.alive(start):
        chunk = {"choices": [{"index": 0, "delta": {"content": f"step {n} "}}]}
        conn.sendall(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        n += 1
        time.sleep(0.01)


@pytest.mark.parametrize("kind", KINDS)
def test_a_never_ending_stream_ends_at_the_timeout(kind):
    with Hostile(sse_forever) as relay:
        outcome, seconds = run(kind, relay.url, timeout=1.5)
    assert_error(outcome, APITimeoutError, "within 1.5 s", "timeout=1.5", "Client(timeout=")
    assert 1.4 < seconds < 1.5 + SLACK_S


@pytest.mark.parametrize("kind", KINDS)
def test_a_never_ending_streamed_reply_ends_at_stream_timeout(kind):
    request = ChatRequest.from_prompt("a cat", stream=True)
    with Hostile(sse_forever) as relay:
        outcome, seconds = run(kind, relay.url, request, timeout=0.5, limits=Limits(stream_timeout=1.5))
    assert_error(outcome, APITimeoutError, "stream_timeout=1.5", "Limits(stream_timeout=")
    assert 1.4 < seconds < 1.5 + SLACK_S  # chunks every 10 ms: the per-read 0.5 s never trips


def drip(conn, method, path, relay, headers_too=False):
    reply = head(200, {"Content-Type": "application/json"}) + chat_json("x" * 1000)
    if not headers_too:
        conn.sendall(reply[:200])
        reply = reply[200:]
    start = time.monotonic()
    for i in range(len(reply)):
        if not relay.alive(start):
            return
        conn.sendall(reply[i : i + 1])
        time.sleep(0.05)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("headers_too", [False, True])
def test_a_server_dripping_a_byte_at_a_time_ends_at_the_timeout(kind, headers_too):
    with Hostile(lambda *a: drip(*a, headers_too=headers_too)) as relay:
        outcome, seconds = run(kind, relay.url, timeout=1.5)
    assert_error(outcome, APITimeoutError, "within 1.5 s", "timeout=1.5")
    assert 1.4 < seconds < 1.5 + SLACK_S


def test_a_timeout_is_not_retried_past_the_limit():
    with Hostile(drip) as relay:
        outcome, seconds = run("sync", relay.url, timeout=1.0, retry=RetryPolicy(max_retries=3, initial_delay=0.01))
    assert_error(outcome, APITimeoutError, "timeout=1")
    assert seconds < 1.0 + SLACK_S and len(relay.requests) == 1


# --- images -------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` (its pixel data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", KINDS)
def test_a_data_uri_png_declaring_30000_by_30000_pixels_is_refused(kind):
    import base64

    uri = "data:image/png;base64," + base64.b64encode(png_header(30000, 30000)).decode()
    relay = FakeRelay()
    with relay:
        relay.script(FakeReply.chat(f"![x]({uri})"))
        outcome, _ = run(kind, relay.url)
    assert_error(outcome, ReplyTooLargeError, "900000000 pixels", "max_image_pixels=", "Limits(max_image_pixels=")
    assert outcome.limit == "max_image_pixels"


def test_a_png_past_max_image_pixels_but_under_pil_s_bound_is_refused_from_its_header():
    import base64

    uri = "data:image/png;base64," + base64.b64encode(png_header(300, 200)).decode()
    with FakeRelay() as relay:
        relay.script(FakeReply.chat(f"![x]({uri})"))
        outcome, _ = run("sync", relay.url, limits=Limits(max_image_pixels=300 * 199))
    assert_error(outcome, ReplyTooLargeError, "300×200 = 60000 pixels", "max_image_pixels=59700")


def test_decoding_a_decompression_bomb_is_an_sdkit_error_not_pil_s():
    with pytest.raises(ReplyTooLargeError, match="max_image_pixels"):
        decode_image(png_header(30000, 30000))
    with pytest.raises(ReplyTooLargeError, match=r"PIL\.Image\.MAX_IMAGE_PIXELS"):  # past PIL's own bound: mapped
        decode_image(png_header(30000, 30000), max_pixels=10**12)
    image = Image.new("RGB", (4, 4))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    assert decode_image(buf.getvalue()).size == (4, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_an_image_url_redirecting_to_itself_stops_at_max_redirects(kind):
    def behave(conn, method, path, relay):
        if method == "POST":
            body = chat_json(f"![x]({relay.url}/img.png)")
            conn.sendall(head(200, {"Content-Length": len(body)}) + body)
        else:
            conn.sendall(head(302, {"Location": "/img.png", "Content-Length": 0}))

    with Hostile(behave) as relay:
        outcome, _ = run(kind, relay.url, limits=Limits(max_redirects=3))
    assert_error(outcome, ReplyError, "max_redirects=3", "Limits(max_redirects=")
    assert len([r for r in relay.requests if r[0] == "GET"]) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_a_huge_image_download_stops_at_max_image_bytes(kind):
    def behave(conn, method, path, relay):
        if method == "POST":
            body = chat_json(f"![x]({relay.url}/img.png)")
            conn.sendall(head(200, {"Content-Length": len(body)}) + body)
        else:
            conn.sendall(head(200, {"Content-Type": "image/png"}) + b"\x89PNG\r\n\x1a\n")
            start = time.monotonic()
            while relay.alive(start):
                conn.sendall(b"\0" * 65536)

    with Hostile(behave) as relay:
        outcome, _ = run(kind, relay.url, timeout=20, limits=Limits(max_image_bytes=2 * MiB))
    assert_error(outcome, ReplyTooLargeError, "max_image_bytes=2097152", "Limits(max_image_bytes=")


def test_a_redirect_body_is_never_read():
    """A 302 whose body never ends: the client goes to the Location at once."""
    png = fake_png("a cat")

    def behave(conn, method, path, relay):
        if method == "POST":
            body = chat_json(f"![x]({relay.url}/start.png)")
            conn.sendall(head(200, {"Content-Length": len(body)}) + body)
        elif path == "/start.png":
            conn.sendall(head(302, {"Location": "/real.png"}))
            start = time.monotonic()
            while relay.alive(start):
                conn.sendall(b"\0" * 65536)
        else:
            conn.sendall(head(200, {"Content-Length": len(png)}) + png)

    with Hostile(behave) as relay:
        outcome, seconds = run("sync", relay.url, timeout=20)
    assert not isinstance(outcome, Exception), outcome
    assert outcome.images[0].data == png and seconds < 5


def test_too_many_images_in_one_reply_is_refused():
    import base64

    uri = "data:image/png;base64," + base64.b64encode(fake_png("a cat")).decode()
    with FakeRelay() as relay:
        relay.script(FakeReply.chat(" ".join(f"![{i}]({uri})" for i in range(5))))
        outcome, _ = run("sync", relay.url, limits=Limits(max_images=4))
    assert_error(outcome, ReplyTooLargeError, "5 images", "max_images=4")


# --- what held before, kept tested --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_cross_origin_redirect_drops_the_authorization_header(kind):
    with FakeRelay(api_key=None) as other:

        def behave(conn, method, path, relay):
            conn.sendall(head(307, {"Location": other.url + path, "Content-Length": 0}))

        with Hostile(behave) as relay:
            outcome, _ = run(kind, relay.url)
        assert relay.requests[0][2]["authorization"] == f"Bearer {KEY}"  # sent to the relay itself
        assert not isinstance(outcome, Exception), outcome
        assert other.api_requests and all("authorization" not in r.headers for r in other.requests)


@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_to_a_file_url_is_refused(kind):
    def behave(conn, method, path, relay):
        if method == "POST":
            body = chat_json(f"![x]({relay.url}/img.png)")
            conn.sendall(head(200, {"Content-Length": len(body)}) + body)
        else:
            conn.sendall(head(302, {"Location": "file:///etc/passwd", "Content-Length": 0}))

    with Hostile(behave) as relay:
        outcome, _ = run(kind, relay.url)
    assert_error(outcome, ReplyError, "redirects to 'file://", "/etc/passwd", "only http(s)")


def test_a_file_url_in_a_reply_is_not_fetched():
    with FakeRelay() as relay:
        relay.script(FakeReply.chat("![x](file:///etc/passwd)"))
        outcome, _ = run("sync", relay.url)
    assert_error(outcome, ReplyError, "holds no image")


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_that_goes_silent_ends_after_timeout_not_stream_timeout(kind):
    def behave(conn, method, path, relay):
        conn.sendall(head(200, {"Content-Type": "text/event-stream"}) + b": generating\n\n")
        start = time.monotonic()
        while relay.alive(start):
            time.sleep(0.05)

    request = ChatRequest.from_prompt("a cat", stream=True)
    with Hostile(behave) as relay:
        outcome, seconds = run(kind, relay.url, request, timeout=1.0, limits=Limits(stream_timeout=30))
    assert_error(outcome, APITimeoutError, "nothing received for 1 s", "Client(timeout=")
    assert seconds < 1.0 + SLACK_S


def _with_body(body: bytes, **headers) -> bytes:
    return head(200, {"Content-Length": len(body), **headers}) + body


MALFORMED = {
    "bad Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
    "two Content-Lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "bad chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "bad status line": b"HTTP/1.1 999999 X\r\nContent-Length: 0\r\n\r\n",
    "not HTTP": b"{}",
    "brotli": _with_body(b"{}", **{"Content-Encoding": "br"}),
    "deflate garbage": _with_body(b"hello", **{"Content-Encoding": "deflate"}),
    "charset that cannot replace": _with_body('{"é": 1'.encode(), **{"Content-Type": "text/plain; charset=idna"}),
    "5000-digit number": _with_body(b'{"choices": [], "created": ' + b"1" * 5000 + b"}"),
    "JSON nested 200000 deep": _with_body(b"[" * 200_000 + b"]" * 200_000),
    "redirect to ftp": head(302, {"Location": "ftp://127.0.0.1/x", "Content-Length": 0}),
    "image URL with a NUL": _with_body(
        chat_json("").replace(b'"content": ""', b'"images": ["http://a\\u0000b/x.png"]')
    ),
    "image URL with a bad port": _with_body(
        chat_json("").replace(b'"content": ""', b'"images": ["http://:99999/x.png"]')
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_replies_are_sdkit_errors(kind, name):
    def behave(conn, *_):
        conn.sendall(MALFORMED[name])

    with Hostile(behave) as relay:
        outcome, seconds = run(kind, relay.url, timeout=3)
    assert_error(outcome, SdkitError)
    assert seconds < 3
