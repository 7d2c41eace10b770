"""VMLU's 58 subjects, their four categories, and the ``id,answer`` submission file.

The subject table is VMLU's own (ZaloAI-JAIST, github.com/ZaloAI-Jaist/VMLU, README "Dataset
structure"): an id such as ``28-0001`` starts with the subject number. We checked the numbering
against the questions of ``dev.jsonl`` (01 elementary mathematics, 21 statistics, 39 civil law,
58 driving licence...). VMLU's README calls the third category "Humanity"; its leaderboard says
"Humanities", which we use. Hand-written: no library knows VMLU's categories.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from vinaforge.io import atomic_write_text

CATEGORIES = ("STEM", "Social Science", "Humanities", "Other")

# subject number -> (English subject name, category)
SUBJECTS: dict[str, tuple[str, str]] = {
    "01": ("Elementary Mathematics", "STEM"),
    "02": ("Elementary Science", "STEM"),
    "03": ("Middle School Biology", "STEM"),
    "04": ("Middle School Chemistry", "STEM"),
    "05": ("Middle School Mathematics", "STEM"),
    "06": ("Middle School Physics", "STEM"),
    "07": ("High School Biology", "STEM"),
    "08": ("High School Chemistry", "STEM"),
    "09": ("High School Mathematics", "STEM"),
    "10": ("High School Physics", "STEM"),
    "11": ("Applied Informatics", "STEM"),
    "12": ("Computer Architecture", "STEM"),
    "13": ("Computer Network", "STEM"),
    "14": ("Discrete Mathematics", "STEM"),
    "15": ("Electrical Engineering", "STEM"),
    "16": ("Introduction to Chemistry", "STEM"),
    "17": ("Introduction to Physics", "STEM"),
    "18": ("Introduction to Programming", "STEM"),
    "19": ("Metrology Engineer", "STEM"),
    "20": ("Operating System", "STEM"),
    "21": ("Statistics and Probability", "STEM"),
    "22": ("Middle School Civil Education", "Social Science"),
    "23": ("Middle School Geography", "Social Science"),
    "24": ("High School Civil Education", "Social Science"),
    "25": ("High School Geography", "Social Science"),
    "26": ("Business Administration", "Social Science"),
    "27": ("Ho Chi Minh Ideology", "Social Science"),
    "28": ("Macroeconomics", "Social Science"),
    "29": ("Microeconomics", "Social Science"),
    "30": ("Principles of Marxism and Leninism", "Social Science"),
    "31": ("Sociology", "Social Science"),
    "32": ("Elementary History", "Humanities"),
    "33": ("Middle School History", "Humanities"),
    "34": ("Middle School Literature", "Humanities"),
    "35": ("High School History", "Humanities"),
    "36": ("High School Literature", "Humanities"),
    "37": ("Administrative Law", "Humanities"),
    "38": ("Business Law", "Humanities"),
    "39": ("Civil Law", "Humanities"),
    "40": ("Criminal Law", "Humanities"),
    "41": ("Economic Law", "Humanities"),
    "42": ("Education Law", "Humanities"),
    "43": ("History of World Civilization", "Humanities"),
    "44": ("Ideological and Moral Cultivation", "Humanities"),
    "45": ("Introduction to Laws", "Humanities"),
    "46": ("Introduction to Vietnam Culture", "Humanities"),
    "47": ("Logic", "Humanities"),
    "48": ("Revolutionary Policy of the Vietnamese Communist Party", "Humanities"),
    "49": ("Vietnamese Language and Literature", "Humanities"),
    "50": ("Accountant", "Other"),
    "51": ("Clinical Pharmacology", "Other"),
    "52": ("Environmental Engineering", "Other"),
    "53": ("Internal Basic Medicine", "Other"),
    "54": ("Preschool Pedagogy", "Other"),
    "55": ("Tax Accountant", "Other"),
    "56": ("Tax Civil Servant", "Other"),
    "57": ("Civil Servant", "Other"),
    "58": ("Driving License Certificate", "Other"),
}


def subject_of(question_id: str) -> str | None:
    """The two-digit subject number of an id like ``28-0001``, or None if it has no such prefix."""
    head = str(question_id).split("-", 1)[0]
    return head if head in SUBJECTS else None


def category_of(question_id: str) -> str | None:
    """VMLU category of a question id, or None when the id does not name a known subject."""
    subject = subject_of(question_id)
    return SUBJECTS[subject][1] if subject else None


def submission_csv(rows: Iterable[tuple[str, str]]) -> str:
    """The ``id,answer`` CSV that vmlu.ai accepts, as text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "answer"])
    for qid, letter in rows:
        writer.writerow([qid, letter])
    return buf.getvalue()


def write_submission(path: str | Path, rows: Iterable[tuple[str, str]]) -> Path:
    return atomic_write_text(path, submission_csv(rows))
