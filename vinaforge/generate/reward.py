"""Score conversations with a trained reward model: one ``score(conversations)`` call.

A reward model is a sequence-classification head (one output) over a causal LM, saved as an HF
folder with its tokenizer and chat template by ``vinaforge tune reward``. The same rendering as
TRL's ``RewardTrainer`` is used (the chat template, no extra special tokens), so scores at use time
match scores at training time. Self-preference judging, the community loop's ranking step and RL
rewards all call :meth:`RewardModel.score`.

Hand-written glue over ``transformers``.
"""

from __future__ import annotations

import math
from typing import Any


class RewardError(ValueError):
    """A reward model that cannot score (NaN output, a tokenizer that does not fit)."""


def _messages(item: Any) -> list[dict[str, str]]:
    if hasattr(item, "messages"):
        return item.messages
    if isinstance(item, list):
        return item
    raise TypeError(f"expected a conversation (message list), got {type(item).__name__}")


def _check_is_reward_model(source: str) -> None:
    """Refuse a causal LM: loading one as a sequence classifier would score with a random head."""
    from transformers import AutoConfig

    archs = getattr(AutoConfig.from_pretrained(source), "architectures", None) or []
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise RewardError(
            f"{source} is not a reward model (architectures: {', '.join(archs)}): loading it would give it a "
            "random score head; train one with `vinaforge tune reward` (or the `reward` stage) and use its `final` folder"
        )


class RewardModel:
    """A loaded reward model; ``score`` returns one float per conversation (higher is better)."""

    def __init__(self, model: Any, tokenizer: Any = None, *, device: str | None = None, batch_size: int = 8,
                 max_length: int | None = None) -> None:  # fmt: skip
        import torch

        if isinstance(model, str) or hasattr(model, "__fspath__"):
            from transformers import AutoModelForSequenceClassification

            from vinaforge.model.load import check_model_source, load_tokenizer

            check_model_source(str(model))
            self.source = str(model)
            _check_is_reward_model(self.source)
            self.model = AutoModelForSequenceClassification.from_pretrained(self.source, num_labels=1,
                                                                            dtype=torch.float32)  # fmt: skip
            self.tokenizer = tokenizer or load_tokenizer(self.source)
        else:
            if tokenizer is None:
                raise RewardError("an in-memory reward model needs its tokenizer")
            self.model, self.tokenizer, self.source = model, tokenizer, "in-memory reward model"
        if getattr(self.model.config, "num_labels", 1) != 1:
            raise RewardError(f"{self.source}: a reward model has one output, this one has {self.model.config.num_labels}")
        if not getattr(self.tokenizer, "chat_template", None):
            raise RewardError(f"{self.source}: the reward model's tokenizer has no chat template")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.unk_token or self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.batch_size = max(1, batch_size)
        self.max_length = max_length or getattr(self.model.config, "max_position_embeddings", None)

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-self.max_length :] if self.max_length else ids

    def score(self, conversations: list[Any]) -> list[float]:
        """Reward of each conversation (its last assistant reply in the context of the turns before)."""
        import torch

        encoded = [self.encode(_messages(c)) for c in conversations]
        pad = self.tokenizer.pad_token_id
        out: list[float] = []
        for start in range(0, len(encoded), self.batch_size):
            batch = encoded[start : start + self.batch_size]
            width = max(len(x) for x in batch)
            ids = torch.tensor([x + [pad] * (width - len(x)) for x in batch], device=self.device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch], device=self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, 0]
            out.extend(float(v) for v in logits.float().cpu())
        bad = [i for i, v in enumerate(out) if not math.isfinite(v)]
        if bad:
            raise RewardError(f"{self.source}: reward is NaN/inf for {len(bad)} of {len(out)} conversations "
                              f"(first: #{bad[0]})")  # fmt: skip
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "reward_model", "model": self.source}
