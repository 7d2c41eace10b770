"""Conversations and chat templates: the shared format of every stage that talks to a model.

No torch here: the collection app, data tools and the CLI import this package cheaply.
"""

from vinaforge.chat.conversation import (
    ROLES,
    Conversation,
    ConversationError,
    Preference,
    Rejected,
    validate_messages,
    validate_preference,
)
from vinaforge.chat.readers import (
    FORMATS,
    ChatFormatError,
    ReadResult,
    detect_format,
    expand_sources,
    iter_records,
    parse_record,
    read_conversations,
    read_preferences,
    read_prompts,
    read_records,
    write_jsonl,
)
from vinaforge.chat.templates import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    VBD_SYSTEM_PROMPT,
    ChatTemplate,
    Rendered,
    TemplateChoice,
    TemplateError,
    apply_chat_template,
    assistant_token_mask,
    ensure_chat_template,
    get_template,
    has_generation_markers,
    known_equivalent,
    prompt_text,
    render,
)

__all__ = [
    "DEFAULT_TEMPLATE", "FORMATS", "ROLES", "TEMPLATES", "VBD_SYSTEM_PROMPT", "ChatFormatError", "ChatTemplate",
    "Conversation", "ConversationError", "Preference", "ReadResult", "Rejected", "Rendered", "TemplateChoice",
    "TemplateError", "apply_chat_template", "assistant_token_mask", "detect_format", "ensure_chat_template", "expand_sources",
    "get_template", "has_generation_markers", "iter_records", "known_equivalent", "parse_record", "prompt_text",
    "read_conversations", "read_preferences", "read_prompts", "read_records", "render", "validate_messages",
    "validate_preference", "write_jsonl",
]  # fmt: skip
