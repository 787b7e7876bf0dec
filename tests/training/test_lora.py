import hashlib

import numpy as np

from sdkit import GenerationParams, LocalBackend
from training.lora import LoraConfig, train_lora

QUICK = LoraConfig(max_scenes=8, steps=3, batch=4, captions_per_scene=2)


def test_lora_training_is_deterministic_and_saves_a_lora_sdkit_loads(tmp_path):
    logs = []
    report = train_lora(tmp_path / "a" / "hexagon.safetensors", QUICK, log=logs.append)
    train_lora(tmp_path / "b" / "hexagon.safetensors", QUICK, log=lambda line: None)
    a, b = (hashlib.sha256((tmp_path / d / "hexagon.safetensors").read_bytes()).hexdigest() for d in "ab")
    assert a == b
    assert report.config == QUICK and report.bytes <= 1_000_000
    assert any("lora step 2/3" in line for line in logs)
    backend = LocalBackend(progress=False, lora_dirs=[tmp_path / "a"])
    plain = GenerationParams("a red hexagon on a blue background", seed=1, num_inference_steps=2)
    base = np.asarray(backend.generate(plain).images[0])
    worn = np.asarray(backend.generate(plain.replace(loras=[("hexagon", 1)])).images[0])
    assert not np.array_equal(base, worn)  # the adapters were initialised at random, so 3 steps change pixels
