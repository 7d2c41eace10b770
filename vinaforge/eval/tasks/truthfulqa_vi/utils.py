"""lm-eval hooks for the truthfulqa_vi tasks: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates) and vinaforge/eval/metrics.py (the
scores lm-eval cannot compute itself).
"""

from vinaforge.eval import metrics
from vinaforge.eval.taskdocs import load_task_dataset


def load_truthfulqa_vi_mc1(**metadata):
    return load_task_dataset("vf_truthfulqa_vi_mc1", **metadata)


def load_truthfulqa_vi_mc2(**metadata):
    return load_task_dataset("vf_truthfulqa_vi_mc2", **metadata)


process_results_mc1 = metrics.process_results_mc1

process_results_mc2 = metrics.process_results_mc2
