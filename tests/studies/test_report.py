import pytest

from sdkit.studies.report import render_report

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</pre></td></table><script>alert(1)</script>",
    "javascript:alert(1)//<iframe src=javascript:alert(1)>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_text_from_the_run_folder_is_escaped(payload):
    entry = {
        "cell": 0,
        "file": f"images/{payload}.png",
        "params": {"prompt": payload, "negative_prompt": payload},
        "seed": payload,
        "labels": {payload: payload},
        "png_sha256": payload,
    }
    page = render_report(
        spec={"name": payload, "description": payload, "backend": payload, "model": payload},
        environment={payload: payload, "libraries": {payload: payload}},
        entries=[entry],
        grids=[(payload, b"\x89PNG")],
        images={},
        failures=[{"cell": payload, "error": payload}],
    )
    for tag in ("<script", "<img src=x", "<svg", "<iframe", "</table><script"):
        assert tag not in page.lower()
    assert "&lt;" in page
