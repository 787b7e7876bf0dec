import subprocess
import sys

import sdkit


def test_all_is_sorted_and_complete():
    assert sdkit.__all__ == sorted(sdkit.__all__)
    for name in sdkit.__all__:
        assert hasattr(sdkit, name), name
    public = {n for n in dir(sdkit) if not n.startswith("_") and not isinstance(getattr(sdkit, n), type(sys))}
    assert public <= set(sdkit.__all__)


def test_import_does_not_load_torch_or_diffusers():
    code = (
        "import sys, sdkit; heavy = ('torch', 'diffusers', 'transformers', 'matplotlib', 'ipywidgets', 'httpx');"
        " print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
