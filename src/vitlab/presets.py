"""Find, load, validate and save presets. Every problem is reported with file, line, run and field.

A preset is an experiment: `name`, `description`, `defaults` (any of data/model/train) and `runs`,
each run deep-merged over the defaults, and optionally `seeds`: every run is then trained once per seed
(`vit-s0`, `vit-s1`, ...), so the comparison can say how much of a difference is seed noise.
Presets are read with a SafeLoader only (one that also refuses a key written twice).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .config import (CIFAR_FOLDERS, MODEL_CLASSES, DataConfig, ExperimentConfig, RunConfig, TrainConfig,
                     condition_key, picked_by, seeded_name, unseeded_name)
from .errors import PresetError
from .files import config_dir, shipped_dir, write_whole

TOP_KEYS = ("name", "description", "defaults", "runs", "seeds")
SECTIONS = {"data": DataConfig, "train": TrainConfig, "model": None}


def preset_dirs() -> list[Path]:
    """Where presets are looked for: ./presets, the user's own, the ones shipped with vitlab."""
    dirs = [Path.cwd() / "presets", user_preset_dir(), shipped_dir("presets")]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def user_preset_dir() -> Path:
    return config_dir() / "presets"


MAX_PRESET_BYTES = 1 << 20  # a preset is a few kilobytes


def resolve_preset_path(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name (`quickstart`) looked up in the preset directories."""
    path = Path(name_or_path).expanduser()
    # a directory of that name here (`--runs-dir .` makes ./quickstart/) does not hide the preset
    if path.is_file() or len(path.parts) > 1:
        return path
    names = [path.name] if path.suffix in (".yaml", ".yml") else [f"{path}.yaml", f"{path}.yml"]
    for d in preset_dirs():  # `quickstart` or `quickstart.yaml`, from any directory
        for name in names:
            if (d / name).is_file():
                return d / name
    return path


@dataclass(frozen=True)
class PresetInfo:
    path: Path
    name: str
    description: str
    runs: tuple[RunConfig, ...]  # as listed (validated); none for an invalid preset
    error: str | None = None
    missing: tuple[str, ...] = ()  # datasets its runs need that are not where they look (offline: get them first)


def missing_datasets(exp: ExperimentConfig) -> tuple[str, ...]:
    """CIFAR sets the runs need that are not under their data.root: a look at one folder each, no torch (the
    loader's preflight checks every file when the queue starts)."""
    missing = []
    for data in {(r.data.dataset, str(r.data.root)): r.data for r in exp.runs}.values():
        if data.dataset in CIFAR_FOLDERS and not data.download:
            title, folder = CIFAR_FOLDERS[data.dataset]
            if not (Path(data.root).expanduser() / folder).is_dir():
                missing.append(f"{title} (not in {data.root}/)")
    return tuple(dict.fromkeys(missing))


def list_presets() -> list[PresetInfo]:
    """Every preset of preset_dirs(), each with its path: one of the user's named like a shipped one is listed too
    (a name is looked up in that order, but a picker shows them all)."""
    found: list[PresetInfo] = []
    for d in preset_dirs():
        for path in sorted(d.glob("*.y*ml")):
            try:
                exp = load_preset(path)
                found.append(PresetInfo(path, exp.name, exp.description, tuple(exp.runs),
                                        missing=missing_datasets(exp)))
            except PresetError as e:
                found.append(PresetInfo(path, path.stem, "", (), error=str(e)))
    return found


# -- line numbers -------------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, but a key written twice in one mapping is an error: YAML keeps the last silently, so a second
    `train:` in a run dropped the first block's settings and trained another experiment than the one written.
    Checked on the composed document, before merge keys (`<<: *defaults`) copy a mapping's keys into another,
    where a key beside the merge overrides the merged one, as YAML means."""

    def construct_document(self, node: yaml.Node) -> Any:
        stack, seen = [node], set()
        while stack:
            current = stack.pop()
            if id(current) in seen:  # an alias: the node it names was checked
                continue
            seen.add(id(current))
            if isinstance(current, yaml.MappingNode):
                lines: dict[tuple[str, str], int] = {}
                for key, value in current.value:
                    stack.append(value)
                    if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                        continue
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in lines:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"{key.value!r} is given twice (lines {lines[key.tag, key.value]} and {line}): "
                            "keep one", key.start_mark)
                    lines[key.tag, key.value] = line
            elif isinstance(current, yaml.SequenceNode):
                stack.extend(current.value)
        return super().construct_document(node)


def _line_map(text: str) -> dict[tuple, int]:
    """Map each key path (('runs', 0, 'model', 'heads')) to its 1-based line in the YAML text."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                lines[path + (k,)] = key.start_mark.line + 1
                walk(value, path + (k,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _line_of(lines: dict[tuple, int], *candidates: tuple) -> int | None:
    """The line of the first candidate written in the file, else of the nearest section holding the first: a value
    in `defaults:` is named at its own line, not at the run that inherits it."""
    if exact := next((path for path in candidates if path in lines), None):
        return lines[exact]
    for path in candidates:
        for cut in range(len(path), 0, -1):
            if path[:cut] in lines:
                return lines[path[:cut]]
    return None


# -- error formatting ---------------------------------------------------------------------------

def _allowed_keys(section: str, model_kind: str | None) -> list[str]:
    if section == "model":
        cls = MODEL_CLASSES.get(model_kind or "", None)
        return list(cls.model_fields) if cls else ["kind"]
    cls = SECTIONS.get(section)
    return list(cls.model_fields) if cls else []


def describe_error(err: dict[str, Any], run: dict[str, Any]) -> tuple[tuple, str]:
    """The dotted field path (inside a run) and a one-line message for one pydantic error."""
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in MODEL_CLASSES))
    if err["type"] == "cross_field":
        return tuple(int(p) if p.isdigit() else p for p in err["ctx"]["field"].split(".")), err["ctx"]["message"]
    if err["type"] == "extra_forbidden":
        section = loc[0] if len(loc) > 1 else ""
        kind = run.get("model", {}).get("kind") if isinstance(run.get("model"), dict) else None
        allowed = _allowed_keys(section, kind) if section else list(RunConfig.model_fields)
        return loc, f"unknown key; allowed: {', '.join(allowed)}"
    if err["type"] == "missing" and loc == ("model",):  # pydantic's "Field required" told nothing of what to write
        return loc, (f"missing: say which model, e.g. model: {{kind: vit}} (kind: {', '.join(MODEL_CLASSES)}; the "
                     "other fields have defaults), in the run or in the preset's defaults:")
    if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
        return loc + ("kind",), f"must be one of: {', '.join(MODEL_CLASSES)}"
    msg = err["msg"].removeprefix("Value error, ")  # pydantic's prefix for a ValueError raised in a validator
    if "input" in err and err["type"] not in ("missing",):
        msg = f"{msg} (got {err['input']!r})"
    return loc, msg


def describe_errors(e: ValidationError, labels: dict[str, str] | None = None) -> str:
    """Every error of an experiment's validation on one line, each as 'field.path: message' (or as `labels` name
    the field: a dialog's "Experiment name" for `name`)."""
    def where(loc: tuple) -> str:
        path = ".".join(map(str, loc)) or "experiment"
        return (labels or {}).get(path, path)

    return "; ".join(f"{where(loc)}: {text}" for loc, text in (describe_error(err, {}) for err in e.errors()))


def _issue(file: str, line: int | None, where: str, message: str) -> str:
    place = f"{file}:{line}" if line else file
    return f"{place}: {where}: {message}" if where else f"{place}: {message}"


# -- loading ------------------------------------------------------------------------------------

def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            # a run that changes model.kind starts that section afresh: fields of another kind don't leak
            if k == "model" and "kind" in v and v["kind"] != out[k].get("kind"):
                out[k] = copy.deepcopy(v)
            else:
                out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(pairs: Iterable[str]) -> list[tuple[tuple[str, ...], Any]]:
    """`--set train.batch_size=16` -> [(('train', 'batch_size'), 16)]; values typed by YAML (paths as given), then
    the schema."""
    parsed = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        path = tuple(p for p in key.strip().split(".") if p)
        if not sep or len(path) != 2 or path[0] not in SECTIONS:
            raise PresetError(
                f"--set {pair!r}: expected SECTION.KEY=VALUE with SECTION one of data, model, train (e.g. train.batch_size=16)"
            )
        section, name = path
        known = set(SECTIONS[section].model_fields) if SECTIONS[section] else {
            f for cls in MODEL_CLASSES.values() for f in cls.model_fields}
        if name not in known:
            raise PresetError(f"--set {key}: {section} has no key {name!r}; allowed: {', '.join(sorted(known))}")
        if path in PATH_KEYS:  # a directory called 2024 or yes is a path, not a number or a boolean
            value = None if raw.strip() in ("null", "~") else raw
        else:
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
        if path in (earlier := dict(parsed)) and earlier[path] != value:  # the last one silently won
            raise PresetError(f"--set {key.strip()} given twice ({earlier[path]!r}, then {value!r}): say one")
        parsed.append((path, value))
    return parsed


PATH_KEYS = {("data", "root"), ("model", "weights")}  # the schema's text fields: taken as typed


def _apply_overrides(run: dict, overrides: list[tuple[tuple[str, ...], Any]], used: set[str]) -> dict:
    """Applies the overrides that fit the run's model kind; `used` collects the keys applied."""
    for (section, name), value in sorted(overrides, key=lambda o: o[0] != ("model", "kind")):  # the kind first
        block = run.setdefault(section, {})
        if not isinstance(block, dict):
            continue  # `model: 5` in the file: its validation says so
        if (section, name) == ("model", "kind") and value != block.get("kind", "vit"):
            block = run["model"] = {}  # another kind starts the section afresh, as a run's own `kind:` does
        if section == "model" and name != "kind":
            fields = MODEL_CLASSES.get(block.get("kind", "vit"), MODEL_CLASSES["vit"]).model_fields
            if name not in fields:
                continue  # e.g. model.patch_size does not apply to a ResNet run
            if _other_kinds_choice(name, value, fields[name]):
                continue  # model.stem=cifar is ResNet's stem, not a wrong ViT stem
        block[name] = value
        if section == "model" and name in ("mlp_ratio", "mlp_dim"):  # two ways to give one width: --set replaces
            block.pop("mlp_dim" if name == "mlp_ratio" else "mlp_ratio", None)
        used.add(f"{section}.{name}")
    return run


def _other_kinds_choice(name: str, value: Any, field: Any) -> bool:
    """`value` is not among this kind's choices for `name` but among another kind's (both ViT and ResNet-18 have
    a `stem`, with different choices): the override means the other kind's field."""
    def choices(f: Any) -> tuple:
        return getattr(f.annotation, "__args__", ()) if get_origin(f.annotation) is Literal else ()

    others = [cls.model_fields[name] for cls in MODEL_CLASSES.values() if name in cls.model_fields]
    return bool(choices(field)) and value not in choices(field) and any(value in choices(f) for f in others)


MAX_SEED = 2**32 - 1


def check_seeds(raw: Any, where: str) -> list[int]:
    """A preset's `seeds`: a list of distinct whole numbers 0..2**32-1, else a PresetError naming `where`."""
    bad = [x for x in raw if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= MAX_SEED] \
        if isinstance(raw, list) else None
    if bad is None or not raw or bad or len(set(raw)) != len(raw):
        got = f"{bad[0]!r} is not one" if bad else f"got {raw!r}"
        raise PresetError(f"{where}: must be a list of distinct whole numbers 0..{MAX_SEED}, e.g. [0, 1, 2] ({got})")
    return raw


def parse_seeds(text: str, where: str = "--seeds") -> list[int]:
    """The command line's (and the TUI's) `0,1,2`."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts) or len(set(map(int, parts))) != len(parts) or \
            any(int(part) > MAX_SEED for part in parts):
        raise PresetError(f"{where}: give distinct whole numbers 0..{MAX_SEED} separated by commas, e.g. 0,1,2 "
                          f"(got {text!r})")
    return [int(part) for part in parts]


def reseed(runs: list[RunConfig], seeds: list[int]) -> list[RunConfig]:
    """Every run once per seed, as a preset's `seeds` would train them. Runs that differ by their seed alone are
    one run first, so `vit-s0, vit-s1` reseeded with [0, 1, 2] are `vit-s0, vit-s1, vit-s2`, not `vit-s0-s0`.
    A ValidationError names a seeded name that is too long."""
    conditions: dict[str, RunConfig] = {}
    for run in runs:
        conditions.setdefault(condition_key(run.resolved()), run)
    bases = [{**run.resolved(), "name": unseeded_name(run.name, run.train.seed)} for run in conditions.values()]
    return [RunConfig.model_validate(_with_seed(base, seed)) for base in bases for seed in seeds]


@dataclass
class _Issues:
    """A preset's problems, each at its file and line, so that one read reports all of them."""
    file: str
    lines: dict[tuple, int]
    found: list[str] = field(default_factory=list)

    def add(self, where: str, message: str, *paths: tuple) -> None:
        self.found.append(_issue(self.file, _line_of(self.lines, *paths), where, message))


def experiment_from_dict(data: Any, *, file: str = "<preset>", text: str | None = None,
                         overrides: Iterable[str] = (), seeds: list[int] | None = None,
                         only: list[str] | None = None) -> ExperimentConfig:
    """`seeds` (the CLI's --seeds) replaces the preset's own list; either trains every run once per seed. `only`
    (--run NAME): the runs named, so that a problem of another run (--set train.epochs=1 under its warmup) is not
    said; pick_runs then tells a name of none."""
    if not isinstance(data, dict):
        raise PresetError(f"{file}: a preset is a mapping with keys {', '.join(TOP_KEYS)}")
    issues = _Issues(file, _line_map(text) if text else {})
    defaults, runs = _sections(data, issues)
    over = parse_overrides(overrides)
    seeds = _seeds(data, seeds, {".".join(path) for path, _ in over}, defaults, runs, issues)
    valid, origin = _runs(runs, defaults, over, overrides, seeds, issues, _picked(runs, defaults, seeds, only))
    if issues.found:
        raise PresetError("\n".join(dict.fromkeys(issues.found)))  # a bad --set fails every run alike: say it once
    try:
        return ExperimentConfig(name=data.get("name", Path(file).stem), description=data.get("description") or "",
                                runs=valid)
    except ValidationError as e:
        for err in e.errors():
            loc, msg = describe_error(err, {})
            where = ".".join(map(str, loc))
            if loc[:1] == ("runs",) and len(loc) > 1 and isinstance(loc[1], int):  # as the runs' own errors say it
                i = origin[loc[1]]  # with seeds, each run of the file is several of the experiment
                loc = ("runs", i, *loc[2:])
                where = _run_label(runs[i], i) + (f" {'.'.join(map(str, loc[2:]))}" if loc[2:] else "")
            issues.add(where, msg, loc)
        raise PresetError("\n".join(issues.found)) from None


def _run_label(raw: Any, i: int) -> str:
    """`runs[2] (vit-a)`: a run as the file has it."""
    return f"runs[{i}]" + (f" ({raw['name']})" if isinstance(raw, dict) and "name" in raw else "")


def _sections(data: dict, issues: _Issues) -> tuple[dict, list]:
    """The preset's defaults and runs, each problem with its top-level keys reported (and left out)."""
    for key in data:
        if key not in TOP_KEYS:
            issues.add(str(key), f"unknown key; allowed: {', '.join(TOP_KEYS)}", (key,))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        issues.add("defaults", "must be a mapping of data/model/train", ("defaults",))
        defaults = {}
    for key in defaults:
        if key not in SECTIONS:
            issues.add(f"defaults.{key}", "unknown key; allowed: data, model, train", ("defaults", key))
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        issues.add("runs", "must be a non-empty list of runs", ("runs",))
        runs = []
    return defaults, runs


def _seeds(data: dict, seeds: list[int] | None, set_keys: set[str], defaults: dict, runs: list,
           issues: _Issues) -> list[int] | None:
    """The seeds every run trains with: --seeds, else the preset's own, else None (each run's train.seed)."""
    if seeds is not None and "train.seed" in set_keys:
        raise PresetError("--seeds and --set train.seed both set the seed: give one of them")
    if seeds is not None or data.get("seeds") is None:
        return seeds
    if "train.seed" in set_keys:
        raise PresetError("--set train.seed: this preset's seeds give every run its seed; choose them with "
                          "--seeds (e.g. --seeds 1)")
    line = _line_of(issues.lines, ("seeds",))
    try:
        seeds = check_seeds(data["seeds"], f"{issues.file}:{line}: seeds" if line else f"{issues.file}: seeds")
    except PresetError as e:
        issues.found.append(str(e))
    # a seed written in the file as well would be silently replaced: say that they clash
    blocks = [(("defaults",), "defaults.", defaults)] + [
        (("runs", i), f"{_run_label(r, i)} ", r) for i, r in enumerate(runs) if isinstance(r, dict)]
    for path, where, block in blocks:
        if isinstance(block.get("train"), dict) and "seed" in block["train"]:
            issues.add(f"{where}train.seed", "the preset's seeds give every run its seed; remove one of the two",
                       path + ("train", "seed"))
    return seeds


def _picked(runs: list, defaults: dict, seeds: list[int] | None, only: list[str] | None) -> list[bool]:
    """Which runs of the file `--run NAME` asks for (by pick_runs' rule, before they are validated); all of them
    while a name is none of theirs, so that it is told with every name."""
    if not only:
        return [True] * len(runs)

    def called(raw: Any) -> set[str]:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            return set()  # kept: its own error is said
        if seeds:
            return set().union(*(picked_by(seeded_name(name, s), s) for s in seeds))
        blocks = (raw.get("train"), defaults.get("train"))
        return picked_by(name, next((t["seed"] for t in blocks if isinstance(t, dict) and "seed" in t), None))

    names = [called(raw) for raw in runs]
    wanted = {n.lower() for n in only}
    if not all(any(w in n for n in names) for w in wanted):
        return [True] * len(runs)
    return [not n or bool(n & wanted) for n in names]


def _runs(runs: list, defaults: dict, over: list[tuple[tuple[str, ...], Any]], overrides: Iterable[str],
          seeds: list[int] | None, issues: _Issues, picked: list[bool]) -> tuple[list[RunConfig], list[int]]:
    """Each run picked merged over the defaults, with the --set overrides and once per seed, validated; and for
    each of them the index of its run in the file."""
    used: set[str] = set()
    valid: list[RunConfig] = []
    origin: list[int] = []
    set_keys = {".".join(path) for path, _ in over}
    set_issues: dict[str, dict[str, str]] = {}  # --set key -> {run label: problem}
    file_issues: dict[tuple[str, str, int | None], list[tuple[str, str]]] = {}  # (field, problem, line) -> runs
    with_set = f" (with --set {', '.join(overrides)})" if overrides else ""  # e.g. model.kind=swin makes keys wrong
    for i, raw in enumerate(runs):
        if not picked[i]:
            continue
        label = _run_label(raw, i)
        if not isinstance(raw, dict):
            issues.add(label, "each run is a mapping with name, model, data, train", ("runs", i))
            continue
        base = {k: v for k, v in defaults.items() if k in SECTIONS}
        merged = _apply_overrides(_deep_merge(base, raw), over, used)
        try:
            configs = [RunConfig.model_validate(_with_seed(merged, seed)) for seed in seeds or [None]]
        except ValidationError as e:
            for err in e.errors():
                loc, msg = describe_error(err, merged)
                dotted = ".".join(map(str, loc))
                if dotted in set_keys:  # the value came from the command line, not from a line of the file
                    set_issues.setdefault(dotted, {})[label] = msg
                    continue
                # else the nearest run section
                line = _line_of(issues.lines, ("runs", i) + loc, ("defaults",) + loc)
                file_issues.setdefault((dotted, msg + with_set, line), []).append((label, raw.get("name", label)))
            continue
        valid += configs
        origin += [i] * len(configs)
    for (dotted, msg, line), named in file_issues.items():  # one line of defaults wrong for many runs: one line
        if len(named) == 1:
            issues.found.append(_issue(issues.file, line, f"{named[0][0]} {dotted}".rstrip(), msg))
        else:
            runs_named = ", ".join(str(name) for _, name in named)
            issues.found.append(_issue(issues.file, line, dotted or "runs", f"{msg}; in runs {runs_named}"))
    for key, problems in set_issues.items():  # one line when every run has the same problem, else one a run
        if len(set(problems.values())) == 1 and len(problems) == sum(picked):
            issues.found.append(f"--set {key}: {next(iter(problems.values()))}")
        else:
            issues.found += [f"--set {key}: {label}: {msg}" for label, msg in problems.items()]
    kinds = sorted({r.model.kind for r in valid})
    for key in dict.fromkeys(".".join(path) for path, _ in over):
        if key not in used and runs:  # a model key no run's kind has: said, not silently dropped
            whose = "of this preset" if all(picked) else "asked for (--run)"
            issues.found.append(f"--set {key}: no run {whose} has it (its models: {', '.join(kinds)})")
    return valid, origin


def _with_seed(run: dict, seed: int | None) -> dict:
    if seed is None:
        return run
    name = run.get("name")
    return {**run, "name": seeded_name(name, seed) if isinstance(name, str) else name,
            "train": {**(run.get("train") or {}), "seed": seed}}


def load_preset(path: str | Path, overrides: Iterable[str] = (), seeds: list[int] | None = None,
                only: list[str] | None = None) -> ExperimentConfig:
    if not str(path).strip():
        raise PresetError("no preset given: name a preset file, or a shipped preset (`vitlab presets` lists them)")
    path = resolve_preset_path(path)
    if path.is_dir():
        raise PresetError(f"{path}: a directory, not a preset file (`vitlab presets` lists the presets)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PRESET_BYTES + 1)  # /dev/zero as a preset was read until the memory ran out
        if len(raw) > MAX_PRESET_BYTES:
            raise PresetError(f"{path}: larger than {MAX_PRESET_BYTES >> 20} MiB; not a preset")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        if len(path.parts) > 1 and resolve_preset_path(path.name).is_file():  # presets/quickstart.yaml elsewhere
            raise PresetError(f"{path}: no such preset file here; the preset of that name is found from any "
                              f"directory by its name alone: {path.stem}") from None
        raise PresetError(f"{path}: no such preset file (see `vitlab presets` for the ones shipped)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PresetError(f"{path}: cannot read it ({e})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PresetError(f"{where}: YAML syntax error: {problem}") from None
    return experiment_from_dict(data, file=str(path), text=text, overrides=overrides, seeds=seeds, only=only)


def _minimal(model: BaseModel, defaults: BaseModel) -> dict[str, Any]:
    """Fields of `model` that differ from `defaults` (keeps saved presets short and readable)."""
    full, base = model.model_dump(mode="json"), defaults.model_dump(mode="json")
    return {k: v for k, v in full.items() if base.get(k) != v or k == "kind"}


def _seeds_of(runs: list[RunConfig]) -> list[int] | None:
    """The seeds of a queue that a preset's `seeds` (or --seeds, Seeds…) made: every setting once per seed, in
    that order and named so. None for any other queue."""
    first = condition_key(runs[0].resolved()) if runs else None
    seeds = [r.train.seed for r in runs if condition_key(r.resolved()) == first]
    try:
        return seeds if runs and reseed(runs, seeds) == runs else None
    except ValidationError:
        return None


def experiment_to_dict(exp: ExperimentConfig) -> dict[str, Any]:
    """A seeded queue is written as its settings and `seeds` (one block to edit per setting, not per seed)."""
    seeds = _seeds_of(exp.runs)
    runs = []
    for run in exp.runs:
        if seeds is not None:
            if run.train.seed != seeds[0]:
                continue
            run = run.model_copy(update={"name": unseeded_name(run.name, run.train.seed),
                                         "train": run.train.model_copy(update={"seed": TrainConfig().seed})})
        entry: dict[str, Any] = {"name": run.name, "model": _minimal(run.model, type(run.model)())}
        for section, cls in (("data", DataConfig), ("train", TrainConfig)):
            block = _minimal(getattr(run, section), cls())
            if block:
                entry[section] = block
        runs.append(entry)
    return {"name": exp.name, "description": exp.description, **({"seeds": tuple(seeds)} if seeds else {}),
            "runs": runs}


class _Dumper(yaml.SafeDumper):
    """Writes the seeds on one line (`seeds: [0, 1, 2]`), as people write them."""


_Dumper.add_representer(tuple, lambda dumper, seq: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", seq, flow_style=True))


def dump_preset(exp: ExperimentConfig) -> str:
    return yaml.dump(experiment_to_dict(exp), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def save_preset(exp: ExperimentConfig, path: str | Path) -> Path:
    """Write atomically; the file loads back to an equal ExperimentConfig."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, dump_preset(exp).encode("utf-8"))
    return path

