"""Presets in the TUI: open with one, pick one, save the queue and load it back identically; the queue's
add / edit / reorder / remove; themes registered and remembered."""
from __future__ import annotations

import pytest
from textual.widgets import Input, Label, ListItem, ListView

from vitlab.presets import load_preset
from vitlab.tui.settings import load_settings

from .conftest import form_ready, make_app, wait_for, write_preset


async def test_open_with_preset_queues_its_runs_then_seeds_repeat_them(tiny_preset, runs_dir):
    app = make_app(tiny_preset, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["vit-a", "vit-b"]
        assert app.sub_title == "tiny"
        assert app.setup.editing == 0
        name = app.setup.form.query_one("#f-run-name", Input)
        assert name.value == "vit-a" and name.cursor_position == len("vit-a")  # typing goes on at its end
        await pilot.click("#btn-seeds")
        await pilot.pause()
        dialog = app.screen
        seeds = dialog.query_one("#in-seeds", Input)
        assert seeds.value == "0,1,2"
        seeds.value = "1,1"
        await enter_keeps_the_dialog(pilot, dialog, "Seeds: give distinct whole numbers 0..4294967295")
        seeds.value = "1,2"
        await pilot.press("enter")
        await pilot.pause()
        queue = app.setup.queue
        assert [(r.name, r.train.seed) for r in queue] == [("vit-a-s1", 1), ("vit-a-s2", 2), ("vit-b-s1", 1),
                                                          ("vit-b-s2", 2)]
        assert queue[0].model_copy(update={"name": "x", "train": queue[1].train}) == \
            queue[1].model_copy(update={"name": "x"})  # the same run but for its seed
        app.setup.action_seeds()  # again: the seeded copies are one run each first, not vit-a-s1-s5
        await pilot.pause()
        assert app.screen.query_one("#in-seeds", Input).value == "1,2"
        app.screen.query_one("#in-seeds", Input).value = "5"
        await pilot.press("enter")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["vit-a-s5", "vit-b-s5"]
        app.setup.action_new()  # a new run in the form, not queued: the dialog says Seeds leaves it out
        await pilot.pause()
        app.setup.action_seeds()
        await pilot.pause()
        note = str(app.screen.query_one("#dialog-note").render())
        assert f"The form's run {app.setup.config.name} is not in the queue" in note


async def test_bad_preset_is_reported_not_fatal(tmp_path, runs_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nruns:\n  - name: x\n    model: {kind: vit, heads: 5}\n")
    app = make_app(bad, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        assert app.setup.queue == []
        assert any("heads" in n.message for n in app._notifications)


async def enter_keeps_the_dialog(pilot, dialog, note: str) -> None:
    """Enter in the dialog's last field is refused: the dialog stays, what was typed too, and it says why."""
    await pilot.press("enter")
    await pilot.pause()
    assert pilot.app.screen is dialog and note in str(dialog.query_one("#dialog-note").render())


@pytest.fixture
def project_tiny(tmp_path, monkeypatch):
    """A project directory with presets/tiny.yaml, the current directory (where ctrl+o looks first)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    write_preset(tmp_path / "presets" / "tiny.yaml")


async def test_pick_preset_save_and_load_back_identically(tmp_path, project_tiny, runs_dir, config_home):
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        await pilot.press("ctrl+o")  # the picker
        await pilot.pause()
        picker = app.screen
        names = [p.name for p in picker.presets]
        assert "tiny" in names
        picker.query_one(ListView).index = names.index("tiny")
        await pilot.press("enter")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["vit-a", "vit-b"]
        # edit the first run in the form: the queue follows
        app.setup.form.query_one("#f-train-epochs", Input).value = "3"
        await pilot.pause()
        assert app.setup.queue[0].train.epochs == 3
        # save the queue (ctrl+s), into the user's preset dir by default
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#in-name", Input).value = "tiny-edited"
        await pilot.pause()
        assert dialog.query_one("#in-path", Input).value == str(config_home / "vitlab" / "presets" / "tiny-edited.yaml")
        await pilot.press("ctrl+r")  # the view keys wait while a dialog is open (ctrl+x is the field's cut)
        await pilot.pause()
        assert app.screen is dialog and not app.running
        await pilot.press("enter", "enter", "enter")  # name -> description -> file -> saved
        await pilot.pause()
        saved = config_home / "vitlab" / "presets" / "tiny-edited.yaml"
        assert saved.exists(), list((config_home / "vitlab").rglob("*"))
        queue = list(app.setup.queue)
        # a bad name keeps the dialog and what was typed; another file is replaced only on a second Save
        other = tmp_path / "other.yaml"
        other.write_text("keep me")
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#in-name", Input).value = "my exp/1"
        dialog.query_one("#in-path", Input).value = str(other)
        await pilot.click("#ok")
        await pilot.pause()
        assert app.screen is dialog and "Experiment name: 'my exp/1' is not a safe name" in str(
            dialog.query_one("#dialog-note").render())  # the field by its label in the dialog
        assert "Value error" not in str(dialog.query_one("#dialog-note").render())
        dialog.query_one("#in-name", Input).value = "my-exp"
        await pilot.pause()
        assert "not a safe name" not in str(dialog.query_one("#dialog-note").render())  # fixed: the note is back
        assert dialog.query_one("#in-path", Input).value == str(other)  # typed by hand: it no longer follows
        dialog.query_one("#in-path", Input).focus()
        await enter_keeps_the_dialog(pilot, dialog, "exists: Save again to replace it")
        assert other.read_text() == "keep me"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is not dialog and load_preset(other).name == "my-exp"
    exp = load_preset(saved)
    assert exp.name == "tiny-edited"
    assert exp.runs == queue  # loads back identically
    # and a fresh app opened with it shows the same queue
    app2 = make_app(saved, runs_dir)
    async with app2.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        assert app2.setup.queue == queue
        assert app2.sub_title == "tiny-edited"


async def test_queue_add_edit_reorder_remove(runs_dir):
    app = make_app(None, runs_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        form = app.setup.form
        form.query_one("#f-run-name", Input).value = "first"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["first"]
        assert form.query_one("#f-run-name", Input).value == "first-2"  # the form is valid again at once
        form.query_one("#f-train-epochs", Input).value = "2"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["first", "first-2"]
        assert app.setup.queue[1].train.epochs == 2
        # reorder from the keyboard in the queue list, reached with ctrl+l (and back to the form)
        queue = app.setup.query_one("#queue", ListView)
        await pilot.press("ctrl+l")
        assert queue.has_focus
        await pilot.press("ctrl+l")
        assert form.query_one("#f-run-name", Input).has_focus
        queue.focus()
        queue.index = 1
        await pilot.press("shift+up")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["first-2", "first"]
        # the moved run stays selected, and shows it (the rows are new: the highlight was lost with the old ones)
        assert queue.index == 0 and queue.highlighted_child is list(queue.query(ListItem))[0]
        assert queue.highlighted_child.has_class("-highlight")
        # edit: enter loads the run into the form; a change goes back to the queue
        queue.focus()
        queue.index = 1
        await pilot.press("enter")
        await pilot.pause()
        assert app.setup.editing == 1
        assert form.query_one("#f-run-name", Input).value == "first"
        form.query_one("#f-vit-layers", Input).value = "2"
        await pilot.pause()
        assert app.setup.queue[1].model.layers == 2
        # heads typed as 1, then 17 (not a divisor of the embed dim): the queue holds 1, and the form may not be
        # left, nor the queue saved, as if the 17 had been taken
        for heads in ("1", "17"):
            form.query_one("#f-vit-heads", Input).value = heads
            await pilot.pause()
        assert app.setup.queue[1].model.heads == 1
        queue.focus()
        queue.index = 0
        await pilot.press("enter")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.setup.editing == 1 and app.screen is app.screen_stack[0]
        assert [n.title for n in app._notifications][-2:] == ["Not left", "Not saved"]
        assert list(app._notifications)[-1].message == (
            "Run 2 in the form: Heads: must divide embed dim 192 (got 17). The queue holds its last valid settings "
            "(ViT p4 d192 h1 L2): fix the field first.")
        form.query_one("#f-vit-heads", Input).value = "2"
        await pilot.pause()
        # a name already in the queue is refused beside the name field
        form.query_one("#f-run-name", Input).value = "FIRST-2"
        await pilot.pause()
        assert "another queued run" in str(form.query_one("#f-run-name-err").render())
        form.query_one("#f-run-name", Input).value = "first"
        await pilot.pause()
        # remove
        queue.focus()
        queue.index = 0
        await pilot.press("delete")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["first"]
        assert app.setup.editing == 0


async def test_themes_registered_switchable_and_remembered(runs_dir, config_home):
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        assert {"vitlab-dark", "vitlab-light"} <= set(app.available_themes)
        assert app.theme == "vitlab-dark"
        app.theme = "vitlab-light"
        await pilot.pause()
    assert load_settings()["theme"] == "vitlab-light"
    assert (config_home / "vitlab" / "settings.yaml").exists()
    app2 = make_app(None, runs_dir)
    async with app2.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        assert app2.theme == "vitlab-light"


async def test_palette_lists_the_app_commands(runs_dir):
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.pause()
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        for expected in ("Run", "Cancel run", "Save preset", "Load preset", "Export comparison of every run as "
                         "Markdown", "Export comparison of every run as CSV", "Show Live", "Show Results"):
            assert expected in commands
        assert any("theme" in t.lower() for t in commands)
        assert commands["Comparison across seeds"].startswith("Results: runs that differ by seed alone")
        assert "as soon as possible" not in commands["Quit"]
        app.results.by_seed = True  # the table across seeds: the commands say so
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Comparison of every run"] == "Results: one row per run (g)"
        assert "Export comparison across seeds as CSV" in commands


def test_tui_import_does_not_load_torch():
    import subprocess
    import sys

    code = ("import sys, vitlab.tui.app, vitlab.tui.views.setup, vitlab.tui.views.live, vitlab.tui.views.results;"
            "print(sorted(m for m in ('torch', 'timm', 'transformers', 'fvcore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_export_asks_before_replacing_a_file_and_keeps_a_bad_name(tmp_path, runs_dir):
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes")
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        app.action_export()
        await pilot.pause()
        dialog = app.screen
        path_input = dialog.query_one("#in-path", Input)
        path_input.value = str(tmp_path / "table.txt")
        path_input.focus()
        await enter_keeps_the_dialog(pilot, dialog, "table.txt: name a .md, .csv or .json file")
        path_input.value = " "  # said ": name a ..." with no name in it
        await enter_keeps_the_dialog(pilot, dialog, "File: give a file name ending in .md, .csv or .json")
        path_input.value = str(notes)
        await enter_keeps_the_dialog(pilot, dialog, "exists: Export again to replace it")
        assert notes.read_text() == "# my notes"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is not dialog and notes.read_text().startswith("| Experiment | Run |")


async def test_the_picker_lists_every_preset_file_and_says_what_is_wrong_with_a_broken_one(tmp_path, runs_dir,
                                                                                          config_home, project_tiny):
    broken = "name: broken\nruns:\n  - name: x\n    model: {kind: vit, heads: 5}\n"
    (tmp_path / "presets" / "broken.yaml").write_text(broken)
    (config_home / "vitlab" / "presets").mkdir(parents=True)
    write_preset(config_home / "vitlab" / "presets" / "tiny.yaml")  # the user's own, named like the project's
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        picker = app.screen
        paths = [p.path for p in picker.presets]
        assert tmp_path / "presets" / "tiny.yaml" in paths and config_home / "vitlab" / "presets" / "tiny.yaml" in paths
        picker.query_one(ListView).index = paths.index(tmp_path / "presets" / "broken.yaml")
        await pilot.pause()
        assert "heads" in str(picker.query_one("#preset-about").render())  # highlighted: what is wrong
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is picker and list(app._notifications)[-1].title == "Invalid preset"
        await pilot.press("end")  # Home/End move the highlight, not just the scroll
        assert picker.query_one(ListView).index == len(paths) - 1
        await pilot.press("home")
        assert picker.query_one(ListView).index == 0
        # a long list scrolls; ga-study's long description stays whole on the 24 rows
        picker.query_one(ListView).index = [p.name for p in picker.presets].index("ga-study")
        await pilot.pause()
        about = picker.query_one("#preset-about")
        assert about.region.bottom <= picker.query_one("#preset-picker-dialog").content_region.bottom
        assert str(about.render()).rstrip().endswith("ga-study.yaml)") and "one GPU.  (" in str(about.render())
        # the runs whose pretrained weights are not here are said beside their preset, with the dataset it needs
        item = picker.query(ListItem)[[p.name for p in picker.presets].index("seed-problem2")]
        await wait_for(pilot, lambda: "weights" in str(item.query_one(Label).render()), timeout=30)
        assert "needs CIFAR-100 (not in data/), weights" in str(item.query_one(Label).render())
        picker.query_one(ListView).index = [p.name for p in picker.presets].index("seed-problem2")
        await pilot.pause()
        assert "Not on this machine: the weights of swin-t-probe, swin-s-probe, swin-t-finetune, swin-s-finetune" \
            in str(picker.query_one("#preset-about").render()).replace("\n", " ")


async def test_end_then_del_removes_the_run_shown_highlighted(tiny_preset, runs_dir):
    """End only scrolled the queue, the highlight stayed on the first run, and Del removed that one, off-screen."""
    app = make_app(tiny_preset, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        assert app.focused.id == "f-run-name"  # the preset's first run, in the form
        await pilot.press("ctrl+l")
        await pilot.press("x")  # a letter meant for the form removes nothing (x did, without a word)
        assert len(app.setup.queue) == 2
        await pilot.press("end")
        await pilot.press("delete")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["vit-a"]
        app.setup.set_seeds(list(app.setup.queue), list(range(8)))  # 8 runs of two lines each
        await pilot.pause()
        queue = app.setup.query_one("#queue", ListView)
        queue.focus()
        await pilot.press("home", "pagedown")
        # within the first page (counting lines, each item two or more, it jumped past the page), and a move
        heights = [item.outer_size.height for item in queue.children]
        assert queue.index >= 1 and sum(heights[:queue.index + 1]) <= queue.scrollable_content_region.height
        await pilot.press("ctrl+o")  # from the queue: the picker, then "Replace the queue?"
        await pilot.pause()
        await pilot.press("enter", "r")
        await pilot.pause()
        assert app.focused.id == "f-run-name"  # not given back to the queue as the dialogs closed


async def test_a_queue_no_preset_holds_is_not_lost_to_quit_or_a_loaded_preset(project_tiny, runs_dir, config_home):
    app = make_app(None, runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await form_ready(pilot)
        await pilot.press("ctrl+n")  # a run queued by hand
        await pilot.pause()
        assert app.setup.unsaved
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.screen.title_text == "Quit vitlab?"
        assert "no preset or training holds (run-1): quitting loses it." in app.screen.message
        await pilot.press("b")  # back: still here, the queue too
        await pilot.pause()
        assert app.is_running and len(app.setup.queue) == 1
        await pilot.press("ctrl+o")
        await pilot.pause()
        picker = app.screen
        picker.query_one(ListView).index = [p.name for p in picker.presets].index("tiny")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.title_text == "Replace the queue?"
        await pilot.press("b")
        await pilot.pause()
        assert [r.name for r in app.setup.queue] == ["run-1"]
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("s")  # save and quit: the Save dialog, then out (it saved and stayed)
        await pilot.pause()
        await pilot.press("enter", "enter", "enter")
        await pilot.pause()
        assert not app.setup.unsaved and app.told[-1].title == "Preset saved"
    assert not app.is_running


def test_a_queued_run_s_second_line_fits_the_80_column_sidebar():
    """"cifar100 32px · 10 ep · 64x1" lost its batch to the border at 80 columns (only "6" showed)."""
    from vitlab.config import RunConfig
    from vitlab.tui.widgets.queue_list import QueueList

    run = RunConfig.model_validate({"name": "ga-64x1", "model": {"kind": "vit"}, "data": {"dataset": "cifar100"},
                                    "train": {"epochs": 10, "batch_size": 64}})
    lines = QueueList._text(0, run, None, 28).plain.splitlines()
    assert lines[-1] == "  cifar100 32px 10ep 64x1" and all(len(line) <= 28 for line in lines)
    assert QueueList._text(0, run, None, 40).plain.splitlines()[-1] == "  cifar100 32px · 10 ep · 64x1"
