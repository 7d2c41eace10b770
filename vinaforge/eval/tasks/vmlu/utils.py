"""lm-eval hooks for the vmlu tasks: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates) and vinaforge/eval/metrics.py (the
scores lm-eval cannot compute itself).
"""

from vinaforge.eval import metrics
from vinaforge.eval.taskdocs import load_task_dataset


def load_vmlu_dev(**metadata):
    return load_task_dataset("vf_vmlu_dev", **metadata)


def load_vmlu_valid(**metadata):
    return load_task_dataset("vf_vmlu_valid", **metadata)


def load_vmlu_test(**metadata):
    return load_task_dataset("vf_vmlu_test", **metadata)


process_results_unlabeled = metrics.process_results_unlabeled
