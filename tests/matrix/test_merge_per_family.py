"""Issue 21 matrix, cell 5: ``merge run`` (linear, ties) on two models of each family equals
mergekit's own ``mergekit-yaml`` CLI on the same YAML, tensor for tensor, tied heads included.

The two models are a family's extended tiny model (tests/matrix/conftest.py) and a perturbed copy
of it; ties also takes the unperturbed one as its base. Random tiny models: mechanics only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import MODEL_CELLS, run_cli

torch.set_num_threads(1)

MERGEKIT_YAML = Path(sys.executable).with_name("mergekit-yaml")
METHODS = {
    "linear": lambda a, b, base: {"merge_method": "linear", "dtype": "float32",
                                  "models": [{"model": a, "parameters": {"weight": 0.7}},
                                             {"model": b, "parameters": {"weight": 0.3}}]},
    "ties": lambda a, b, base: {"merge_method": "ties", "dtype": "float32", "base_model": base,
                                "models": [{"model": a, "parameters": {"weight": 0.6, "density": 0.5}},
                                           {"model": b, "parameters": {"weight": 0.4, "density": 0.5}}]},
}  # fmt: skip


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def perturbed_copy(folder: Path, out: Path, seed: int) -> Path:
    from vinaforge.merge.testing import _perturb
    from vinaforge.model.load import load_causal_lm, load_tokenizer
    from vinaforge.model.tiny import save_model

    if not out.is_dir():
        model = load_causal_lm(str(folder), dtype="float32")
        _perturb(model, seed=seed)
        save_model(model, load_tokenizer(str(folder)), out)
    return out


#: linear on every cell; ties (trims, elects signs, needs a base) on one tied and one untied cell
CASES = [("linear", c) for c in MODEL_CELLS if c.arch != "mistral"] + [
    ("ties", c) for c in MODEL_CELLS if (c.family, c.arch) in (("qwen2", "qwen2"), ("phi3", "phi3"))
]


@pytest.mark.skipif(not MERGEKIT_YAML.is_file(), reason="mergekit is not installed")
@pytest.mark.parametrize(("method", "cell"), [pytest.param(m, c, id=f"{c.id}-{m}") for m, c in CASES])
def test_merge_equals_mergekit_yaml(matrix, cell, method, tmp_path):
    base = matrix.extended_dir(cell.family, cell.arch, cell.tied)
    other = perturbed_copy(base, matrix.root / "perturbed" / cell.id, seed=7)
    spec = METHODS[method](str(other), str(base), str(base))
    path = tmp_path / "merge.yml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    run_cli(["merge", "run", str(path), "--output", str(ours)])
    done = subprocess.run([str(MERGEKIT_YAML), str(path), str(theirs), "--copy-tokenizer", "--random-seed", "0"],
                          capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(theirs, ignore_errors=True)
        pytest.fail(f"mergekit-yaml failed on {cell.id}: {done.stderr[-2000:]}")
    a, b = tensors(ours), tensors(theirs)
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    if cell.tied:  # one matrix, no separate head tensor, in both
        assert not any(n.endswith("lm_head.weight") for n in a)
    layer = next(n for n in a if "layers.0" in n)
    assert not torch.equal(a[layer], tensors(base)[layer])  # a real merge, not a copy
