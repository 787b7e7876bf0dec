"""``sdkit expand IDEA``: detailed SD prompts for a short idea from a chat model (prompt ideas through Chat),
and the chat flags ``sdkit sweep`` takes for a ``prompt_expand=N`` axis."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_chat_args", "add_expand_parser", "chat_options"]


def add_chat_args(p: argparse.ArgumentParser, *, model_flag: str = "--chat-model") -> None:
    from sdkit.backends.relay.expand import DEFAULT_CHAT_MODEL

    chat = p.add_argument_group(
        "Prompt ideas", "The chat model that writes prompts (an axis prompt_expand=N; key from SDKIT_API_KEY)."
    )
    chat.add_argument(
        model_flag, dest="chat_model", default=None, metavar="MODEL", help=f"chat model (default {DEFAULT_CHAT_MODEL})"
    )
    chat.add_argument("--chat-base-url", default=None, metavar="URL", help="its API (default: $SDKIT_BASE_URL)")
    chat.add_argument("--system-prompt", default=None, metavar="TEXT", help="replaces sdkit's system prompt")
    chat.add_argument("--temperature", type=float, default=None, metavar="T", help="sampling temperature (0–2)")


def chat_options(args: argparse.Namespace) -> dict:
    return {
        "model": args.chat_model,
        "base_url": args.chat_base_url,
        "system_prompt": args.system_prompt,
        "temperature": args.temperature,
    }


def add_expand_parser(sub) -> None:
    p = sub.add_parser(
        "expand",
        help="turn a short idea into detailed prompts with a chat model",
        description="Ask a chat model (POST /v1/chat/completions) for N detailed Stable Diffusion prompts "
        "from a short idea; one prompt a line (or JSON with the model, system prompt and raw replies).",
    )
    p.add_argument("idea", help='a short idea, e.g. "a lighthouse"')
    p.add_argument("-n", type=int, default=1, metavar="N", help="how many prompts (default 1)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.add_argument("--cache", default=None, metavar="DIR", help="keep replies here; asking again costs nothing")
    add_chat_args(p, model_flag="--model")
    p.set_defaults(func=_cmd_expand)


def _cmd_expand(args: argparse.Namespace) -> int:
    from sdkit.backends.relay.expand import expand_prompt

    options = {k: v for k, v in chat_options(args).items() if v is not None}
    expansion = expand_prompt(args.idea, n=args.n, cache=args.cache, **options)
    if args.json:
        print(json.dumps(expansion.to_dict(), indent=2, ensure_ascii=False))
    else:
        for prompt in expansion.prompts:
            print(prompt)
    print(f"expand: {len(expansion.prompts)} prompt(s) from {expansion.model} at {expansion.base_url}", file=sys.stderr)
    return 0
