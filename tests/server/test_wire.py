import base64
import json

import pytest

from sdkit.errors import InvalidRequestError
from sdkit.server.wire import (
    ServedModel,
    chat_chunks,
    chat_completion,
    error_body,
    image_markdown,
    images_reply,
    load_json,
    models_reply,
    parse_chat_request,
    parse_images_request,
    sse_event,
)

SERVED = ServedModel(model="tiny", id="tiny")
PAGE_PROMPT = (
    "striking poses, stunning backdrop of rocky coastline and golden hour lighting, fashion-forward wardrobe, "
    "eye-catching accessories, warm and inviting color palette, sharp and detailed digital rendering, stunning high "
    "definition finish, on eye level, scenic, masterpiece"
)
PAGE_BODY = {"model": "stable-diffusion-api", "messages": [{"role": "user", "content": PAGE_PROMPT}]}


def _refusal(parse, data, **kw) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        parse(data, SERVED, **kw)
    return info.value


def test_the_page_example_request_is_accepted_and_its_user_message_is_the_prompt():
    req = parse_chat_request(PAGE_BODY, SERVED)
    assert req.params.prompt == PAGE_PROMPT
    assert req.params.model == "tiny"
    assert req.model == "stable-diffusion-api"
    assert (req.choices, req.stream, req.params.num_images) == (1, False, 1)


def test_the_last_user_message_is_the_prompt_and_text_parts_are_joined():
    body = {
        "model": "tiny",
        "messages": [
            {"role": "system", "content": "you draw"},
            {"role": "user", "content": "a cat"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "a red"}, {"type": "text", "text": "circle"}]},
        ],
    }
    assert parse_chat_request(body, SERVED).params.prompt == "a red\ncircle"


def test_sd_extras_are_honoured():
    body = {
        **PAGE_BODY,
        "seed": 42,
        "negative_prompt": "blurry",
        "num_inference_steps": 3,
        "guidance_scale": 5,
        "size": "128x64",
        "n": 2,
        "batch_size": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    req = parse_chat_request(body, SERVED)
    p = req.params
    assert (p.seed, p.negative_prompt, p.num_inference_steps, p.guidance_scale) == (42, "blurry", 3, 5.0)
    assert (p.width, p.height, p.num_images) == (128, 64, 4)
    assert (req.choices, req.stream, req.include_usage) == (2, True, True)
    assert parse_chat_request({**PAGE_BODY, "width": 96, "height": 128}, SERVED).params.width == 96


@pytest.mark.parametrize(
    ("changes", "param", "status"),
    [
        ({"model": "dall-e-3"}, "model", 404),
        ({"model": 3}, "model", 422),
        ({"model": None}, "model", 422),
        ({"messages": None}, "messages", 422),
        ({"messages": "hi"}, "messages", 422),
        ({"messages": []}, "messages", 400),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", 400),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", 422),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages", 400),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages", 400),
        ({"temperature": "hot"}, "temperature", 422),
        ({"temperature": 2.5}, "temperature", 400),
        ({"top_p": 1.5}, "top_p", 400),
        ({"presence_penalty": -3}, "presence_penalty", 400),
        ({"frequency_penalty": 3}, "frequency_penalty", 400),
        ({"max_tokens": 0}, "max_tokens", 400),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", 400),
        ({"stop": 5}, "stop", 422),
        ({"logit_bias": {"50256": 200}}, "logit_bias.50256", 400),
        ({"user": 5}, "user", 422),
        ({"stream": "yes"}, "stream", 422),
        ({"n": 0}, "n", 400),
        ({"n": 1.5}, "n", 422),
        ({"n": 5}, "n", 400),
        ({"batch_size": 9}, "batch_size", 400),
        ({"seed": -1}, "seed", 400),
        ({"seed": 2**40}, "seed", 400),
        ({"seed": "7"}, "seed", 422),
        ({"num_inference_steps": 0}, "num_inference_steps", 400),
        ({"num_inference_steps": 10_000}, "num_inference_steps", 400),
        ({"guidance_scale": "x"}, "guidance_scale", 422),
        ({"guidance_scale": 1000}, "guidance_scale", 400),
        ({"size": "big"}, "size", 400),
        ({"size": "65x64"}, "size", 400),
        ({"width": 65}, "width", 400),
        ({"height": 4096}, "height", 400),
        ({"negative_prompt": ["x"]}, "negative_prompt", 422),
        ({"scheduler": "no such sampler"}, "scheduler", 400),
    ],
)
def test_bad_chat_fields_are_refused_naming_the_field(changes, param, status):
    err = _refusal(parse_chat_request, {**PAGE_BODY, **changes})
    assert (err.field, err.status) == (param, status)


def test_images_request_defaults_to_url_and_the_served_model():
    req = parse_images_request({"prompt": "a cat", "n": 2, "size": "64x64"}, SERVED)
    assert (req.model, req.response_format, req.params.num_images, req.params.width) == ("tiny", "url", 2, 64)


@pytest.mark.parametrize(
    ("data", "param", "status"),
    [
        ({}, "prompt", 422),
        ({"prompt": 3}, "prompt", 422),
        ({"prompt": ""}, "prompt", 400),
        ({"prompt": "x", "response_format": "jpeg"}, "response_format", 400),
        ({"prompt": "x", "n": 99}, "n", 400),
        ({"prompt": "x", "model": "dall-e-2"}, "model", 404),
        ({"prompt": "x", "size": "1x"}, "size", 400),
    ],
)
def test_bad_images_fields_are_refused_naming_the_field(data, param, status):
    err = _refusal(parse_images_request, data)
    assert (err.field, err.status) == (param, status)


def test_invalid_json_and_non_objects_are_refused():
    assert load_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidRequestError) as info:
        load_json(b"{nope")
    assert (info.value.status, info.value.code, info.value.field) == (400, "invalid_json", None)
    with pytest.raises(InvalidRequestError) as info:
        load_json(b"[1, 2]")
    assert info.value.status == 422
    with pytest.raises(InvalidRequestError):
        load_json(b"\xff\xfe")


def test_chat_completion_carries_the_page_fields_and_one_markdown_image_per_image():
    pngs = [b"\x89PNG one", b"\x89PNG two", b"\x89PNG three", b"\x89PNG four"]
    reply = chat_completion(id="chatcmpl-1", created=7, model="tiny", pngs=pngs, choices=2, prompt_tokens=9)
    assert list(reply) == ["id", "object", "created", "model", "choices", "usage"]
    assert reply["object"] == "chat.completion"
    assert reply["usage"] == {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    first = reply["choices"][0]
    assert first["finish_reason"] == "stop"
    assert first["message"]["role"] == "assistant"
    assert first["message"]["content"] == image_markdown(pngs[0]) + "\n" + image_markdown(pngs[1])
    b64 = base64.b64encode(pngs[3]).decode()
    assert reply["choices"][1]["message"]["content"].endswith(f"![image](data:image/png;base64,{b64})")


def test_stream_chunks_carry_each_choice_then_stop_then_usage():
    events = chat_chunks(id="c", created=1, model="tiny", pngs=[b"png"], choices=1, prompt_tokens=3, include_usage=True)
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"]["content"] == image_markdown(b"png")
    assert events[1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["prompt_tokens"] == 3
    assert sse_event("[DONE]") == b"data: [DONE]\n\n"
    assert json.loads(sse_event(events[0])[len(b"data: ") :]) == events[0]


def test_error_body_has_openai_shape():
    assert error_body(429, "slow down", code="queue_full") == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "queue_full"}
    }
    assert error_body(503, "x")["error"]["type"] == "server_error"


def test_models_and_images_replies():
    ids = [m["id"] for m in models_reply(SERVED)["data"]]
    assert ids == ["tiny", "stable-diffusion-api"]
    assert images_reply(created=3, items=[{"b64_json": "QQ=="}]) == {"created": 3, "data": [{"b64_json": "QQ=="}]}
