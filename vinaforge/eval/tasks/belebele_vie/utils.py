"""lm-eval hooks for the belebele_vie tasks: local files read and checked by vinaforge.

See vinaforge/eval/taskdocs.py (loading, templates) and vinaforge/eval/metrics.py (scoring).
"""

from vinaforge.eval import metrics
from vinaforge.eval.taskdocs import load_task_dataset


def load_belebele_vie(**metadata):
    return load_task_dataset("belebele_vie", **metadata)


process_results = metrics.process_results
