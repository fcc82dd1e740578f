"""The Results view: one row per run of this session plus the history in the runs directory, with the
same columns as `vitlab compare`; sortable (s / S, or click a header) and exportable to Markdown, CSV or JSON.
`g` switches to the table across seeds (`vitlab compare --by-seed`): one row per condition trained with
several seeds, mean ± standard deviation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ...engine.hardware import max_processes
from ...report import (COLUMNS, EXPORTS, SEED_COLUMNS, SEED_EXPORTS, STATUS_STYLE, cancelled_early, format_row,
                       runs_count, seed_groups, sort_summaries, started, versus_best, visible_columns)

LIVE_RELOAD_S = 5.0  # while shown, runs still training (left going, another terminal) refresh this often


def run_key(summary: dict[str, Any]) -> str:
    path = summary.get("run_dir")
    return str(Path(path).resolve()) if path else f"{summary.get('experiment')}/{summary.get('name')}"


# Shortened (…; the detail line under the table has them whole) until the columns that answer fit the width
SHORTENED = ("run", "model")
ANSWER = ("experiment", "run", "model", "seeds", "accuracy", "best_accuracy", "status")
NARROWEST = 12
CELL_PADDING = 2  # DataTable's cell_padding, both sides


def fitted_widths(keys: list[str], headers: list[str], rows: list[list[str]], view: int) -> list[int]:
    """Each column's width: its widest cell, less what the long names give up so that the answering columns
    (status and accuracy at 80 columns) fit in `view` cells; the rest of the table scrolls as before."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    excess = sum(w + CELL_PADDING for k, w in zip(keys, widths) if k in ANSWER) - view
    for key in SHORTENED:
        if key in keys and excess > 0 and view > 0:  # 0: not laid out yet; the next render fits
            i = keys.index(key)
            cut = min(excess, max(0, widths[i] - max(NARROWEST, len(headers[i]))))
            widths[i] -= cut
            excess -= cut
    return widths


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


class ResultsView(Vertical):
    BINDINGS = [
        Binding("s", "sort(1)", "Sort"),
        Binding("S", "sort(-1)", "Sort back", show=False),
        Binding("e", "app.export", "Export"),
        Binding("r", "resume", "Resume"),
        Binding("g", "by_seed", "By seed", tooltip="Runs that differ by seed alone: mean ± standard deviation"),
        Binding("g", "every_run", "Every run", tooltip="Back to one row per run"),  # the footer says where g goes
        Binding("f5", "reload", "Reload", show=False),
        Binding("a", "show_all", "All runs", show=False),
    ]

    def __init__(self, runs_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs_dir = runs_dir
        self.session: dict[str, dict[str, Any]] = {}  # run key -> summary, this session's runs that ended
        self.session_dirs: set[str] = set()  # run keys of the runs this session started
        self.history: list[dict[str, Any]] = []
        self.sort_key: str | None = None
        self.by_seed = False  # the table across seeds instead of the runs
        self.show_all = False  # also the earlier runs cancelled in their first epoch (`vitlab compare --all`)
        self._groups: list[dict[str, Any]] = []  # the runs' seed groups, as of the last render
        self._scrolled_to: str | None = None  # the sort whose column was last scrolled into view
        self.loads = 0  # history loads so far
        self._fitted_to = -1  # the table width the last render fitted the long names to

    def compose(self) -> ComposeResult:
        yield Static("", id="results-title")
        yield DataTable(id="results-table", cursor_type="row", zebra_stripes=True, fixed_columns=2)
        yield Static("", id="results-detail")

    def on_mount(self) -> None:
        self.render_table()
        self.reload()
        if self.app.views.active == "results":  # shown by F3 before it was mounted: s, e, r and g work at once
            self.query_one(DataTable).focus()

    # -- data -------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def reload(self) -> None:
        from ...engine.store import find_runs  # torch-free, but kept off the import path of first paint

        runs = find_runs([self.runs_dir]) if self.runs_dir.is_dir() else []
        self.app.call_from_thread(self._set_history, runs)

    def action_reload(self) -> None:
        self.reload()

    def action_show_all(self) -> None:
        if not any(cancelled_early(s) and not self.of_session(s) for s in self.history):  # `a` did nothing, silently
            self.app.notify("No earlier run was left out (a lists the earlier runs cancelled in their first epoch; "
                            "this session's are always shown).")
            return
        self.show_all = not self.show_all
        self.render_table()

    def _set_history(self, runs: list[dict[str, Any]]) -> None:
        first_load = self.loads == 0
        self.loads += 1
        self.history = runs
        self.render_table()
        left = [f"{s.get('experiment')}/{s.get('name')}" for s in runs if s.get("status") == "running"]
        if first_load and left:  # an earlier vitlab was quit with "leave it training", or lost its terminal
            self.app.notify(f"Still training, from an earlier vitlab: {', '.join(left)}. Results (F3) follows it; "
                            "ctrl+x stops it.", title="Training in the background", timeout=15)
        if any(s.get("status") == "running" for s in runs):
            self.set_timer(LIVE_RELOAD_S, self._reload_if_shown)

    def _reload_if_shown(self) -> None:
        """Showing the view again reloads it (see the app), so a hidden view may let its figures age."""
        if self.app.views.active == "results":
            self.reload()

    def run_started(self, run_dir: str) -> None:
        """This session's while it trains too, read from disk until it ends; a resumed run's row of when it
        stopped gives way to it (Results showed "cancelled" until the resume ended)."""
        key = str(Path(run_dir).resolve())
        self.session_dirs.add(key)
        if self.session.pop(key, None) is not None:
            self.reload()

    def add_session_run(self, summary: dict[str, Any]) -> None:
        self.session[run_key(summary)] = summary
        self.render_table()

    def of_session(self, summary: dict[str, Any]) -> bool:
        return run_key(summary) in self.session or run_key(summary) in self.session_dirs

    def runs(self) -> list[dict[str, Any]]:
        """This session's runs first (newest first), then the history not already shown (less the earlier runs
        cancelled in their first epoch, as in `vitlab compare`)."""
        session = list(self.session.values())[::-1]
        seen = set(self.session)
        return session + [s for s in self.history if run_key(s) not in seen
                          and (self.show_all or self.of_session(s) or not cancelled_early(s))]

    def rows(self) -> list[dict[str, Any]]:
        """What the table shows, sorted: the runs, or across seeds one row per condition."""
        if self.by_seed:
            return sort_summaries(self._groups, self.sort_key, SEED_COLUMNS)
        return sort_summaries(self.runs(), self.sort_key)

    def columns(self, rows: list[dict[str, Any]]):
        one_experiment = len({r.get("experiment") for r in rows}) <= 1  # named in the detail line: room for the answer
        return tuple(c for c in (SEED_COLUMNS if self.by_seed else visible_columns(rows))
                     if c.key != "experiment" or not one_experiment)

    # -- table ------------------------------------------------------------------------------------
    def render_table(self) -> None:
        self._groups = seed_groups(self.runs())  # once per change of the runs, not per cursor move
        if not self.is_mounted:
            return
        table = self.query_one(DataTable)
        rows = self.rows()
        columns = self.columns(rows)
        keys = [c.key for c in columns]
        cursor = table.cursor_row
        # the run highlighted stays highlighted where the rows move (a resumed run ending went to the top, and the
        # cursor stayed on the row number, now another run's); on the first row it stays there, on the newest run
        chosen = table.coordinate_to_cell_key((cursor, 0)).row_key.value if 0 < cursor < table.row_count else None
        table.clear(columns=True)
        table.fixed_columns = keys.index("run") + 1 if "run" in keys else 1  # the name stays while scrolling
        headers = [c.header + (" ▼" if c.numeric else " ▲") if c.key == self.sort_key else c.header
                   for c in columns]
        cells = [format_row(s, columns) for s in rows]
        self._fitted_to = table.scrollable_content_region.width
        widths = fitted_widths(keys, headers, cells, self._fitted_to)
        for c, header, width in zip(columns, headers, widths):
            # widths given, not measured: DataTable measures its cells when idle, and a table drawn before that
            # (a busy CPU, right after a queue ended) showed every cell cut to its header's width
            table.add_column(Text(header, justify="right" if c.numeric else "left"), key=c.key, width=width)
        row_keys = [f"condition-{i}" for i in range(len(rows))] if self.by_seed else [run_key(s) for s in rows]
        for s, row, key in zip(rows, cells, row_keys):
            styled = [Text(shorten(cell, width), justify="right" if c.numeric else "left")
                      for c, cell, width in zip(columns, row, widths)]
            status = s.get("status", "")
            if status in STATUS_STYLE and "status" in keys:
                styled[keys.index("status")].stylize(STATUS_STYLE[status])
            if not self.by_seed and self.of_session(s) and "run" in keys:
                styled[keys.index("run")].stylize("bold")
            table.add_row(*styled, key=key)
        if rows:
            table.move_cursor(row=row_keys.index(chosen) if chosen in row_keys else min(cursor, len(rows) - 1))
        if self.sort_key != self._scrolled_to and self.sort_key in keys:
            # once per new sort: a reload of a running run's figures must not undo the user's own scrolling
            self._scrolled_to = self.sort_key
            self.call_after_refresh(self._show_column, keys.index(self.sort_key))
        self.query_one("#results-title", Static).update(self._title(rows, columns))
        self.show_detail()

    def _title(self, rows: list[dict[str, Any]], columns) -> Text:
        title = Text()
        sort = next((c.header for c in columns if c.key == self.sort_key), None)
        early = sum(cancelled_early(s) and not self.of_session(s) for s in self.history)
        if self.by_seed:
            title.append(f"{len(rows)} across seeds", style="bold")
            title.append(" · mean ± std of the finished runs · g: every run")
        else:
            n_session = sum(self.of_session(r) for r in rows)
            title.append(f"{runs_count(n_session)} this session", style="bold")
            title.append(f" · {len(rows) - n_session} earlier in {self.runs_dir}")
            if early:
                title.append(f" (with {early} cancelled in the first epoch · a hides them)" if self.show_all else
                             f" (+{early} cancelled in the first epoch, not shown · a shows them)", style="dim")
        if sort:
            title.append(f" · sorted by {sort}", style="dim")
        elif not self.by_seed:
            title.append(" · newest first", style="dim")
        if not rows:
            title.append("\nNo runs differ by their seed alone yet: Setup's Seeds… (or a preset's `seeds: [0, 1, 2]`)"
                         " trains every queued run once per seed." if self.by_seed else
                         "\nNo runs to show: a shows the ones cancelled in their first epoch." if early else
                         "\nNo runs yet: train something (ctrl+r) and it appears here.", style="dim")
        return title

    def _show_column(self, index: int) -> None:
        """Scroll the sorted column into view: at 80 columns most of them start off the screen."""
        table = self.query_one(DataTable)
        widths = [column.get_render_width(table) for column in table.ordered_columns]
        if index >= len(widths):
            return
        starts = [sum(widths[:i]) for i in range(len(widths))]
        fixed, view = sum(widths[:table.fixed_columns]), table.scrollable_content_region.width
        end = starts[index] + widths[index]
        # scrolled just far enough, the first column after the fixed ones showed cut ("acc" under "Run", "37%"
        # of 52.37%): start the view at a column's left edge instead
        first = next((i for i in range(table.fixed_columns, index + 1) if starts[i] - fixed + view >= end), index)
        x = 0 if end <= view else max(0, starts[first] - fixed)
        table.scroll_to(x=x, animate=False, force=True)

    def show_detail(self) -> None:
        rows = self.rows()
        table = self.query_one(DataTable)
        detail = self.query_one("#results-detail", Static)
        if not rows or table.cursor_row >= len(rows):
            detail.update("")
            return
        s = rows[table.cursor_row]
        text = Text()
        if self.by_seed:
            text.append(f"{s.get('experiment')}/{s.get('name')}", style="bold")
            text.append(f"  {s['finished']} of {runs_count(s['runs'])} finished")
            text.append(f"\n{', '.join(s['run_names'])}", style="dim")
            detail.update(text)
            return
        text.append(f"{s.get('experiment')}/{s.get('name')}", style="bold")
        text.append(f"  {s.get('status')}", style=STATUS_STYLE.get(s.get("status", ""), ""))
        if s.get("accuracy") is not None:
            text.append(f"  {'final' if s.get('status') == 'finished' else 'last'} acc {100 * s['accuracy']:.2f}%")
        if s.get("best_accuracy") is not None:
            text.append(f"  best {100 * s['best_accuracy']:.2f}%")
        if s.get("accuracy") is not None and s.get("eval_split"):
            text.append(f" on {s['eval_split']}", style="dim")  # on CIFAR's test split, the best epoch flatters
        if s.get("throughput_img_s"):
            text.append(f"  {s['throughput_img_s']:,.0f} img/s")
        where = [f"started {started(s)}"] if s.get("started_at") else []
        where += [s["run_dir"]] if s.get("run_dir") else []
        if where:
            text.append("\n" + " · ".join(where), style="dim")
        group = next((g for g in self._groups if s.get("run_dir") in g["run_dirs"]), None)
        if group:  # the figure of one seed means little without the spread of the others
            cells = dict(zip((c.key for c in SEED_COLUMNS), format_row(group, SEED_COLUMNS)))
            text.append(f"\nseeds {cells['seeds']}: final {cells['accuracy']} · best {cells['best_accuracy']}"
                        f"{versus_best(group)} (g)")
        if s.get("error"):  # last: a long one is cut at the pane's end, not the run's directory after it
            text.append(f"\n{s['error']}", style="red")
        detail.update(text)

    def on_resize(self) -> None:
        if self.query_one(DataTable).scrollable_content_region.width != self._fitted_to:
            self.render_table()  # the long names get the width the answer leaves them

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_key = str(event.column_key.value)
        self.render_table()

    def action_sort(self, step: int) -> None:
        keys = [c.key for c in self.columns(self.rows())]
        if self.sort_key not in keys:
            self.sort_key = keys[0] if step > 0 else keys[-1]
        else:
            i = keys.index(self.sort_key) + step
            self.sort_key = keys[i] if 0 <= i < len(keys) else None
        self.render_table()

    def action_every_run(self) -> None:
        self.action_by_seed()

    def action_by_seed(self) -> None:
        self.by_seed = not self.by_seed
        if self.sort_key not in [c.key for c in (SEED_COLUMNS if self.by_seed else COLUMNS)]:
            self.sort_key = None  # e.g. status: the conditions have none
        self.query_one(DataTable).move_cursor(row=0)
        self.render_table()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("by_seed", "every_run"):  # one g, shown as where it goes
            return (action == "every_run") == self.by_seed
        return not (action == "resume" and self.by_seed)  # a row across seeds is several runs

    def action_resume(self) -> None:
        """Continue the highlighted run (cancelled, interrupted, failed) from its last checkpoint."""
        rows = self.rows()
        row = self.query_one(DataTable).cursor_row
        if not rows or row >= len(rows) or not rows[row].get("run_dir"):
            return
        summary = rows[row]
        refusal = {"running": "It is still training; ctrl+x stops it.",
                   "finished": "It finished: there is nothing to resume."}.get(summary.get("status", ""))
        world = summary.get("world_size") or 1  # it resumes on as many: another number would change its batch
        if world > (limit := max_processes())[0]:
            refusal = f"It trained on {world} processes, and this machine runs 1 to {limit[0]} ({limit[1]})."
        if summary.get("failure") == "non-finite":  # the engine refuses too: it would fail at the same step
            refusal = ("It failed on a non-finite loss, and resuming would repeat the same steps: train it again "
                       "with a lower Learning rate or more Warmup epochs (Setup).")
        if refusal:  # said here and now, not after a training process has loaded torch to say it
            self.app.notify(refusal, title="Not resumed", severity="warning")
            return
        self.app.resume(Path(summary["run_dir"]), world)  # type: ignore[attr-defined]

    @property
    def export_stem(self) -> str:
        return "comparison-seeds" if self.by_seed else "comparison"

    def export(self, path: Path) -> Path:
        """Writes the table shown (the runs, or across seeds) in the format the file's extension names."""
        render = (SEED_EXPORTS if self.by_seed else EXPORTS).get(path.suffix.lower().removeprefix("."))
        if render is None:
            raise ValueError(f"{path.name}: name a .md, .csv or .json file")
        path.write_text(render(self.rows()), encoding="utf-8")
        return path
