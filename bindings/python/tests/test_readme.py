"""The README's examples run (each ```python block, in order, asserting what it shows)."""

import pathlib
import re

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 3


def test_every_readme_example_runs():
    for block in BLOCKS:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
