"""Read training / eval problems from files, Hugging Face `datasets` folders and reasoning_gym generators.

    report = load_examples(cfg.data)              # cfg.data.source
    held_out = load_examples(cfg.data, eval=True)  # cfg.data.eval_source
    print(report.summary())   # "loaded 997 of 1000 rows from data/train.jsonl; skipped 3: line 4: no answer; ..."
    report.examples           # list[Example]

Every source is a *reader* registered in ``SOURCES``: ``read(location, cfg, eval) -> iterator of (line, row)``,
where ``line`` is the 1-based position used in error messages (the file line for .jsonl, the record number
otherwise) and ``row`` whatever the file holds there (a dict when all is well, or a ``_Unreadable`` marker).
``load_examples`` turns rows into ``Example`` records with the same checks for every source, so a bad row reads
the same whether it came from JSON Lines or Parquet.

The source kind is picked from ``cfg.source``:
    reasoning_gym:<name>        generated offline by reasoning_gym (prefix)
    <kind>:<path>               explicit kind, e.g. ``jsonl:data/train.txt``
    *.jsonl / *.json / *.parquet / *.csv   by suffix
    a folder                    a `datasets` folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rlvr.config import DataConfig
from rlvr.registry import Registry, closest
from rlvr.types import Example

SOURCES = Registry("data source")

SUFFIXES = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
RG_PREFIX = "reasoning_gym:"
MAX_LISTED = 5  # bad rows named in summaries and errors
DUPLICATE_WARN_FRACTION = 0.1  # warn when more than this share of the examples repeat an earlier row exactly


class DataError(ValueError):
    """The data cannot be used as configured (missing file, unknown format, bad rows with on_bad_row=fail ...)."""


@dataclass
class BadRow:
    """A row that was skipped. ``line``: 1-based file line (.jsonl) or record number (other sources)."""

    line: int
    reason: str


@dataclass
class DataReport:
    """What ``load_examples`` read: the usable examples and every row it had to skip."""

    examples: list[Example]
    bad_rows: list[BadRow]
    total: int  # rows read from the source, bad ones included
    source: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. "dropped 3 eval items that also appear in train"

    def summary(self, max_listed: int = MAX_LISTED) -> str:
        """One line for the console: counts, the first few bad rows with their reasons, and any notes."""
        text = f"loaded {len(self.examples)} examples from {self.source or 'the source'} ({self.total} rows read)"
        if self.bad_rows:
            text += f"; skipped {len(self.bad_rows)} of {self.total} rows: {_list_bad_rows(self.bad_rows, max_listed)}"
        for note in self.notes:
            text += f"; {note}"
        return text

    def __str__(self) -> str:
        return self.summary()


def _list_bad_rows(bad_rows: list[BadRow], max_listed: int = MAX_LISTED) -> str:
    shown = "; ".join(f"line {b.line}: {b.reason}" for b in bad_rows[:max_listed])
    more = len(bad_rows) - max_listed
    return shown + (f"; ... and {more} more" if more > 0 else "")


@dataclass
class _Unreadable:
    """A record that could not even be parsed (invalid JSON line ...)."""

    reason: str


# ----------------------------------------------------------------------------------------------------------
# JSON-able values


def to_jsonable(value: Any) -> Any:
    """Turn numpy / torch scalars, tuples, sets, NaN and other odd values into plain JSON values.

    dict keys become strings; NaN / missing floats become None; unknown objects become ``str(value)``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    if hasattr(value, "isoformat"):  # dates / timestamps from parquet
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


# ----------------------------------------------------------------------------------------------------------
# readers: (location, cfg, eval) -> iterator of (line, row)


def _lazy_import(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"reading {what} needs the {module.split('.')[0]} package: pip install rlvr[data]") from None


@SOURCES.register("jsonl")
def read_jsonl(location: str, cfg: DataConfig, eval: bool) -> Iterator[tuple[int, Any]]:
    """JSON Lines: one JSON object per line; blank lines are ignored; line numbers are 1-based."""
    with open(location, "rb") as f:  # bytes, so one non-UTF-8 line is a bad row, not a UnicodeDecodeError
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte-order mark
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield line_no, _Unreadable(f"not UTF-8 text: byte {raw[err.start]:#04x} at column {err.start + 1}")
                continue
            if not text.strip():
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as err:
                yield line_no, _Unreadable(f"invalid JSON: {err.msg} at column {err.colno}")


@SOURCES.register("json")
def read_json(location: str, cfg: DataConfig, eval: bool) -> Iterator[tuple[int, Any]]:
    """A JSON file holding a list of objects (or {"data": [...]}); "line" = 1-based position in the list."""
    try:
        with open(location, encoding="utf-8-sig") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{location}: not valid JSON: {err}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{location}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{location}: expected a JSON list of objects, got {type(data).__name__}")
    yield from enumerate(data, start=1)


@SOURCES.register("parquet")
def read_parquet(location: str, cfg: DataConfig, eval: bool) -> Iterator[tuple[int, Any]]:
    """Parquet via pyarrow; "line" = 1-based record number; nulls are missing values."""
    pq = _lazy_import("pyarrow.parquet", "parquet files")
    yield from enumerate(pq.read_table(location).to_pylist(), start=1)


@SOURCES.register("csv")
def read_csv(location: str, cfg: DataConfig, eval: bool) -> Iterator[tuple[int, Any]]:
    """CSV with a header via pandas; every cell is read as a string ("007" stays "007"); empty cells are missing.

    "line" = 1-based record number (the file line is one more, for the header, unless a cell spans lines).
    """
    pd = _lazy_import("pandas", "csv files")
    try:
        frame = pd.read_csv(location, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as err:
        raise DataError(f"{location}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    for i, row in enumerate(frame.to_dict(orient="records"), start=1):
        yield i, {k: (None if v == "" else v) for k, v in row.items()}


@SOURCES.register("hf_disk")
def read_hf_disk(location: str, cfg: DataConfig, eval: bool) -> Iterator[tuple[int, Any]]:
    """A folder written by ``datasets`` ``save_to_disk``; a DatasetDict is read at cfg.split (eval: cfg.eval_split)."""
    datasets = _lazy_import("datasets", "a datasets folder")
    data = datasets.load_from_disk(location)
    if isinstance(data, datasets.DatasetDict):
        split = cfg.eval_split if eval else cfg.split
        if split not in data:
            key = "data.eval_split" if eval else "data.split"
            raise DataError(f"{location}: no split {split!r}; splits: {', '.join(data)} (set {key})")
        data = data[split]
    yield from enumerate(data, start=1)


@SOURCES.register("reasoning_gym")
def read_reasoning_gym(location: str, cfg: DataConfig, eval: bool) -> Iterator[tuple[int, Any]]:
    """Items generated offline by ``reasoning_gym.create_dataset(name, size, seed, **kwargs)``.

    Train: size=cfg.size, seed=cfg.seed, kwargs=cfg.kwargs.
    Eval:  size=cfg.eval_size, seed=cfg.eval_seed, kwargs=cfg.eval_kwargs (None: cfg.kwargs).
    Rows carry verifier "reasoning_gym" and rg_dataset / rg_kwargs / rg_entry for the verifier to rebuild the task.
    """
    rg = _lazy_import("reasoning_gym", "reasoning_gym sources")
    name = location
    size, seed, kwargs = _rg_params(cfg, eval)
    names = sorted(rg.factory.DATASETS)
    if name not in names:
        hint = closest(name, names)
        extra = f"; did you mean {hint!r}?" if hint else ""
        raise DataError(f"unknown reasoning_gym dataset {name!r}{extra} ({len(names)} available, e.g. {', '.join(names[:5])})")
    try:
        dataset = rg.create_dataset(name, size=size, seed=seed, **kwargs)
    except Exception as err:  # a bad kwarg for this generator: say which generator and which kwargs
        raise DataError(f"reasoning_gym:{name} with size={size}, seed={seed}, kwargs={kwargs}: {err}") from err
    for i in range(size):
        entry = to_jsonable(dataset[i])
        yield i + 1, {
            cfg.question_field: entry.get("question"),
            cfg.answer_field: entry.get("answer"),
            "verifier": "reasoning_gym",
            "rg_dataset": name,
            "rg_kwargs": to_jsonable(kwargs),
            "rg_entry": entry,
        }


def _rg_params(cfg: DataConfig, eval: bool) -> tuple[int, int, dict[str, Any]]:
    if eval:
        kwargs = cfg.kwargs if cfg.eval_kwargs is None else cfg.eval_kwargs
        return cfg.eval_size, cfg.eval_seed, dict(kwargs)
    return cfg.size, cfg.seed, dict(cfg.kwargs)


# ----------------------------------------------------------------------------------------------------------
# choosing a reader


def resolve_source(source: str) -> tuple[str, str]:
    """``cfg.source`` -> (kind, location). Raises DataError naming the supported kinds when nothing fits."""
    if not source:
        raise DataError("data.source is empty: give a .jsonl/.json/.parquet/.csv file, a datasets folder or reasoning_gym:<name>")
    if source.startswith(RG_PREFIX):
        return "reasoning_gym", source[len(RG_PREFIX) :]
    prefix, sep, rest = source.partition(":")
    if sep and prefix in SOURCES:
        kind, location = prefix, os.path.expanduser(rest)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            kind, location = "hf_disk", str(path)
        else:
            kind, location = SUFFIXES.get(path.suffix.lower(), ""), str(path)
            if not kind:
                raise DataError(
                    f"data.source {source!r}: unknown file type {path.suffix or '(no suffix)'!r}; supported: "
                    f"{', '.join(SUFFIXES)}, a datasets folder (save_to_disk), reasoning_gym:<name>, "
                    f"or an explicit <kind>:<path> with kind one of {', '.join(SOURCES.names())}"
                )
    if kind != "reasoning_gym" and not Path(location).exists():
        raise DataError(f"data.source {source!r}: no such file or folder")
    if kind == "hf_disk" and not Path(location).is_dir():
        raise DataError(f"data.source {source!r}: a datasets source must be a folder written by save_to_disk")
    return kind, location


# ----------------------------------------------------------------------------------------------------------
# rows -> examples


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def row_to_example(
    row: Any, cfg: DataConfig, *, source: str, index: int, default_verifier: str, answer_required: bool = True,
    base_dir: str = ".",
) -> Example | str:
    """Check one row and build its Example, or return the reason it is unusable.

    answer_required=False (reasoning_gym): a missing answer is kept as None, for tasks such as rubiks_cube whose
    verifier checks the completion against the generated entry rather than a reference answer.
    With cfg.image_field, the row's image(s) are resolved (relative paths against ``base_dir``, the data file's
    folder) and opened once: a missing or unreadable image makes the row unusable (rlvr.vision.images).
    """
    if isinstance(row, _Unreadable):
        return row.reason
    if not isinstance(row, dict):
        return f"row is not an object (got {type(row).__name__})"
    qf, af = cfg.question_field, cfg.answer_field
    if qf not in row or row[qf] is None:
        return f"no question (field {qf!r} missing; fields: {', '.join(map(str, row)) or 'none'})"
    question = row[qf]
    if not isinstance(question, str):
        return f"question is not a string (got {type(question).__name__})"
    if not question.strip():
        return "empty question"
    if answer_required and (af not in row or _is_missing(row[af])):
        return f"no answer (field {af!r} missing or empty)"
    verifier = row.get("verifier")
    if verifier is None:
        verifier = default_verifier
    elif not isinstance(verifier, str) or not verifier:
        return f"verifier is not a non-empty string (got {verifier!r})"
    images = []
    if cfg.image_field:
        from rlvr.vision.images import ImageError, resolve_images

        if _is_missing(row.get(cfg.image_field)):
            return f"no image (field {cfg.image_field!r} missing or empty)"
        try:
            images = resolve_images(row[cfg.image_field], base_dir)
        except ImageError as err:
            return str(err)
    hidden = (qf, af, "verifier", cfg.image_field)
    metadata = {str(k): to_jsonable(v) for k, v in row.items() if k not in hidden}
    teachers = teacher_completions(row.get(cfg.teacher_field)) if cfg.teacher_field else []
    return Example(
        question=question,
        answer=to_jsonable(row.get(af)),
        verifier=verifier,
        metadata=metadata,
        source=source,
        index=index,
        images=images,
        teachers=teachers,
    )


def teacher_completions(value: Any) -> list[str]:
    """A row's teacher field (data.teacher_field) -> its completions: a string, or a list of them (anything else,
    and empty strings, are left out; the guidance step logs which prompts have none)."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, str) and v.strip()]


def load_examples(cfg: DataConfig, *, eval: bool = False, answer_required: bool = True) -> DataReport:
    """Read ``cfg.source`` (or ``cfg.eval_source`` when eval=True) into Examples, reporting every skipped row.
    answer_required=False keeps rows without an answer (answer None): prompts to generate for (`rlvr generate`).

    Bad rows (invalid JSON, not an object, no / empty / non-string question, no answer, bad verifier) are skipped
    and listed in the report with cfg.on_bad_row="skip", and raise DataError with "fail". A source without a
    single usable row always raises. Eval file sources keep their first cfg.eval_size examples (<= 0: all).
    Eval items of a reasoning_gym generator that is also the train source are dropped when their question
    appears in the train set (same name; train and eval seeds should differ, the defaults do).
    """
    if cfg.sources and not eval:
        return load_mixture(cfg, answer_required=answer_required)
    source = cfg.eval_source if eval else cfg.source
    if eval and not source:
        raise DataError("data.eval_source is empty: set it to evaluate on held-out data")
    kind, location = resolve_source(source)
    default_verifier = "reasoning_gym" if kind == "reasoning_gym" else cfg.verifier
    base_dir = location if kind == "hf_disk" else os.path.dirname(location) or "."  # relative image paths
    from rlvr.rewards import VERIFIERS

    examples, bad_rows, total = [], [], 0
    first_line: dict[tuple[str, str], int] = {}  # (question, answer) -> line of its first row
    duplicates: list[tuple[int, int]] = []  # (line, line of the row it repeats)
    for line, row in SOURCES.get(kind)(location, cfg, eval):
        result = row_to_example(
            row, cfg, source=source, index=total, default_verifier=default_verifier,
            answer_required=answer_required and kind != "reasoning_gym", base_dir=base_dir,
        )
        total += 1
        if not isinstance(result, str) and result.verifier not in VERIFIERS:
            hint = closest(result.verifier, VERIFIERS.names())
            result = f"unknown verifier {result.verifier!r}" + (f"; did you mean {hint!r}?" if hint else "")
        if isinstance(result, str):
            bad_rows.append(BadRow(line, result))
        else:
            examples.append(result)
            key = (result.question, json.dumps(result.answer, sort_keys=True, default=str), _image_key(result))
            if key in first_line:
                duplicates.append((line, first_line[key]))
            else:
                first_line[key] = line
    report = DataReport(examples, bad_rows, total, source)
    if examples and len(duplicates) > DUPLICATE_WARN_FRACTION * len(examples):
        line, earlier = duplicates[0]
        report.notes.append(
            f"{len(duplicates)} of {len(examples)} examples ({len(duplicates) / len(examples):.0%}) repeat an earlier "
            f"row exactly (same question and answer; e.g. line {line} = line {earlier}): each is sampled as often "
            "as it appears; deduplicate the file if that is not intended")
    if not examples:
        raise DataError(f"{source}: no usable rows ({total} read); {_list_bad_rows(bad_rows) or 'the source is empty'}")
    if bad_rows and cfg.on_bad_row == "fail":
        raise DataError(
            f"{source}: {len(bad_rows)} of {total} rows are unusable (data.on_bad_row=fail): {_list_bad_rows(bad_rows)}"
        )
    if eval and kind == "reasoning_gym":
        _drop_train_overlap(report, cfg, location)
    elif eval and cfg.eval_size > 0 and len(examples) > cfg.eval_size:
        report.notes.append(f"kept the first {cfg.eval_size} of {len(examples)} eval examples (data.eval_size)")
        report.examples = examples[: cfg.eval_size]
    return report


def _image_key(example: Example) -> tuple:
    """Rows asking the same question about different images are not duplicates."""
    if not example.images:
        return ()
    from rlvr.vision.images import image_label

    return tuple(image_label(ref) for ref in example.images)


def source_data_config(cfg: DataConfig, entry) -> DataConfig:
    """The data section as one data.sources entry sees it: its own source, verifier, fields, split and size."""
    changes = {"source": entry.source, "sources": [], "eval_source": ""}
    for key in ("verifier", "question_field", "answer_field", "split", "size", "image_field"):
        if getattr(entry, key):
            changes[key] = getattr(entry, key)
    if entry.kwargs is not None:
        changes["kwargs"] = entry.kwargs
    return dataclasses.replace(cfg, **changes)


def load_mixture(cfg: DataConfig, answer_required: bool = True) -> DataReport:
    """Every data.sources entry read as its own source; each example's ``origin`` is the entry's name. One report
    (its source: "name (examples, weight w) + ..."); bad rows and notes are prefixed with their source's name."""
    from rlvr.config import source_name

    examples, bad_rows, total, notes, parts = [], [], 0, [], []
    for entry in cfg.sources:
        name = source_name(entry)
        try:
            report = load_examples(source_data_config(cfg, entry), answer_required=answer_required)
        except DataError as err:
            raise DataError(f"data.sources ({name}): {err}") from None
        for ex in report.examples:
            ex.origin = name
        examples.extend(report.examples)
        bad_rows.extend(BadRow(b.line, f"{name}: {b.reason}") for b in report.bad_rows)
        total += report.total
        parts.append(f"{name} ({len(report.examples)}, weight {entry.weight:g})")
        notes.extend(f"{name}: {note}" for note in report.notes)
    return DataReport(examples, bad_rows, total, " + ".join(parts), notes)


def _drop_train_overlap(report: DataReport, cfg: DataConfig, name: str) -> None:
    """Remove eval items whose question is also generated for training by the same reasoning_gym task."""
    train_cfgs = [cfg] if cfg.source == RG_PREFIX + name else \
        [source_data_config(cfg, e) for e in cfg.sources if e.source == RG_PREFIX + name]
    if not train_cfgs:
        return
    train_questions = {row[c.question_field] for c in train_cfgs for _, row in read_reasoning_gym(name, c, eval=False)}
    kept = [ex for ex in report.examples if ex.question not in train_questions]
    dropped = len(report.examples) - len(kept)
    if dropped:
        report.notes.append(f"dropped {dropped} eval items whose question also appears in the train set")
        if not kept:
            raise DataError(f"{report.source}: every eval item also appears in the train set; use another data.eval_seed")
    report.examples = kept
