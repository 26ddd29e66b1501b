"""The README's reuse example runs as written: zero output at init, projected during fit."""

from __future__ import annotations

import re

import torch

from conftest import ROOT, assert_inside_and_fixed_point


def test_readme_reuse_example(make_trainer):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Reusing the pieces.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["MyModel"](width=32)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    for mode in (True, False):
        model.train(mode)
        assert torch.equal(model(x), torch.zeros(32, 10))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    make_trainer(max_steps=6).fit(model, loader)
    assert {name: steps for name, (steps, _) in model.projection_stats.items()} == {"last_hidden": 6, "outer": 6}
    assert_inside_and_fixed_point(model)
