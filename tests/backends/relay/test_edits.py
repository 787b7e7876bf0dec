"""img2img on the images backend: ``POST /v1/images/edits`` as multipart/form-data, over real HTTP on loopback."""

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from sdkit import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    FakeRelay,
    FakeReply,
    GenerationParams,
    ImageEditRequest,
    RemoteBackend,
    RetryPolicy,
    ValidationError,
    load_manifest,
    run_study,
    verify_study,
)
from sdkit.backends.relay.fakerelay import fake_color, fake_edit_png
from sdkit.initimage import init_image_png

KEY = "sk-edits-secret-0123456789abcdef"
FAST = RetryPolicy(max_retries=0)


def init_picture() -> Image.Image:
    """A picture with structure (a gradient and a square), so that 'the init image was used' is visible."""
    x = np.linspace(0, 255, 64, dtype=np.uint8)
    arr = np.stack([np.tile(x, (64, 1)), np.tile(x[:, None], (1, 64)), np.full((64, 64), 40, np.uint8)], axis=-1)
    arr[20:40, 20:40] = (250, 250, 250)
    return Image.fromarray(arr, "RGB")


@pytest.fixture
def relay():
    with FakeRelay(api_key=KEY) as r:
        yield r


def backend_for(relay, **kw):
    kw.setdefault("retry", FAST)
    return RemoteBackend("images", relay.url, api_key=KEY, **kw)


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_img2img_goes_to_images_edits_as_multipart_with_the_init_image_as_png(relay):
    params = GenerationParams(
        "a cat", seed=7, init_image=init_picture(), denoising_strength=0.4, negative_prompt="blur", width=64, height=64
    )
    result = backend_for(relay, sd_extras=True).generate(params)
    [sent] = relay.api_requests
    assert sent.path == "/v1/images/edits"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    form = sent.form()
    image = form.pop("image")
    assert isinstance(image, bytes) and image.startswith(b"\x89PNG")
    assert (pixels(Image.open(io.BytesIO(image))) == pixels(init_picture())).all()  # the init image, lossless
    assert b'filename="image.png"\r\nContent-Type: image/png' in sent.body
    assert form == {
        "prompt": "a cat",
        "model": "stable-diffusion-api",
        "size": "64x64",
        "strength": "0.4",
        "seed": "7",
        "negative_prompt": "blur",
        "num_inference_steps": "20",
        "guidance_scale": "7.5",
    }
    # the reply's image is what the result holds and records, with the init image's key and strength
    expected = fake_edit_png(image, "a cat", 7, 0.4, (64, 64))
    assert (pixels(result.images[0]) == pixels(Image.open(io.BytesIO(expected)))).all()
    assert result.seeds == (7,) and result.details["endpoint"] == "/v1/images/edits"
    record = result.record(0)
    assert record["params"]["init_image"] == params.init_image and record["params"]["denoising_strength"] == 0.4
    assert '"b64_json"' in result.details["raw_reply"][0]


def test_the_images_distance_from_the_init_image_rises_with_the_strength_sent(relay):
    init = init_picture()
    backend = backend_for(relay, sd_extras=True)
    strengths = [0.1, 0.5, 0.9]
    results = backend.generate_many(
        [GenerationParams("a cat", seed=1, init_image=init, denoising_strength=s) for s in strengths]
    )
    assert sorted(float(r.form()["strength"]) for r in relay.api_requests) == strengths
    distance = [np.abs(pixels(r.images[0]) - pixels(init)).mean() for r in results]
    assert distance[0] < distance[1] < distance[2]
    # and the init image was used: the square stands out at a low strength
    low = pixels(results[0].images[0])
    assert low[30, 30].sum() > low[5, 5].sum() + 200


def test_without_sd_extras_one_request_asks_for_n_images_and_still_sends_the_strength(relay):
    params = GenerationParams("a cat", seed=1, num_images=2, init_image=init_picture(), denoising_strength=0.6)
    result = backend_for(relay).generate(params)
    [sent] = relay.api_requests
    form = sent.form()
    assert form["n"] == "2" and form["strength"] == "0.6"
    assert not {"seed", "negative_prompt", "num_inference_steps", "guidance_scale"} & set(form)
    assert len(result.images) == 2 and result.seeds == (None, None)


def test_url_replies_are_fetched(relay):
    result = backend_for(relay, response_format="url").generate(
        GenerationParams("a cat", seed=1, init_image=init_picture(), denoising_strength=1.0)
    )
    assert relay.api_requests[0].form()["response_format"] == "url"
    assert result.images[0].getpixel((0, 0)) == fake_color("a cat")  # strength 1: the colour alone
    assert result.details["image_urls"][0].startswith(relay.url + "/files/")


def test_a_retry_sends_the_same_multipart_body_and_errors_are_typed_without_the_key(relay):
    params = GenerationParams("a cat", seed=1, init_image=init_picture())
    relay.script(FakeReply.error(429, "slow down", retry_after=0))
    result = backend_for(relay, retry=RetryPolicy(max_retries=1, initial_delay=0.0)).generate(params)
    first, second = relay.api_requests
    assert first.body == second.body and result.details["attempts"] == [2]

    relay.script(FakeReply.error(400, f"strength is not supported (key {KEY})"))
    with pytest.raises(BadRequestError) as info:
        backend_for(relay).generate(params)
    assert info.value.status_code == 400 and KEY not in str(info.value) and KEY not in repr(info.value.body)

    with pytest.raises(AuthenticationError) as info:  # the fake echoes the wrong key sent; it is scrubbed
        RemoteBackend("images", relay.url, api_key="sk-wrong-key-0123456789", retry=FAST).generate(params)
    assert "sk-wrong-key-0123456789" not in str(info.value)


def test_the_key_is_in_no_output(relay):
    backend = backend_for(relay, sd_extras=True)
    result = backend.generate(GenerationParams("a cat", seed=1, init_image=init_picture()))
    assert KEY not in repr(backend) and KEY not in str(backend.identity())
    assert KEY not in repr(result.details) and KEY not in repr(result.record(0))
    request = backend.requests_for(GenerationParams("a cat", seed=1, init_image=init_picture()))[0][0]
    assert KEY not in repr(request) and KEY.encode() not in request.to_multipart()[1]


def test_the_chat_backend_refuses_an_init_image_naming_the_field_and_the_images_backend(relay):
    from sdkit.backends.base import check

    backend = RemoteBackend("chat", relay.url, api_key=KEY, retry=FAST)
    params = GenerationParams("a cat", seed=1, init_image=init_picture())
    with pytest.raises(ValidationError) as info:
        check(backend, [params])
    assert info.value.field == "init_image" and "use the images backend" in str(info.value)
    with pytest.raises(ValidationError):
        backend.generate(params)
    assert relay.api_requests == []


def test_an_unknown_init_image_key_is_refused_before_any_request(relay):
    from sdkit.backends.base import check

    params = GenerationParams("a cat", seed=1, init_image="sha256:" + "0" * 64)
    with pytest.raises(ValidationError) as info:
        check(backend_for(relay), [params])
    assert info.value.field == "init_image"
    assert relay.api_requests == []


def test_edit_requests_validate_their_fields():
    png = init_image_png(GenerationParams("x", init_image=init_picture()).init_image)
    with pytest.raises(ValidationError) as info:
        ImageEditRequest(image=b"GIF89a", prompt="a cat")
    assert info.value.field == "image"
    with pytest.raises(ValidationError) as info:
        ImageEditRequest(image=png, prompt="a cat", strength=1.5)
    assert info.value.field == "strength"
    with pytest.raises(ValidationError) as info:
        ImageEditRequest.from_params(GenerationParams("a cat"))
    assert info.value.field == "init_image"


def test_the_clients_edit_methods_sync_and_async(relay):
    params = GenerationParams("a dog", seed=2, init_image=init_picture(), denoising_strength=0.5)
    request = ImageEditRequest.from_params(params)
    with Client(relay.url, api_key=KEY, retry=FAST) as client:
        reply = client.edit(request)

    async def go():
        async with AsyncClient(relay.url, api_key=KEY, retry=FAST) as client:
            return await client.edit(request)

    areply = asyncio.run(go())
    assert reply.images[0].data == areply.images[0].data
    sync_sent, async_sent = relay.api_requests
    assert sync_sent.path == async_sent.path == "/v1/images/edits"
    assert sync_sent.form() == async_sent.form()  # the same fields and image (the boundaries differ)


def test_a_remote_img2img_study_archives_replies_and_verifies_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SDKIT_API_KEY", KEY)
    picture = tmp_path / "init.png"
    init_picture().save(picture)
    out = tmp_path / "study"
    with FakeRelay(api_key=KEY) as relay:
        spec = {
            "name": "remote-img2img",
            "backend": "images",
            "base_url": relay.url,
            "sd_extras": True,
            "params": {"prompt": "a cat", "width": 64, "height": 64, "init_image": str(picture)},
            "axes": {"x": "denoising_strength=0.2,0.8"},
            "seeds": [1],
        }
        run = run_study(spec, out, progress=False)
        assert {r.path for r in relay.api_requests} == {"/v1/images/edits"}
    assert (run.made, run.failed) == (2, 0)
    entries = load_manifest(out)
    assert all(e["regenerable"] is False and e["replies"] for e in entries)
    assert sorted(e["params"]["denoising_strength"] for e in entries) == [0.2, 0.8]
    assert {e["params"]["init_image"] for e in entries} == {GenerationParams("x", init_image=picture).init_image}
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path

    result = verify_study(out, progress=False)  # the relay is gone: checked from the archive alone
    assert result.ok and {c.status for c in result.checks} == {"archived"}


# --- snippets: `sdkit request … --backend images --init-image PATH` ---------------------------------


def _request_snippet(language, picture, *extra):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("SDKIT_BASE_URL", None)
    env.pop("OPENAI_BASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sdkit", "request", "a cat", f"--{language}", "--backend", "images",
         "--init-image", str(picture), "--strength", "0.3", "--seed", "5", "--size", "64x64", *extra],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    return proc


@pytest.mark.parametrize("language", ["curl", "python", "js"])
def test_an_edits_snippet_uploads_the_picture_and_the_fields(tmp_path, language):
    import json
    import os
    import shutil
    import subprocess
    import sys

    runner = {"curl": ["bash", "-c"], "python": [sys.executable, "-c"], "js": ["node", "-e"]}[language]
    if shutil.which(runner[0]) is None:
        pytest.skip(f"{runner[0]} is not installed")
    picture = tmp_path / 'my init\'s; "1".png'  # quotes and ; in the path: the snippet must quote them
    init_picture().save(picture)
    proc = _request_snippet(language, picture)
    assert proc.returncode == 0, proc.stderr
    snippet = proc.stdout
    assert KEY not in snippet and "/v1/images/edits" in snippet
    with FakeRelay(api_key=KEY) as relay:
        env = {**os.environ, "SDKIT_BASE_URL": relay.url, "SDKIT_API_KEY": KEY}
        ran = subprocess.run([*runner, snippet], capture_output=True, text=True, env=env, timeout=60)
        assert ran.returncode == 0, ran.stderr
        [sent] = relay.api_requests
    form = sent.form()
    assert form.pop("image") == picture.read_bytes()
    assert form == {"prompt": "a cat", "model": "stable-diffusion-api", "size": "64x64", "strength": "0.3", "seed": "5"}
    if language != "python":
        assert "b64_json" in json.loads(ran.stdout)["data"][0]


def test_request_refuses_an_init_image_for_chat_and_a_strength_without_one(tmp_path):
    picture = tmp_path / "init.png"
    init_picture().save(picture)
    proc = _request_snippet("curl", picture, "--backend", "chat")
    assert proc.returncode == 2 and "init_image" in proc.stderr and "--backend images" in proc.stderr
    proc = _request_snippet("curl", tmp_path / "missing.png")
    assert proc.returncode == 2 and "init_image" in proc.stderr
