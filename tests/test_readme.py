"""The README's reuse examples run as written: zero output at init, projected during fit, loaded
back from a checkpoint bitwise."""

from __future__ import annotations

import re

import torch

from conftest import ROOT, assert_inside_and_fixed_point


def reuse_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"## Reusing the pieces(.*?)\n### ", text, re.S).group(1)  # up to the next subsection
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_reuse_example(make_trainer, tmp_path, monkeypatch):
    model_code, load_code = reuse_snippets()
    namespace: dict = {}
    exec(compile(model_code, "README.md", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["MyModel"](width=32)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    for mode in (True, False):
        model.train(mode)
        assert torch.equal(model(x), torch.zeros(32, 10))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    trainer = make_trainer(max_steps=6)
    trainer.fit(model, loader)
    assert {name: steps for name, (steps, _) in model.projection_stats.items()} == {"last_hidden": 6, "outer": 6}
    assert_inside_and_fixed_point(model)

    monkeypatch.chdir(tmp_path)
    trainer.save_checkpoint("last.ckpt")
    exec(compile(load_code, "README.md", "exec"), namespace)
    loaded = namespace["model"]
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    assert all(torch.equal(a, b) for a, b in zip(loaded.constraint_anchors["last_hidden"], model.constraint_anchors["last_hidden"]))
