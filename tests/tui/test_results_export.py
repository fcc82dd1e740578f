"""Export writes the format the file's name asks for (a 'comparison.json' holding Markdown misled people); the
column sorted by is on the screen."""
import csv
import io
import json
import os
import socket
from contextlib import asynccontextmanager

import pytest

from vitlab.tui.views.results import ResultsView
from vitlab.engine.hardware import max_processes

from .conftest import form_ready, make_app, wait_for
from .fakes import summary, write_history


def test_export_follows_the_extension(tmp_path):
    view = ResultsView(tmp_path / "runs")
    view.session = {"demo/a": summary("a", accuracy=0.9), "demo/b": summary("b", accuracy=0.5)}
    doc = json.loads(view.export(tmp_path / "c.json").read_text())
    assert [r["name"] for r in doc["runs"]] == ["b", "a"]  # newest first
    rows = list(csv.DictReader(io.StringIO(view.export(tmp_path / "c.CSV").read_text())))
    assert {r["accuracy"] for r in rows} == {"0.9", "0.5"}
    assert view.export(tmp_path / "c.md").read_text().startswith("| Experiment | Run |")
    with pytest.raises(ValueError, match=r"c\.txt: name a \.md, \.csv or \.json file"):
        view.export(tmp_path / "c.txt")
    assert not (tmp_path / "c.txt").exists()


def test_earlier_runs_cancelled_in_their_first_epoch_are_left_out_but_this_sessions_show(tmp_path):
    view = ResultsView(tmp_path / "runs")
    early = [summary(n, status="cancelled", epochs=0, accuracy=None, run_dir=f"/r/{n}") for n in ("old", "new")]
    view.history = [summary("done", run_dir="/r/done"), *early]
    view.session_dirs = {"/r/new"}  # started by this session: the user just pressed ctrl+x, the row stays
    assert [s["name"] for s in view.runs()] == ["done", "new"]
    assert "(+1 cancelled in the first epoch, not shown · a shows them)" in \
        view._title(view.rows(), view.columns(view.rows())).plain
    view.show_all = True  # `a`: what the cancel dialog promised ("r in Results continues it") can be found
    assert [s["name"] for s in view.runs()] == ["done", "old", "new"]
    assert "a hides them" in view._title(view.rows(), view.columns(view.rows())).plain
    view.show_all, view.history, view.session_dirs = False, early, set()
    assert "No runs to show: a shows the ones cancelled in their first epoch." in view._title([], ()).plain  # not "yet"


@asynccontextmanager
async def results_at_80x24(runs_dir):
    """The app on its Results view, the history (write_history's and whatever the test wrote) loaded."""
    write_history(runs_dir)
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.results.history)
        assert app.focused is app.results.query_one("#results-table")  # F3 before its first mount: keys work
        yield app, pilot


async def test_sorting_by_a_column_off_the_screen_scrolls_to_it(runs_dir):
    async with results_at_80x24(runs_dir) as (app, pilot):
        table = app.results.query_one("#results-table")
        assert table.scroll_x == 0
        await pilot.press("S")  # back from unsorted: the last column, Started
        await pilot.pause()
        assert app.results.sort_key == "started"
        widths = [column.get_render_width(table) for column in table.ordered_columns]
        assert table.scroll_x > 0 and sum(widths[:-1]) - table.scroll_x + widths[-1] <= table.size.width
        table.scroll_to(x=0, animate=False)  # the user looks left; a reload (a running run's figures) keeps that
        await pilot.pause()
        app.results.render_table()
        await pilot.pause()
        assert table.scroll_x == 0
        await pilot.press(*["S"] * 12)  # back to Model, the first after the fixed Run (one experiment: no column)
        await pilot.pause()
        assert app.results.sort_key == "model" and table.scroll_x == 0 and table.fixed_columns == 1
        # the view starts at a column's left edge, no cut column beside the fixed one ("acc" under "Run"), unless
        # it is scrolled to its end (where the last column ends at the right edge)
        edges = [sum(widths[:i]) - widths[0] for i in range(1, len(widths))]
        for _ in range(len(widths)):  # for every column sorted by
            await pilot.press("s")
            await pilot.pause()
            assert table.scroll_x in [*edges, table.max_scroll_x], (app.results.sort_key, table.scroll_x, edges)


async def test_long_names_give_way_to_the_answer_at_80_columns(runs_dir):
    """A 40-character run name and a long model label used to push Status and the accuracies off an 80-column
    screen; they are shortened instead, and the detail line under the table has them whole."""
    name = "vit-patch4-dim192-heads3-fp16-ga2-seed0-x"
    d = runs_dir / "demo" / "20250105-100000-long"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: x\n")
    (d / "summary.json").write_text(json.dumps(summary(name, model="Swin-T microsoft/swin-tiny-patch4-window7-224",
                                                       status="cancelled", started_at="2025-01-05T10:00:00")))
    async with results_at_80x24(runs_dir) as (app, pilot):
        table = app.results.query_one("#results-table")
        keys = [str(c.key.value) for c in table.ordered_columns]
        assert keys[:5] == ["run", "model", "accuracy", "best_accuracy", "status"]  # one experiment: no column
        widths = [c.get_render_width(table) for c in table.ordered_columns]
        assert sum(widths[:5]) <= table.scrollable_content_region.width
        run, model = (str(table.get_cell_at((0, i))) for i in (0, 1))
        assert run.endswith("…") and name.startswith(run[:-1]) and model.endswith("…")
        assert str(table.get_cell_at((0, 4))) == "cancelled"
        assert f"demo/{name}" in str(app.results.query_one("#results-detail").render())
        app.results.render_table()  # drawn before DataTable's next idle (a busy CPU): every cell fits already
        cells = [[str(table.get_cell_at((r, i))) for i in range(len(keys))] for r in range(table.row_count)]
        widths = [c.get_render_width(table) - 2 * table.cell_padding for c in table.ordered_columns]
        assert all(len(cell) <= width for row in cells for cell, width in zip(row, widths)), (widths, cells)


def seeded(name: str, seed: int, accuracy: float, started: str) -> dict:
    return summary(name, accuracy=accuracy, best_accuracy=accuracy, started_at=started,
                   config={"name": name, "model": {"kind": "vit"}, "train": {"seed": seed}})


async def test_g_shows_the_runs_across_seeds_and_exports_that_table(runs_dir):
    for i, acc in enumerate((0.90, 0.94, 0.95)):
        d = runs_dir / "demo" / f"20250103-10000{i}-p4-s{i}"
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(f"name: p4-s{i}\n")
        (d / "summary.json").write_text(json.dumps(seeded(f"p4-s{i}", i, acc, f"2025-01-03T10:00:0{i}")))
    async with results_at_80x24(runs_dir) as (app, pilot):
        detail = app.results.query_one("#results-detail")
        text = str(detail.render())
        assert "p4-s2" in text and "seeds 0,1,2: final 93.00 ± 2.65% · best 93.00 ± 2.65% (g)" in text
        await pilot.press("down", "down", "down")  # a run without seeds: no spread to show
        assert "seeds" not in str(detail.render())
        app.results.sort_key = "status"  # a column the conditions lack: g ended the app with a ValueError
        await pilot.press("g")
        assert app.results.sort_key is None
        table = app.results.query_one("#results-table")
        labels = [str(c.label).rstrip(" ▲▼") for c in table.ordered_columns]
        assert table.row_count == 1 and labels[:5] == ["Run", "Model", "Seeds", "Final acc", "vs best (pts)"]
        assert "1 across seeds" in str(app.results.query_one("#results-title").render())
        assert "p4-s0, p4-s1, p4-s2" in str(detail.render())
        assert not app.results.check_action("resume", ())  # a row is several runs: no `r Resume` in the footer
        footer = {b.binding.description for b in app.active_bindings.values() if b.enabled}
        assert "Every run" in footer and "By seed" not in footer  # g says where it goes
        (runs_dir / "comparison-seeds.csv").write_text("edited by hand")
        app.action_export("csv")  # as the palette's "Export comparison as CSV": asks, and before replacing
        await pilot.pause()
        assert app.screen.query_one("#in-path").value == str(runs_dir / "comparison-seeds.csv")
        await pilot.press("enter")
        await pilot.pause()
        assert "exists: Export again" in str(app.screen.query_one("#dialog-note").render())
        assert (runs_dir / "comparison-seeds.csv").read_text() == "edited by hand"
        await pilot.press("enter")
        await pilot.pause()
        [row] = csv.DictReader(io.StringIO((runs_dir / "comparison-seeds.csv").read_text()))
        assert float(row["accuracy_mean"]) == pytest.approx(0.93)
        await pilot.press("g")
        assert table.row_count == 7 and app.results.export_stem == "comparison"


async def test_r_on_a_run_failed_on_a_nan_says_why_not_in_results(runs_dir):
    d = runs_dir / "demo" / "20250103-090000-vit-nan"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: vit-nan\n")
    (d / "summary.json").write_text(json.dumps(summary(
        "vit-nan", status="failed", failure="non-finite", accuracy=None, epochs=1, started_at="2025-01-03T09:00:00",
        run_dir=str(d))))
    async with results_at_80x24(runs_dir) as (app, pilot):
        await pilot.press("home", "r")  # the newest row; it used to start a training process that refused
        await pilot.pause()
        assert not app.running and app.views.active == "results"
        assert app.told[-1].title == "Not resumed" and "non-finite loss" in app.told[-1].message
        world = max_processes()[0] + 1  # a run of more processes than this machine runs resumes elsewhere
        summary_file = d / "summary.json"
        summary_file.write_text(json.dumps({**json.loads(summary_file.read_text()), "failure": None,
                                            "world_size": world}))
        app.results.reload()
        await wait_for(pilot, lambda: app.results.history[0].get("world_size") == world)
        await pilot.press("home", "r")
        await pilot.pause()
        assert not app.running and f"It trained on {world} processes" in app.told[-1].message


async def test_a_run_resumed_in_this_session_shows_as_training_not_as_it_stopped(runs_dir):
    """Cancelled in this session, then resumed with r: the row kept the summary of when it stopped ("cancelled")
    until the resume ended; it follows the run on disk while it trains."""
    d = runs_dir / "demo" / "20250105-100000-again"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("name: again\n")
    cancelled = summary("again", status="cancelled", epochs=3, run_dir=str(d), started_at="2025-01-05T10:00:00")
    async with results_at_80x24(runs_dir) as (app, pilot):
        app.results.add_session_run(cancelled)
        (d / "summary.json").write_text(json.dumps({**cancelled, "status": "running"}))  # its resume started
        (d / "heartbeat").write_text(f"{os.getpid()} 0 {socket.gethostname()}\n")  # and beats
        app.results.run_started(str(d))
        await wait_for(pilot, lambda: app.results.rows()[0].get("status") == "running")
        assert app.results.rows()[0]["name"] == "again"


async def test_the_highlighted_run_stays_highlighted_when_rows_move(runs_dir):
    """A run ending in this session goes to the top: the cursor stayed on the row number, now another run's, and
    r, the detail line and the next key were about that one."""
    async with results_at_80x24(runs_dir) as (app, pilot):
        table = app.results.query_one("#results-table")
        await pilot.press("down", "down")
        before = app.results.rows()[table.cursor_row]["name"]
        app.results.add_session_run(summary("new-one", run_dir=str(runs_dir / "demo" / "new-one")))
        await pilot.pause()
        assert app.results.rows()[0]["name"] == "new-one"
        assert app.results.rows()[table.cursor_row]["name"] == before


async def test_export_into_a_folder_that_is_not_there_is_refused(runs_dir):
    async with results_at_80x24(runs_dir) as (app, pilot):
        app.action_export("csv")
        await pilot.pause()
        app.screen.query_one("#in-path").value = str(runs_dir / "typo" / "x.csv")
        await pilot.press("enter")
        await pilot.pause()
        assert str(app.screen.query_one("#dialog-note").render()) == f"{runs_dir / 'typo'}: no such folder"
        assert not (runs_dir / "typo").exists()  # it made every folder the path named


async def test_a_says_so_when_no_run_was_left_out(runs_dir):
    async with results_at_80x24(runs_dir) as (app, pilot):
        await pilot.press("a")  # nothing cancelled in its first epoch among write_history's runs
        await pilot.pause()
        assert app.told[-1].message.startswith("No earlier run was left out") and not app.results.show_all


async def test_resuming_a_run_whose_config_is_broken_names_the_field(runs_dir):
    run_dir = runs_dir / "e" / "20261127-120000-r"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: r\nmodel: {kind: vit}\ntrain: {epochs: many}\n")  # edited by hand
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        app.resume(run_dir)
        await pilot.pause()
        [toast] = [t for t in app.told if t.title == "Not resumed"]
        assert toast.message.startswith(f"{run_dir}/config.yaml: train.epochs: ")  # it said "ValidationError"
        assert not app.running
