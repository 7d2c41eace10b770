"""vinaforge-collect: the community collection app (prompts, replies, rankings, moderation).

A deployable beside the vinaforge library: it imports vinaforge (text core, curation filters,
ratings, generation, chat formats), never the other way round, and hands data back to the
library only through its JSONL export (:mod:`vinaforge_collect.export`).
"""

__version__ = "0.1.0"
