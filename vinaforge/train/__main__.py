"""``python -m vinaforge.train cpt ...``: the entry point for ``accelerate launch -m`` and ``torchrun -m``."""

from vinaforge.train.cli import app

app()
