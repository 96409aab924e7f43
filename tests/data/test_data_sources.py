"""load_examples over every source kind, bad-row handling, and reasoning_gym train/eval separation."""

import json

import pytest

from rlvr.config import DataConfig
from rlvr.data import SOURCES, DataError, load_examples, resolve_source, to_jsonable

ROWS = [
    {"question": "1+1?", "answer": "2", "level": 1},
    {"question": "2+3?", "answer": 5, "level": 2, "verifier": "mcqa"},
    {"question": "Name a prime.", "answer": ["2", "3"], "level": 3},
]


def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_registry_lists_every_kind():
    assert SOURCES.names() == ["csv", "hf_disk", "json", "jsonl", "parquet", "reasoning_gym"]


def test_jsonl_fields_verifier_metadata_index(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in ROWS])
    report = load_examples(DataConfig(source=src, verifier="math"))
    assert report.total == 3 and not report.bad_rows
    ex0, ex1, ex2 = report.examples
    # row 0: default verifier from cfg, "level" is the only remaining field -> metadata
    assert (ex0.question, ex0.answer, ex0.verifier, ex0.metadata, ex0.index) == ("1+1?", "2", "math", {"level": 1}, 0)
    # row 1: its own "verifier" field wins and is not copied into metadata; answers keep their JSON type
    assert (ex1.answer, ex1.verifier, ex1.metadata) == (5, "mcqa", {"level": 2})
    assert ex2.answer == ["2", "3"] and ex2.index == 2 and ex2.source == src


def test_jsonl_custom_field_names(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", [json.dumps({"problem": "p", "solution": "s", "answer": "x"})])
    (ex,) = load_examples(DataConfig(source=src, question_field="problem", answer_field="solution")).examples
    # "answer" is not the answer field here, so it stays in metadata (templates still refuse it, see templates tests)
    assert (ex.question, ex.answer, ex.metadata) == ("p", "s", {"answer": "x"})


def test_bad_rows_are_counted_with_line_numbers(tmp_path):
    lines = [
        json.dumps({"question": "ok", "answer": "1"}),  # line 1: good
        "",  # line 2: blank, ignored (not a row)
        "{not json",  # line 3: invalid JSON
        json.dumps(["a", "list"]),  # line 4: not an object
        json.dumps({"answer": "1"}),  # line 5: no question
        json.dumps({"question": "   ", "answer": "1"}),  # line 6: empty question
        json.dumps({"question": 7, "answer": "1"}),  # line 7: question not a string
        json.dumps({"question": "q", "answer": None}),  # line 8: no answer
        json.dumps({"question": "q"}),  # line 9: no answer
        json.dumps({"question": "q", "answer": "1", "verifier": 3}),  # line 10: bad verifier
        json.dumps({"question": "fine", "answer": 0}),  # line 11: good (0 is an answer)
    ]
    report = load_examples(DataConfig(source=write_jsonl(tmp_path / "d.jsonl", lines)))
    # 10 non-blank lines were read, 2 are usable, 8 skipped at lines 3..10 in order
    assert report.total == 10 and len(report.examples) == 2
    assert [b.line for b in report.bad_rows] == [3, 4, 5, 6, 7, 8, 9, 10]
    reasons = [b.reason for b in report.bad_rows]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "row is not an object (got list)"
    assert reasons[2].startswith("no question")
    assert reasons[3] == "empty question"
    assert reasons[4] == "question is not a string (got int)"
    assert reasons[5].startswith("no answer") and reasons[6].startswith("no answer")
    assert reasons[7].startswith("verifier is not")
    # index counts rows (blank lines excluded): "fine" is the 10th row -> index 9
    assert report.examples[1].index == 9 and report.examples[1].answer == 0
    text = report.summary()
    assert "skipped 8 of 10 rows" in text and "line 3: invalid JSON" in text and "line 5: no question" in text
    assert "... and 3 more" in text  # 5 listed of 8


def test_on_bad_row_fail_names_lines(tmp_path):
    lines = [json.dumps({"question": "q", "answer": "1"}), json.dumps({"question": "q"}), "oops"]
    cfg = DataConfig(source=write_jsonl(tmp_path / "d.jsonl", lines), on_bad_row="fail")
    with pytest.raises(DataError, match=r"2 of 3 rows are unusable.*line 2: no answer.*line 3: invalid JSON"):
        load_examples(cfg)


def test_zero_valid_rows_always_raises(tmp_path):
    cfg = DataConfig(source=write_jsonl(tmp_path / "d.jsonl", [json.dumps({"question": "q"})]))
    with pytest.raises(DataError, match="no usable rows"):
        load_examples(cfg)
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_examples(DataConfig(source=str(empty)))


def test_json_list_and_explicit_kind_prefix(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS + [{"question": "no answer"}]))
    report = load_examples(DataConfig(source=str(path)))
    # 4 records, the 4th (record number 4) lacks an answer
    assert [e.question for e in report.examples] == [r["question"] for r in ROWS]
    assert [(b.line, b.reason[:9]) for b in report.bad_rows] == [(4, "no answer")]
    # a .txt file read as JSON Lines through an explicit "jsonl:" prefix
    txt = tmp_path / "d.txt"
    txt.write_text(json.dumps(ROWS[0]) + "\n")
    assert load_examples(DataConfig(source=f"jsonl:{txt}")).examples[0].question == "1+1?"


def test_parquet_and_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"question": ["a?", "b?", None], "answer": ["007", None, "3"], "level": [1, 2, 3]})
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    pq = load_examples(DataConfig(source=str(tmp_path / "d.parquet")))
    # record 2 has a null answer, record 3 a null question; parquet keeps the int column as int
    assert [(e.question, e.answer, e.metadata) for e in pq.examples] == [("a?", "007", {"level": 1})]
    assert [b.line for b in pq.bad_rows] == [2, 3]
    csv = load_examples(DataConfig(source=str(tmp_path / "d.csv")))
    # csv cells are strings: "007" keeps its zeros, level 1 reads as "1"; empty cells are missing
    assert [(e.question, e.answer, e.metadata) for e in csv.examples] == [("a?", "007", {"level": "1"})]
    assert [b.line for b in csv.bad_rows] == [2, 3]


def test_hf_disk_dataset_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"question": "1+1?", "answer": "2", "level": 1}, {"question": "3+4?", "answer": "7", "level": 2}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "plain"))
    report = load_examples(DataConfig(source=str(tmp_path / "plain")))
    assert [(e.question, e.answer, e.metadata) for e in report.examples] == [("1+1?", "2", {"level": 1}), ("3+4?", "7", {"level": 2})]
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"question": "t", "answer": "1"}]),
            "test": datasets.Dataset.from_list([{"question": "e1", "answer": "2"}, {"question": "e2", "answer": "3"}]),
        }
    )
    dd.save_to_disk(str(tmp_path / "dict"))
    cfg = DataConfig(source=str(tmp_path / "dict"), eval_source=str(tmp_path / "dict"), eval_size=1)
    assert [e.question for e in load_examples(cfg).examples] == ["t"]  # split="train"
    ev = load_examples(cfg, eval=True)  # eval_split="test", capped at eval_size=1
    assert [e.question for e in ev.examples] == ["e1"] and "kept the first 1 of 2" in ev.summary()
    with pytest.raises(DataError, match="no split 'dev'; splits: train, test"):
        load_examples(DataConfig(source=str(tmp_path / "dict"), split="dev"))


def test_resolve_errors(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match=r"unknown file type '.txt'; supported: .jsonl, .json, .parquet, .csv"):
        resolve_source(str(tmp_path / "d.txt"))
    with pytest.raises(DataError, match="no such file"):
        resolve_source(str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match="data.source is empty"):
        resolve_source("")
    assert resolve_source("reasoning_gym:leg_counting") == ("reasoning_gym", "leg_counting")
    with pytest.raises(DataError, match="eval_source is empty"):
        load_examples(DataConfig(source="reasoning_gym:leg_counting"), eval=True)


def test_reasoning_gym_rows():
    cfg = DataConfig(source="reasoning_gym:basic_arithmetic", size=4, seed=3, kwargs={"min_terms": 2, "max_terms": 2})
    report = load_examples(cfg)
    assert report.total == 4 and len(report.examples) == 4
    ex = report.examples[0]
    assert ex.verifier == "reasoning_gym" and ex.source == "reasoning_gym:basic_arithmetic"
    assert set(ex.metadata) == {"rg_dataset", "rg_kwargs", "rg_entry"}
    assert ex.metadata["rg_dataset"] == "basic_arithmetic" and ex.metadata["rg_kwargs"] == cfg.kwargs
    entry = ex.metadata["rg_entry"]
    assert entry["question"] == ex.question and entry["answer"] == ex.answer
    json.dumps(ex.metadata)  # JSON-able (reasoning_gym metadata holds tuples)
    # the same seed generates the same items; another seed other items
    again = load_examples(cfg).examples
    assert [e.question for e in again] == [e.question for e in report.examples]
    other = load_examples(DataConfig(source=cfg.source, size=4, seed=4, kwargs=cfg.kwargs)).examples
    assert [e.question for e in other] != [e.question for e in report.examples]


def test_reasoning_gym_eval_drops_train_overlap():
    # eval_seed == seed would regenerate the train items: eval size 8 / train size 5 share the first 5 items
    # (reasoning_gym item i depends only on (seed, i)), so 3 remain
    cfg = DataConfig(source="reasoning_gym:basic_arithmetic", size=5, seed=0,
                     eval_source="reasoning_gym:basic_arithmetic", eval_size=8, eval_seed=0)
    train = {e.question for e in load_examples(cfg).examples}
    ev = load_examples(cfg, eval=True)
    assert len(ev.examples) == 3 and not train & {e.question for e in ev.examples}
    assert "dropped 5 eval items" in ev.summary()


def test_reasoning_gym_unknown_name_and_bad_kwargs():
    with pytest.raises(DataError, match="did you mean 'leg_counting'"):
        load_examples(DataConfig(source="reasoning_gym:leg_countin", size=2))
    with pytest.raises(DataError, match="reasoning_gym:leg_counting with size=2"):
        load_examples(DataConfig(source="reasoning_gym:leg_counting", size=2, kwargs={"no_such_kwarg": 1}))


def test_to_jsonable():
    np = pytest.importorskip("numpy")
    value = {1: (np.int64(3), float("nan")), "s": {2, 1}, "a": np.array([1.5])}
    # int key -> "1", tuple -> list, numpy int -> int, NaN -> None, set -> sorted list, array -> list
    assert to_jsonable(value) == {"1": [3, None], "s": [1, 2], "a": [1.5]}


def test_reasoning_gym_task_without_reference_answer_is_kept():
    # rubiks_cube entries have answer None: the reasoning_gym verifier scores against the entry, so rows are kept
    report = load_examples(DataConfig(source="reasoning_gym:rubiks_cube", size=2))
    assert len(report.examples) == 2 and not report.bad_rows
    assert report.examples[0].answer is None and report.examples[0].metadata["rg_entry"]["answer"] is None


def test_utf8_bom_is_ignored(tmp_path):
    # files saved by some Windows editors start with a byte-order mark; the first row must still parse
    path = tmp_path / "bom.jsonl"
    path.write_bytes("\ufeff".encode() + json.dumps({"question": "é?", "answer": "1"}).encode() + b"\n")
    report = load_examples(DataConfig(source=str(path)))
    assert not report.bad_rows and report.examples[0].question == "é?"


def test_home_is_expanded_in_sources(tmp_path, monkeypatch):
    import json as _json

    from rlvr.config import DataConfig
    from rlvr.data import load_examples

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "d.jsonl").write_text(_json.dumps({"question": "1+1", "answer": "2"}) + "\n")
    assert len(load_examples(DataConfig(source="~/d.jsonl")).examples) == 1
    assert len(load_examples(DataConfig(source="jsonl:~/d.jsonl")).examples) == 1
