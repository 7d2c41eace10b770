"""Continued pretraining: packed data, mixtures and curricula, EEVE-style phases, exact resume."""
