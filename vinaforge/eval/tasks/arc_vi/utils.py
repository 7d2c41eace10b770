"""lm-eval hooks for the arc_vi tasks: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates) and vinaforge/eval/metrics.py (scoring).
"""

from vinaforge.eval import metrics
from vinaforge.eval.taskdocs import load_task_dataset


def load_arc_vi(**metadata):
    return load_task_dataset("arc_vi", **metadata)


process_results = metrics.process_results
