"""lm-eval hooks for the hellaswag_vi tasks: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates); lm-eval scores them
(acc, acc_norm per character, acc_bytes per UTF-8 byte).
"""

from vinaforge.eval.taskdocs import load_task_dataset


def load_hellaswag_vi(**metadata):
    return load_task_dataset("vf_hellaswag_vi", **metadata)

