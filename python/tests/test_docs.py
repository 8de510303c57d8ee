"""docs/python.md's Python code blocks, run in order in one namespace from the
repository root, with the run folders in a temporary directory."""
import os
import re

from conftest import ROOT, MINILM, SST2, need


def test_the_quickstart_runs(tmp_path, monkeypatch):
    need(MINILM), need(SST2)
    text = (ROOT / "docs/python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/python.md has no python code blocks"
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "__docs__"}
    for block in blocks:
        if "# not run" in block:
            continue
        code = block.replace('"runs/', f'"{tmp_path}/runs/')
        exec(compile(code, "docs/python.md", "exec"), namespace)
