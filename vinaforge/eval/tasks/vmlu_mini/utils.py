"""lm-eval hooks for the vmlu_mini task: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates) and vinaforge/eval/metrics.py (scoring).
"""

from vinaforge.eval import metrics
from vinaforge.eval.taskdocs import load_task_dataset


def load_vmlu_mini(**metadata):
    return load_task_dataset("vmlu_mini", **metadata)


process_results = metrics.process_results
