from sdkit.environment import capture_environment, environment_diff


def test_capture_names_what_changes_pixels():
    env = capture_environment()
    assert env["torch_threads"] >= 1
    assert env["libraries"]["torch"].startswith("2.")
    assert env["libraries"]["diffusers"]
    assert env["python"].count(".") == 2


def test_diff_lists_nested_differences():
    a = {"python": "3.11.7", "torch_threads": 2, "libraries": {"torch": "2.13.0", "numpy": "2.4"}}
    b = {"python": "3.11.7", "torch_threads": 4, "libraries": {"torch": "2.14.1", "numpy": "2.4"}, "gpus": []}
    assert environment_diff(a, b) == [
        ("gpus", None, []),
        ("libraries.torch", "2.13.0", "2.14.1"),
        ("torch_threads", 2, 4),
    ]
    assert environment_diff(a, a) == []
