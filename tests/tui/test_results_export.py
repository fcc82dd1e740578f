"""Export writes the format the file's name asks for (a 'comparison.json' holding Markdown misled people)."""
import csv
import io
import json

import pytest

from vitlab.tui.views.results import ResultsView

from .fakes import summary


def test_export_follows_the_extension(tmp_path):
    view = ResultsView(tmp_path / "runs")
    view.session = {"demo/a": summary("a", accuracy=0.9), "demo/b": summary("b", accuracy=0.5)}
    doc = json.loads(view.export(tmp_path / "out" / "c.json").read_text())
    assert [r["name"] for r in doc["runs"]] == ["b", "a"]  # newest first
    rows = list(csv.DictReader(io.StringIO(view.export(tmp_path / "c.CSV").read_text())))
    assert {r["accuracy"] for r in rows} == {"0.9", "0.5"}
    assert view.export(tmp_path / "c.md").read_text().startswith("| Experiment | Run |")
    with pytest.raises(ValueError, match=r"c\.txt: name a \.md, \.csv or \.json file"):
        view.export(tmp_path / "c.txt")
    assert not (tmp_path / "c.txt").exists()
