"""A1111's prompt language on a diffusers pipeline: weights, long prompts, BREAK, editing, CLIP skip, embeddings.

The parsing is pure (:mod:`sdkit.prompts`); this module turns its output into the tensors a diffusers
pipeline takes (``prompt_embeds`` and, for SDXL, ``pooled_prompt_embeds``), for SD 1.x/2.x (one text encoder)
and SDXL (two, features side by side, the pooled embedding from the second).

- Each 75-token chunk is encoded alone between its start and end tokens and padded as the model's tokenizer
  pads; chunks are joined along the sequence; every image of a call and its negative prompt are padded to the
  same number of chunks with the empty prompt's chunk.
- A weight multiplies its tokens' hidden states; the chunk is then rescaled so its mean is the unweighted mean.
- Prompt editing and alternation: the conditioning is swapped between steps (``callback_on_step_end``).
- CLIP skip ``n`` (A1111's count, 1 = the last layer) reads the hidden state ``n - 1`` layers before the last; SD
  1.x/2.x then apply the final layer norm (as diffusers does), SDXL reads from its penultimate layer as always.
- A prompt with none of this, within 75 tokens and without CLIP skip, goes to the pipeline as text, exactly as
  before; a weight of 1.0 anywhere gives the same tensors as the text would.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdkit.errors import ModelError, ValidationError
from sdkit.prompts.attention import parse_attention
from sdkit.prompts.chunks import CHUNK_TOKENS, Chunk, chunk_fragments
from sdkit.prompts.schedule import prompt_schedule
from sdkit.prompts.syntax import is_plain_text
from sdkit.prompts.tokens import comma_id, token_pieces

__all__ = ["Conditioning", "EmbeddingFolder", "PromptEncoder", "TextOnlyEncoder", "encoder_for"]

EMBEDDING_SUFFIXES = (".pt", ".safetensors", ".bin")


# --- textual inversion -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embedding:
    """A textual-inversion embedding: its vectors per text encoder (``""`` for a single-encoder file)."""

    name: str
    path: Path
    sha256: str
    vectors: dict[str, Any]

    @property
    def short_hash(self) -> str:
        """A1111's short hash (first 12 hex of the file's sha256), as written in ``TI hashes``."""
        return self.sha256[:12]


class EmbeddingFolder:
    """Textual-inversion files in a folder, found by file name (``bad-hands.pt`` is the word ``bad-hands``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ValidationError("embeddings", str(folder), "is not a folder of textual-inversion embeddings")
        self._names: dict[str, Path] | None = None
        self._stamp: float | None = None
        self._loaded: dict[str, Embedding] = {}

    def names(self) -> dict[str, Path]:
        stamp = self.folder.stat().st_mtime
        if self._names is None or stamp != self._stamp:
            found: dict[str, Path] = {}
            for path in sorted(self.folder.rglob("*")):
                if path.suffix.lower() in EMBEDDING_SUFFIXES and path.is_file():
                    found.setdefault(path.stem, path)
            self._names, self._stamp = found, stamp
        return self._names

    def words_in(self, text: str) -> list[str]:
        """The embeddings whose name appears in ``text`` as a word of its own, in order of appearance."""
        names = self.names()
        if not names:
            return []
        found = _word_pattern(tuple(sorted(names, key=len, reverse=True))).findall(text)
        return list(dict.fromkeys(found))

    def load(self, name: str) -> Embedding:
        if name not in self._loaded:
            self._loaded[name] = read_embedding(name, self.names()[name])
        return self._loaded[name]

    def __repr__(self) -> str:
        return f"EmbeddingFolder({str(self.folder)!r})"


_PATTERNS: dict[tuple[str, ...], re.Pattern] = {}


def _word_pattern(names: tuple[str, ...]) -> re.Pattern:
    if names not in _PATTERNS:
        _PATTERNS[names] = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])")
    return _PATTERNS[names]


def read_embedding(name: str, path: Path) -> Embedding:
    """Read an A1111 (``string_to_param`` / ``emb_params``), SDXL (``clip_l`` + ``clip_g``) or diffusers
    (``{token: tensor}``) embedding file; tensors only (``torch.load(weights_only=True)``)."""
    import torch

    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load

            state = load(data)
        else:
            import io

            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"embedding {name!r} ({path}): cannot be read: {exc}") from None
    vectors: dict[str, Any] = {}
    if isinstance(state, dict) and "string_to_param" in state:
        params = state["string_to_param"]
        vectors[""] = next(iter(params.values()))
    elif isinstance(state, dict) and ("clip_l" in state or "clip_g" in state):
        vectors = {k: state[k] for k in ("clip_l", "clip_g") if k in state}
    elif isinstance(state, dict) and "emb_params" in state:
        vectors[""] = state["emb_params"]
    elif isinstance(state, dict) and len(state) == 1 and torch.is_tensor(next(iter(state.values()))):
        vectors[""] = next(iter(state.values()))
    else:
        raise ModelError(f"embedding {name!r} ({path}): not a textual-inversion file sdkit knows")
    for key, tensor in list(vectors.items()):
        if not torch.is_tensor(tensor):
            raise ModelError(f"embedding {name!r} ({path}): {key or 'vectors'} is not a tensor")
        vectors[key] = tensor.detach().float().reshape(-1, tensor.shape[-1])
    return Embedding(name, path, sha, vectors)


# --- the encoder -----------------------------------------------------------------------------------------


@dataclass
class _Encoder:
    tokenizer: Any
    text_encoder: Any
    key: str  # which vectors of an SDXL embedding: "clip_l" or "clip_g"
    comma_id: int | None
    added: dict[str, tuple[int, ...]] = field(default_factory=dict)  # embedding name -> its token ids


@dataclass
class Conditioning:
    """What one pipeline call needs: keyword arguments, a per-step callback when the prompt changes between
    steps, and what to record (``TI hashes``)."""

    kwargs: dict[str, Any]
    callback: Callable[[Any, int, Any, dict], dict] | None = None
    embeddings: dict[str, str] = field(default_factory=dict)  # name -> short hash
    chunks: int = 1
    make_callback: Callable[[], Callable] | None = None  # a fresh per-step swapper (for a second pass)


class PromptEncoder:
    """Encodes prompts for one loaded pipeline; keeps the embeddings it has added to its text encoders."""

    def __init__(self, pipe: Any, embeddings: EmbeddingFolder | None = None) -> None:
        self.pipe = pipe
        self.embeddings = embeddings
        self.sdxl = getattr(pipe, "text_encoder_2", None) is not None
        pairs = [("tokenizer", "text_encoder", "clip_l"), ("tokenizer_2", "text_encoder_2", "clip_g")]
        self.encoders = []
        for tok_name, te_name, key in pairs:
            tokenizer, text_encoder = getattr(pipe, tok_name, None), getattr(pipe, te_name, None)
            if tokenizer is None or text_encoder is None:
                continue
            self.encoders.append(_Encoder(tokenizer, text_encoder, key, comma_id(tokenizer)))
        if not self.encoders:
            raise ModelError(f"{type(pipe).__name__} has no CLIP text encoder for sdkit's prompt language")
        self.layers = min(e.text_encoder.config.num_hidden_layers for e in self.encoders)

    # -- tokens --

    def _embedding_words(self, texts: Sequence[str]) -> list[str]:
        if self.embeddings is None:
            return []
        return list(dict.fromkeys(w for t in texts for w in self.embeddings.words_in(t)))

    def _add_embedding(self, name: str) -> Embedding:
        import torch

        assert self.embeddings is not None
        emb = self.embeddings.load(name)
        for enc in self.encoders:
            if name in enc.added:
                continue
            vectors = emb.vectors.get(enc.key if self.sdxl else "", emb.vectors.get(""))
            if vectors is None and not self.sdxl:
                vectors = emb.vectors.get("clip_l")
            if vectors is None:
                raise ValidationError("embedding", name, f"has no vectors for this model's {enc.key} encoder")
            table = enc.text_encoder.get_input_embeddings()
            width = table.weight.shape[1]
            if vectors.shape[1] != width:
                raise ValidationError(
                    "embedding", name, f"is for a text encoder {vectors.shape[1]} wide; this model's is {width}"
                )
            start = table.weight.shape[0]
            enc.text_encoder.resize_token_embeddings(start + vectors.shape[0])
            with torch.no_grad():
                table = enc.text_encoder.get_input_embeddings()
                table.weight[start:] = vectors.to(table.weight.dtype)
            enc.added[name] = tuple(range(start, start + vectors.shape[0]))
        return emb

    def _tokenize(self, enc: _Encoder, names: list[str]) -> Callable[[str], list[list[int]]]:
        pattern = _word_pattern(tuple(sorted(names, key=len, reverse=True))) if names else None

        def tokenize(text: str) -> list[list[int]]:
            pieces: list[list[int]] = []
            parts = pattern.split(text) if pattern else [text]
            for i, part in enumerate(parts):
                if i % 2:  # an embedding's name
                    pieces.append(list(enc.added[part]))
                else:
                    pieces.extend(token_pieces(enc.tokenizer, part))
            return pieces

        return tokenize

    def chunks(self, text: str, enc: _Encoder | None = None, names: list[str] | None = None) -> tuple[Chunk, ...]:
        enc = enc or self.encoders[0]
        names = self._embedding_words([text]) if names is None else names
        for name in names:
            self._add_embedding(name)
        return chunk_fragments(parse_attention(text), self._tokenize(enc, names), comma_id=enc.comma_id)

    def token_count(self, text: str) -> tuple[int, int]:
        """(tokens, chunks) of ``text`` as the first text encoder reads it."""
        chunks = self.chunks(text)
        return sum(len(c.tokens) for c in chunks), len(chunks)

    def chunk_count(self, texts: Sequence[str], steps: int) -> int:
        """The most chunks any of ``texts`` needs at any step (1 for text the pipeline takes as it is)."""
        counts = [1]
        for text in texts:
            if self.is_plain(text):
                continue
            for entry in prompt_schedule(text, steps):
                counts.append(len(self.chunks(entry.text)))
        return max(counts)

    def is_plain(self, text: str) -> bool:
        """Text the pipeline can take as it is: no syntax, no embedding, within one chunk."""
        if not is_plain_text(text) or self._embedding_words([text]):
            return False
        return all(
            len(e.tokenizer(text, truncation=False, verbose=False).input_ids) <= CHUNK_TOKENS + 2 for e in self.encoders
        )

    # -- tensors --

    def _ids(self, enc: _Encoder, chunks: Sequence[Chunk], count: int) -> tuple[list, list, list]:
        tok = enc.tokenizer
        bos, eos = tok.bos_token_id, tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        empty = Chunk((), ())
        rows, weights, masks = [], [], []
        for chunk in list(chunks) + [empty] * (count - len(chunks)):
            fill = CHUNK_TOKENS - len(chunk.tokens)
            rows.append([bos, *chunk.tokens, eos] + [pad] * fill)
            weights.append([1.0, *chunk.weights, 1.0] + [1.0] * fill)
            masks.append([1] * (len(chunk.tokens) + 2) + [0] * fill)
        return rows, weights, masks

    def _encode(self, texts: Sequence[str], count: int, clip_skip: int | None, names: list[str]) -> tuple[Any, Any]:
        """(embeds [B, count*77, D], pooled [B, P] or None) for ``texts``."""
        import torch

        outs, pooled = [], None
        for enc in self.encoders:
            rows, weights, masks = [], [], []
            for text in texts:
                r, w, m = self._ids(enc, self.chunks(text, enc, names), count)
                rows += r
                weights += w
                masks += m
            te = enc.text_encoder
            device = te.device
            ids = torch.tensor(rows, dtype=torch.long, device=device)
            mask = None
            if getattr(te.config, "use_attention_mask", False):
                mask = torch.tensor(masks, dtype=torch.long, device=device)
            if self.sdxl:
                out = te(ids, output_hidden_states=True)
                if pooled is None and out[0].ndim == 2:
                    pooled = out[0].reshape(len(texts), count, -1)[:, 0]
                hidden = out.hidden_states[-((clip_skip or 1) + 1)]
            elif not clip_skip or clip_skip == 1:
                hidden = te(ids, attention_mask=mask)[0]
            else:
                out = te(ids, attention_mask=mask, output_hidden_states=True)
                hidden = getattr(te, "text_model", te).final_layer_norm(out.hidden_states[-clip_skip])
            w = torch.tensor(weights, dtype=hidden.dtype, device=hidden.device)
            if bool((w != 1).any()):
                hidden = _weighted(hidden, w)
            outs.append(hidden.reshape(len(texts), count * hidden.shape[1], hidden.shape[2]))
        embeds = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return embeds, pooled

    def conditioning(
        self,
        prompts: Sequence[str],
        negatives: Sequence[str],
        *,
        steps: int,
        clip_skip: int | None = None,
        zero_negative: bool = False,
    ) -> Conditioning:
        """The pipeline keyword arguments for one call (``prompts[i]`` and ``negatives[i]`` are image ``i``'s).

        ``zero_negative``: SDXL's all-zero unconditional embedding for empty negative prompts (what the
        pipeline does for ``negative_prompt=None``)."""
        import torch

        if clip_skip is not None and clip_skip > self.layers:
            raise ValidationError(
                "clip_skip", clip_skip, f"is more than this model's {self.layers} text-encoder layers"
            )
        skip = clip_skip if clip_skip and clip_skip > 1 else None
        names = self._embedding_words([*prompts, *negatives])
        if skip is None and not names and all(self.is_plain(t) for t in (*prompts, *negatives)):
            return Conditioning(
                {"prompt": list(prompts), "negative_prompt": None if zero_negative else list(negatives)}
            )
        for name in names:
            self._add_embedding(name)
        pos_sched = [prompt_schedule(t, steps) for t in prompts]
        neg_sched = [prompt_schedule(t, steps) for t in negatives]
        points = sorted({e.end for s in (*pos_sched, *neg_sched) for e in s})

        def at(schedule: tuple, step: int) -> str:
            return next(e.text for e in schedule if step <= e.end)

        texts = {(tuple(at(s, p) for s in pos_sched), tuple(at(s, p) for s in neg_sched)) for p in points}
        count = max(len(self.chunks(t, self.encoders[0], names)) for pos, neg in texts for t in (*pos, *neg))
        cache: dict[tuple, tuple] = {}

        def encode(key: tuple) -> tuple:
            if key not in cache:
                pos, neg = key
                p_emb, p_pool = self._encode(pos, count, skip, names)
                if zero_negative:
                    n_emb = torch.zeros_like(p_emb)
                    n_pool = torch.zeros_like(p_pool) if p_pool is not None else None
                else:
                    n_emb, n_pool = self._encode(neg, count, skip, names)
                cache[key] = (p_emb, n_emb, p_pool, n_pool)
            return cache[key]

        by_point = [
            (p, encode((tuple(at(s, p) for s in pos_sched), tuple(at(s, p) for s in neg_sched)))) for p in points
        ]
        first = by_point[0][1]
        kwargs: dict[str, Any] = {"prompt_embeds": first[0], "negative_prompt_embeds": first[1]}
        if self.sdxl:
            kwargs["pooled_prompt_embeds"] = first[2]
            kwargs["negative_pooled_prompt_embeds"] = first[3]
        used = {n: self.embeddings.load(n).short_hash for n in names} if self.embeddings else {}
        if len(by_point) == 1:
            return Conditioning(kwargs, None, used, count)
        return Conditioning(
            kwargs, _swapper(by_point, steps, self.sdxl), used, count, lambda: _swapper(by_point, steps, self.sdxl)
        )


def _weighted(hidden: Any, weights: Any) -> Any:
    """Multiply each token's hidden state by its weight, then restore each chunk's mean."""
    before = hidden.mean(dim=(1, 2), keepdim=True)
    hidden = hidden * weights.unsqueeze(-1)
    after = hidden.mean(dim=(1, 2), keepdim=True)
    return hidden * (before / after)


def _swapper(by_point: list[tuple[int, tuple]], steps: int, sdxl: bool) -> Callable:
    """A ``callback_on_step_end`` that hands the pipeline the next step's conditioning when it changes."""
    import torch

    state = {"current": 0}

    def index_for(step: int) -> int:
        return next(i for i, (end, _) in enumerate(by_point) if step <= end)

    def callback(pipe: Any, i: int, _t: Any, tensors: dict) -> dict:
        total = getattr(pipe, "num_timesteps", None) or steps
        next_step = min(steps, (i + 1) * steps // total + 1)
        index = index_for(next_step)
        if index == state["current"]:
            return tensors
        state["current"] = index
        p_emb, n_emb, p_pool, n_pool = by_point[index][1]
        cfg = bool(getattr(pipe, "do_classifier_free_guidance", False))
        tensors["prompt_embeds"] = torch.cat([n_emb, p_emb]) if cfg else p_emb
        if sdxl:
            tensors["add_text_embeds"] = torch.cat([n_pool, p_pool]) if cfg else p_pool
        return tensors

    return callback


class TextOnlyEncoder:
    """For a pipeline without CLIP text encoders (sdkit's language needs them): prompts go to it as text,
    and a prompt that uses the language, or ``clip_skip``, is refused naming the pipeline."""

    def __init__(self, pipe: Any) -> None:
        self.name = type(pipe).__name__

    def chunk_count(self, texts: Sequence[str], steps: int) -> int:
        return 1

    def conditioning(
        self,
        prompts: Sequence[str],
        negatives: Sequence[str],
        *,
        steps: int,
        clip_skip: int | None = None,
        zero_negative: bool = False,
    ) -> Conditioning:
        if clip_skip is not None and clip_skip > 1:
            raise ValidationError("clip_skip", clip_skip, f"needs a CLIP text encoder, which {self.name} has not")
        for text in (*prompts, *negatives):
            if not is_plain_text(text):
                raise ValidationError(
                    "prompt", text, f"uses A1111's prompt language, which needs a CLIP text encoder ({self.name})"
                )
        return Conditioning({"prompt": list(prompts), "negative_prompt": list(negatives) if any(negatives) else None})


def encoder_for(pipe: Any, embeddings: EmbeddingFolder | None) -> PromptEncoder | TextOnlyEncoder:
    """The prompt encoder for ``pipe``: A1111's language on CLIP text encoders, plain text otherwise."""
    try:
        return PromptEncoder(pipe, embeddings)
    except ModelError:
        return TextOnlyEncoder(pipe)
