import json
import warnings

import pytest

from sdkit import ChatRequest, GenerationParams, ImagesRequest, Message, SDExtras, ValidationError
from sdkit.backends.relay.apirequest import CHAT_PATH, IMAGES_PATH, endpoint_url, request_headers

PAGE_PROMPT = (
    "striking poses, stunning backdrop of rocky coastline and golden hour lighting, fashion-forward wardrobe, "
    "eye-catching accessories, warm and inviting color palette, sharp and detailed digital rendering, stunning "
    "high definition finish, on eye level, scenic, masterpiece"
)
# The page's example request body, byte for byte (shared/spec/README.md).
PAGE_BODY = '{"model": "stable-diffusion-api", "messages": [{"role": "user", "content": "' + PAGE_PROMPT + '"}]}'


def test_page_example_comes_out_as_the_page_writes_it():
    request = ChatRequest.from_prompt(PAGE_PROMPT)
    assert request.to_json() == PAGE_BODY
    assert list(request.to_body()) == ["model", "messages"]


def test_every_field_in_the_page_order_and_only_when_set():
    request = ChatRequest(
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "a cat"}],
        model="m",
        temperature=0.5,
        n=2,
        stop=["\n", "END"],
        max_tokens=100,
        presence_penalty=-1.5,
        frequency_penalty=2,
        logit_bias={50256: -100, "42": 3},
        user="u-1",
        stream=True,
    )
    body = request.to_body()
    assert list(body) == [
        "model",
        "messages",
        "temperature",
        "n",
        "stop",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "stream",
    ]
    assert body["stop"] == ["\n", "END"]
    assert body["logit_bias"] == {"50256": -100, "42": 3}
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert json.loads(request.to_json()) == body
    assert request.prompt == "a cat"


def test_sd_extras_are_sent_only_when_the_caller_opts_in():
    params = GenerationParams("a cat", negative_prompt="blurry", seed=7, width=512, height=768, num_inference_steps=30)
    plain = ChatRequest.from_params(params, model="sd")
    assert list(plain.to_body()) == ["model", "messages"]
    extra = ChatRequest.from_params(params, model="sd", sd_extras=True).to_body()
    assert extra["seed"] == 7
    assert extra["negative_prompt"] == "blurry"
    assert extra["num_inference_steps"] == 30
    assert extra["guidance_scale"] == 7.5
    assert extra["size"] == "512x768"
    assert SDExtras(seed=3).to_fields() == {"seed": 3}


def test_temperature_with_top_p_warns_but_is_allowed():
    with pytest.warns(UserWarning, match="not both"):
        request = ChatRequest.from_prompt("x", temperature=1.0, top_p=0.9)
    assert request.to_body()["top_p"] == 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatRequest.from_prompt("x", temperature=1.0)


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": -2.1}, "presence_penalty"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"n": 0}, "n"),
        ({"n": 1.5}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [1]}, "stop"),
        ({"stop": []}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"logit_bias": {"5": 101}}, "logit_bias[5]"),
        ({"logit_bias": {"word": 1}}, "logit_bias"),
        ({"logit_bias": [1]}, "logit_bias"),
        ({"user": 5}, "user"),
        ({"stream": "yes"}, "stream"),
        ({"model": ""}, "model"),
    ],
)
def test_bad_values_are_refused_naming_field_and_value(fields, name):
    with pytest.raises(ValidationError) as info:
        ChatRequest.from_prompt("a cat", **fields)
    assert info.value.field == name
    assert str(info.value).startswith(f"{name}=")


@pytest.mark.parametrize(
    ("messages", "name"),
    [
        ([], "messages"),
        ("a cat", "messages"),
        ([{"role": "robot", "content": "x"}], "messages.role"),
        ([{"role": "user"}], "messages[0]"),
        ([{"role": "user", "content": "x", "name": "me"}], "messages[0]"),
        ([{"role": "user", "content": 5}], "messages.content"),
        ([42], "messages[0]"),
    ],
)
def test_messages_must_be_non_empty_with_valid_roles(messages, name):
    with pytest.raises(ValidationError) as info:
        ChatRequest(messages=messages)
    assert info.value.field == name


def test_content_parts_are_kept():
    parts = [{"type": "text", "text": "a cat"}]
    request = ChatRequest(messages=[Message("user", parts)])
    assert request.to_body()["messages"] == [{"role": "user", "content": parts}]
    assert request.prompt == "a cat"


def test_images_request_body_and_validation():
    request = ImagesRequest(prompt="a cat", n=2, size="512x512", response_format="b64_json", user="u")
    assert request.to_body() == {
        "model": "stable-diffusion-api",
        "prompt": "a cat",
        "n": 2,
        "size": "512x512",
        "response_format": "b64_json",
        "user": "u",
    }
    assert list(ImagesRequest(prompt="x").to_body()) == ["model", "prompt"]
    for fields, name in [
        ({"prompt": " "}, "prompt"),
        ({"n": 0}, "n"),
        ({"size": "big"}, "size"),
        ({"response_format": "png"}, "response_format"),
    ]:
        with pytest.raises(ValidationError) as info:
            ImagesRequest(**{"prompt": "x", **fields})
        assert info.value.field == name


def test_images_request_from_params_puts_size_in_size_and_extras_on_request():
    params = GenerationParams("a cat", seed=9, width=256, height=256, num_images=3)
    assert ImagesRequest.from_params(params, model="m").to_body() == {
        "model": "m",
        "prompt": "a cat",
        "n": 3,
        "size": "256x256",
    }
    body = ImagesRequest.from_params(params, model="m", sd_extras=True, n=1, seed=10).to_body()
    assert body["seed"] == 10 and "n" not in body and body["size"] == "256x256"


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"num_inference_steps": 101}, "num_inference_steps"),
        ({"guidance_scale": 101}, "guidance_scale"),
        ({"size": "512"}, "size"),
        ({"negative_prompt": 3}, "negative_prompt"),
    ],
)
def test_sd_extras_are_validated(fields, name):
    with pytest.raises(ValidationError) as info:
        SDExtras(**fields)
    assert info.value.field == name


def test_headers_are_the_page_three_and_no_key_means_no_authorization():
    assert request_headers("sk-1") == {
        "Accept": "application/json",
        "Authorization": "Bearer sk-1",
        "Content-Type": "application/json",
    }
    assert "Authorization" not in request_headers(None)


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://relay.example", "https://relay.example/v1/chat/completions"),
        ("https://relay.example/", "https://relay.example/v1/chat/completions"),
        ("https://relay.example/v1", "https://relay.example/v1/chat/completions"),
        ("https://relay.example/api/v1/", "https://relay.example/api/v1/chat/completions"),
    ],
)
def test_endpoint_url_does_not_double_v1(base, url):
    assert endpoint_url(base, CHAT_PATH) == url
    assert endpoint_url(base, IMAGES_PATH) == url.replace("chat/completions", "images/generations")


def test_sd_extras_refuse_steps_the_relays_do_not_take_instead_of_clamping():
    params = GenerationParams("a cat", num_inference_steps=150)
    assert list(ChatRequest.from_params(params).to_body()) == ["model", "messages"]
    with pytest.raises(ValidationError) as info:
        ChatRequest.from_params(params, sd_extras=True)
    assert info.value.field == "num_inference_steps" and info.value.value == 150


def test_from_params_never_sends_an_embedded_local_model_name():
    assert ChatRequest.from_params(GenerationParams("x")).model == "stable-diffusion-api"
    assert ImagesRequest.from_params(GenerationParams("x", model="tiny-sdxl")).model == "stable-diffusion-api"
    assert ChatRequest.from_params(GenerationParams("x", model="flux")).model == "flux"
