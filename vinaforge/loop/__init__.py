"""One iteration of the community loop: sample → rank → reward model → RL → judge (``vinaforge loop``)."""
