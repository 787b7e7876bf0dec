import base64
import json
import time

import pytest

from sdkit import ReplyError, collect_stream, find_images, parse_chat_completion, parse_chat_reply
from sdkit.backends.relay.fakerelay import _sse, chat_completion, fake_color, fake_png, image_content
from sdkit.backends.relay.reply import (
    ChatCompletion,
    decode_base64_image,
    decode_image,
    image_mime,
    parse_images_response,
)

PNG = fake_png("a red circle", 1, (16, 16))
PNG2 = fake_png("a blue square", 2, (16, 16))
JPEG = fake_png("jpeg", None, (16, 16), fmt="JPEG")
WEBP = fake_png("webp", None, (16, 16), fmt="WEBP")
B64 = base64.b64encode(PNG).decode()
URL = "https://cdn.example/out/final.png"
PREVIEWS = ["https://cdn.example/out/preview_1.png", "https://cdn.example/out/preview_2.png"]

# The page's example reply (shared/spec), verbatim.
PAGE_REPLY = """{
"id": "chatcmpl-123",
"object": "chat.completion",
"created": 1677652288,
"choices": [
{
"index": 0,
"message": {
"role": "assistant",
"content": "\\n\\nHello there, how may I assist you today?"
},
"finish_reason": "stop"
}
],
"usage": {
"prompt_tokens": 9,
"completion_tokens": 12,
"total_tokens": 21
}
}"""


def reply_with(**message):
    return parse_chat_completion(json.dumps(chat_completion(message)))


def test_page_example_reply_parses_into_typed_fields():
    reply = parse_chat_completion(PAGE_REPLY, strict=True)
    assert reply.id == "chatcmpl-123"
    assert reply.object == "chat.completion"
    assert reply.created == 1677652288
    choice = reply.choices[0]
    assert (choice.index, choice.message.role, choice.finish_reason) == (0, "assistant", "stop")
    assert reply.content == "\n\nHello there, how may I assist you today?"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (9, 12, 21)
    assert reply.raw == PAGE_REPLY
    assert find_images(reply) == ()


@pytest.mark.parametrize(
    ("shape", "label"),
    [
        ("message.images", "message.images"),
        ("content-parts", "content-parts"),
        ("markdown-data-uri", "markdown-image"),
        ("bare-base64", "base64"),
        ("data-uri", "data-uri"),
    ],
)
def test_each_inline_shape_yields_the_image_bytes(shape, label):
    refs = find_images(reply_with(**image_content(shape, [PNG])))
    assert [(r.shape, r.data) for r in refs] == [(label, PNG)]


@pytest.mark.parametrize(
    ("shape", "label"),
    [("content-parts-image", "content-parts"), ("markdown-url", "markdown-image")],
)
def test_each_url_shape_yields_the_url(shape, label):
    refs = find_images(reply_with(**image_content(shape, [PNG], [URL])))
    assert [(r.shape, r.url) for r in refs] == [(label, URL)]


@pytest.mark.parametrize("shape", ["progress-links", "bare-url"])
def test_links_after_progress_text_give_the_final_image_not_previews(shape):
    content = image_content(shape, [PNG], [URL, *PREVIEWS])
    assert URL in content["content"] and PREVIEWS[0] in content["content"]
    assert content["content"].index(PREVIEWS[-1]) < content["content"].rindex(URL)
    refs = find_images(reply_with(**content))
    assert [(r.shape, r.url) for r in refs] == [("link", URL)]


def test_final_image_link_wins_over_a_later_non_image_link():
    text = f"生成中… 50%\n[预览]({PREVIEWS[0]})\n完成 [点击下载]({URL})\n[任务详情](https://relay.example/task/123)"
    assert [r.url for r in find_images(reply_with(content=text))] == [URL]


def test_links_without_image_extension_take_the_last():
    text = "queued… done: https://x.example/view?id=1 and https://x.example/file?id=2."
    assert [r.url for r in find_images(reply_with(content=text))] == ["https://x.example/file?id=2"]


def test_several_markdown_images_joined_by_newlines_are_all_kept():
    content = image_content("markdown-data-uri", [PNG, PNG2])
    assert [r.data for r in find_images(reply_with(**content))] == [PNG, PNG2]


def test_message_images_take_precedence_over_content_links():
    message = image_content("message.images", [PNG2])
    message["content"] = f"also see {URL}"
    assert [r.data for r in find_images(reply_with(**message))] == [PNG2]


@pytest.mark.parametrize("data", [PNG, JPEG, WEBP], ids=["png", "jpeg", "webp"])
def test_bare_base64_is_sniffed_by_magic_number(data):
    text = base64.b64encode(data).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    for content in (text, wrapped, text.rstrip("="), base64.urlsafe_b64encode(data).decode()):
        assert [r.data for r in find_images(reply_with(content=content))] == [data]


def test_whole_content_data_uri_of_a_jpeg():
    content = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    refs = find_images(reply_with(content=content))
    assert [(r.shape, r.data) for r in refs] == [("data-uri", JPEG)]


@pytest.mark.parametrize(
    "content",
    [
        "Sorry, I cannot draw that.",
        base64.b64encode(b"just some text that is long enough").decode(),
        "",
        None,
    ],
)
def test_text_without_an_image_finds_nothing(content):
    assert find_images(reply_with(content=content)) == ()


def test_decode_image_gives_the_right_pixels_and_refuses_non_images():
    image = decode_image(PNG)
    assert image.size == (16, 16)
    assert image.getpixel((5, 5)) == fake_color("a red circle", 1)
    assert image_mime(JPEG) == "image/jpeg" and image_mime(WEBP) == "image/webp" and image_mime(b"<html>") is None
    with pytest.raises(ReplyError):
        decode_image(b"<html>not an image</html>")
    assert decode_base64_image("not base64 at all!") is None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "<html>502 Bad Gateway</html>",
        "[]",
        "{}",
        '{"choices": null}',
        '{"choices": []}',
        '{"choices": "x"}',
        '{"choices": [1]}',
        '{"choices": [{}]}',
        '{"choices": [{"message": "hi"}]}',
        '{"choices": [{"message": {"content": 5}}]}',
        '{"error": {"message": "quota exceeded"}}',
    ],
)
def test_malformed_replies_raise_reply_error_keeping_the_text(raw):
    with pytest.raises(ReplyError) as info:
        parse_chat_completion(raw)
    assert info.value.raw == raw


def test_strict_parsing_requires_the_page_required_fields():
    lenient = '{"choices": [{"message": {"role": "assistant", "content": "x"}}]}'
    assert parse_chat_completion(lenient).usage is None
    with pytest.raises(ReplyError, match=r"reply\.id"):
        parse_chat_completion(lenient, strict=True)
    missing_usage = json.loads(PAGE_REPLY)
    del missing_usage["usage"]["total_tokens"]
    with pytest.raises(ReplyError, match="total_tokens"):
        parse_chat_completion(json.dumps(missing_usage), strict=True)


def test_stream_is_collected_before_parsing_even_when_a_data_uri_is_split():
    message = image_content("markdown-data-uri", [PNG])
    stream = _sse(message, pieces=7).decode()
    reply = parse_chat_reply(stream)
    assert isinstance(reply, ChatCompletion)
    assert reply.content == message["content"]
    assert reply.choices[0].finish_reason == "stop"
    assert [r.data for r in find_images(reply)] == [PNG]
    assert collect_stream(stream.replace("\n", "\r\n")).content == message["content"]


def test_stream_with_comments_whole_uri_in_one_delta_and_images_delta():
    uri = "data:image/png;base64," + B64
    events = [
        ": keep-alive",
        "",
        'data: {"id": "c1", "object": "chat.completion.chunk", "created": 1, "choices": [{"index": 0, '
        '"delta": {"role": "assistant", "content": "![img](' + uri + ')"}}]}',
        "",
        'data: {"choices": [{"index": 0, "delta": {"images": [{"image_url": {"url": "' + URL + '"}}]}, '
        '"finish_reason": "stop"}]}',
        "",
        "data: [DONE]",
        "",
    ]
    reply = collect_stream(events)
    assert reply.id == "c1"
    assert [(r.shape, r.url) for r in find_images(reply)] == [("message.images", URL)]


@pytest.mark.parametrize(
    "stream",
    ["data: [DONE]\n\n", 'data: {"error": {"message": "busy"}}\n\n', "data: {broken\n\n", ": only a comment\n\n"],
)
def test_bad_streams_raise_reply_error(stream):
    with pytest.raises(ReplyError):
        collect_stream(stream)


def test_images_response_b64_url_and_data_uri_prefix():
    raw = json.dumps(
        {
            "created": 1,
            "data": [
                {"b64_json": B64},
                {"b64_json": "data:image/png;base64," + base64.b64encode(PNG2).decode()},
                {"url": URL, "revised_prompt": "a cat, detailed"},
            ],
        }
    )
    reply = parse_images_response(raw)
    assert reply.data[2].revised_prompt == "a cat, detailed"
    refs = find_images(reply)
    assert [r.data for r in refs[:2]] == [PNG, PNG2]
    assert refs[2].url == URL


@pytest.mark.parametrize(
    "raw", ["{}", '{"data": []}', '{"data": [{}]}', '{"data": [{"url": 5}]}', "nope", '{"error": "bad key"}']
)
def test_malformed_images_responses_raise_reply_error(raw):
    with pytest.raises(ReplyError):
        parse_images_response(raw)


def test_images_b64_that_is_not_an_image_is_an_error():
    with pytest.raises(ReplyError):
        find_images(parse_images_response('{"data": [{"b64_json": "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="}]}'))


def test_odd_types_in_optional_fields_do_not_lose_the_image():
    raw = json.dumps(
        {"id": 5, "created": 1.7e9, "choices": [{"index": "0", "message": {"content": "data:image/png;base64," + B64}}]}
    )
    reply = parse_chat_completion(raw)
    assert (reply.id, reply.created) == (None, None)
    assert [r.data for r in find_images(reply)] == [PNG]
    with pytest.raises(ReplyError, match="wrong type"):
        parse_chat_completion(raw, strict=True)


@pytest.mark.parametrize("junk", ["![", "[", "![x](", "[a](", '![x](u "'])
def test_finding_images_in_a_hostile_text_takes_linear_time(junk):
    """A relay's text of many unclosed brackets once took quadratic time (100 KB: ~30 s)."""
    reply = parse_chat_completion(json.dumps({"choices": [{"message": {"content": junk * 50_000}}]}))
    start = time.perf_counter()
    assert find_images(reply) == ()
    assert time.perf_counter() - start < 3
