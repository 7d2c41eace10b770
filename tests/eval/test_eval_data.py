"""Benchmark files: every public format reads, and bad records are named with file and line."""

from __future__ import annotations

import json

import pytest

from vinaforge.eval import data, taskdocs, templates, vmlu
from vinaforge.eval.data import TaskDataError


def _write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


GOOD = {"id": "01-0001", "question": "1 + 1 = ?", "choices": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "B"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "question"}, "record has no field 'question'"),
        ({**GOOD, "answer": "E"}, "answer 'E' is not one of the choices A-D"),
        ({**GOOD, "answer": "AB"}, "answer 'AB' is not one of the choices A-D"),
        ({**GOOD, "choices": ["A. 1", "C. 2"]}, "choice 2 is labelled 'C', expected 'B'"),
        ({**GOOD, "choices": "A. 1"}, "field 'choices' should be a list of texts"),
        ({k: v for k, v in GOOD.items() if k != "answer"}, "record has no field 'answer'"),
        ({**GOOD, "id": "01-0002"} | {"id": "01-0001"}, "duplicate id '01-0001' \\(first at line 2\\)"),
    ],
)
def test_first_bad_vmlu_record_is_named_with_file_and_line(tmp_path, bad, message):
    path = _write_jsonl(tmp_path / "vmlu" / "dev.jsonl", [{**GOOD, "id": "00-0001"}, GOOD, bad, {}])
    with pytest.raises(TaskDataError, match=f"{path}:3: {message}"):
        data.load_split("vmlu", "dev", tmp_path)


def test_empty_split_and_missing_file(tmp_path):
    path = tmp_path / "vmlu" / "dev.jsonl"
    path.parent.mkdir()
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=f"{path}: the split is empty"):
        data.load_split("vmlu", "dev", tmp_path)
    with pytest.raises(TaskDataError, match="arc_vi: no test file; expected .*m_arc_vi_test.json"):
        data.load_split("arc_vi", "test", tmp_path)
    with pytest.raises(TaskDataError, match="data dir .*nowhere does not exist"):
        data.resolve_data_dir(tmp_path / "nowhere")


def test_invalid_json_line(tmp_path):
    path = tmp_path / "vmlu" / "dev.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(GOOD) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=f"{path}:2: not valid JSON"):
        data.load_split("vmlu", "dev", tmp_path)


def test_okapi_json_array_errors_name_the_line_of_the_record(tmp_path):
    recs = [
        {"id": "a", "instruction": "Câu một?", "option_a": "x", "option_b": "y", "answer": "A"},
        {
            "id": "b",
            "instruction": "Câu hai?",
            "option_a": "x",
            "option_b": "y",
            "option_c": "z",
            "answer": "D",
        },
    ]
    path = tmp_path / "okapi_vi" / "m_arc_vi_test.json"
    path.parent.mkdir()
    path.write_text(json.dumps(recs, ensure_ascii=False, indent=2), encoding="utf-8")
    line = path.read_text(encoding="utf-8").splitlines().index("  {", 2) + 1  # the second record's "{"
    with pytest.raises(TaskDataError, match=f"{path}:{line}: answer 'D' is not one of the choices A-C"):
        data.load_split("arc_vi", "test", tmp_path)
    recs[1] = {"id": "b", "instruction": "Câu hai?", "option_a": "x", "option_c": "z", "answer": "A"}
    path.write_text(json.dumps(recs, ensure_ascii=False, indent=2), encoding="utf-8")
    with pytest.raises(TaskDataError, match="option_c is given but option_b is missing"):
        data.load_split("arc_vi", "test", tmp_path)


@pytest.mark.parametrize(
    ("folder", "name", "record", "message"),
    [
        (
            "belebele",
            "vie_Latn.jsonl",
            {
                "flores_passage": "p",
                "question": "q",
                "mc_answer1": "a",
                "mc_answer2": "b",
                "mc_answer3": "c",
                "mc_answer4": "d",
                "correct_answer_num": "5",
            },
            "'correct_answer_num' = '5' is outside the 4 choices",
        ),
        (
            "xcopa",
            "test.vi.jsonl",
            {"premise": "p.", "choice1": "a", "choice2": "b", "question": "why", "label": 0},
            "'question' should be 'cause' or 'effect'",
        ),
        ("xnli", "vi_test.jsonl", {"premise": "p", "hypothesis": "h"}, "record has no field 'label'"),
    ],
)
def test_other_formats_name_the_bad_record(tmp_path, folder, name, record, message):
    path = _write_jsonl(tmp_path / folder / name, [record])
    bench = {"belebele": "belebele_vie", "xcopa": "xcopa_vi", "xnli": "xnli_vi"}[folder]
    with pytest.raises(TaskDataError, match=f"{path}:1: .*{message}"):
        data.load_split(bench, "test", tmp_path)


def test_truthfulqa_reads_all_three_public_shapes(fixtures_dir):
    items = data.load_split("truthfulqa_vi", "validation", fixtures_dir)
    assert [it["mc1_labels"] for it in items] == [[1, 0, 0], [1, 0], [1, 0]]
    assert [sum(it["mc2_labels"]) for it in items] == [2, 1, 2]


def test_xnli_tsv_keeps_only_vietnamese_rows(fixtures_dir):
    items = data.load_split("xnli_vi", "test", fixtures_dir)
    assert [it["gold"] for it in items] == [0, 1, 2]
    assert "ngủ" in items[0]["premise"]


def test_templates_vietnamese_and_english(fixtures_dir):
    vi = taskdocs.load_task_docs("vmlu_dev", "dev", fixtures_dir, "vi")[0]
    en = taskdocs.load_task_docs("vmlu_dev", "dev", fixtures_dir, "en")[0]
    assert vi["query"].startswith("Câu hỏi: Kết quả") and vi["query"].endswith("\nD. 24\nĐáp án:")
    assert en["query"].startswith("Question: Kết quả") and en["query"].endswith("Answer:")
    assert vi["choices"] == ["A", "B", "C", "D"] and vi["gold"] == 1
    arc = taskdocs.load_task_docs("arc_vi", "test", fixtures_dir, "vi")[0]
    assert arc["query"] == "Câu hỏi: Động vật nào sau đây là động vật có vú?\nTrả lời:"
    assert arc["choices"][3] == "Cá heo"
    copa = taskdocs.load_task_docs("xcopa_vi", "test", fixtures_dir, "vi")[1]
    assert copa["query"] == "Sàn nhà bị ướt bởi vì" and copa["choices"][1] == "có người làm đổ nước."
    with pytest.raises(ValueError, match="template language 'fr'"):
        templates.render("vmlu", data.load_split("vmlu", "dev", fixtures_dir)[0], "fr")


def test_vmlu_categories_follow_the_official_table():
    assert len(vmlu.SUBJECTS) == 58
    counts = {c: sum(1 for _, cat in vmlu.SUBJECTS.values() if cat == c) for c in vmlu.CATEGORIES}
    assert counts == {"STEM": 21, "Social Science": 10, "Humanities": 18, "Other": 9}
    assert vmlu.category_of("21-0001") == "STEM"
    assert vmlu.category_of("28-0001") == "Social Science"
    assert vmlu.category_of("39-0001") == "Humanities"
    assert vmlu.category_of("58-0001") == "Other"
    assert vmlu.category_of("99-0001") is None and vmlu.category_of("abc") is None


@pytest.mark.shared_data
def test_real_benchmark_files_read_cleanly(benchmarks_dir):
    dev = data.load_split("vmlu", "dev", benchmarks_dir)
    test = data.load_split("vmlu", "test", benchmarks_dir)
    assert (len(dev), len(test)) == (303, 9833)
    assert all(it["gold"] == -1 for it in test) and all(it["category"] for it in dev + test)
    assert len(data.load_split("arc_vi", "test", benchmarks_dir)) == 1170
    assert len(data.load_split("arc_vi", "train", benchmarks_dir)) == 1118
    assert len(data.load_split("mmlu_vi", "val", benchmarks_dir)) == 1456
    assert len(data.load_split("mmlu_vi", "dev", benchmarks_dir)) == 271
