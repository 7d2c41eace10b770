"""lm-eval hooks for the belebele_vie tasks: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates); lm-eval scores them
(acc, acc_norm per character, acc_bytes per UTF-8 byte).
"""

from vinaforge.eval.taskdocs import load_task_dataset


def load_belebele_vie(**metadata):
    return load_task_dataset("vf_belebele_vie", **metadata)

