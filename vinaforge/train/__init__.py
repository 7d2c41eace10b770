"""Continued pretraining: packed data, mixtures and curricula, EEVE-style phases, exact resume."""

import logging

# bitsandbytes (8-bit AdamW, QLoRA) warns on import, on every CPU machine, that an optional Hub
# kernel package is absent; its own CPU kernels are used instead. Not actionable: keep it quiet.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
