"""A1111's prompt language, read without a model: emphasis, BREAK, prompt editing, alternation, network tags,
and token counts. Encoding on a diffusers pipeline is the local backend's (:mod:`sdkit.backends.local.encoding`).

Written from A1111's documented behaviour (its wiki, "Features"), not its code.
"""

from sdkit.prompts.attention import BREAK, BREAK_WEIGHT, parse_attention, plain_text
from sdkit.prompts.chunks import CHUNK_TOKENS, Chunk, chunk_fragments
from sdkit.prompts.networks import NetworkTag, lift_networks
from sdkit.prompts.schedule import ScheduleEntry, has_schedule, prompt_schedule
from sdkit.prompts.tokens import TokenCount, count_tokens, count_with

__all__ = [
    "BREAK",
    "BREAK_WEIGHT",
    "CHUNK_TOKENS",
    "Chunk",
    "NetworkTag",
    "ScheduleEntry",
    "TokenCount",
    "chunk_fragments",
    "count_tokens",
    "count_with",
    "has_schedule",
    "lift_networks",
    "parse_attention",
    "plain_text",
    "prompt_schedule",
]
