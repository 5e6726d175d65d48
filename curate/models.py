"""CLIP models: open_clip architectures with a pretrained tag (model hub cache) or a local checkpoint file.

Loading never hangs on a network: a pretrained tag is looked up in the local cache first; if it is not there
and `HF_HUB_OFFLINE` is set (or the hub cannot be reached within a few seconds) the load fails at once with a
message that says how to provide a local checkpoint. Two small architectures are registered here:
`curate-tiny` (tests: random weights saved to a file, exercising the real loading path) and `curate-small`
(what `curate train-clip` trains on a lake when no pretrained CLIP is available).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import CurateError

DEFAULT_ARCH = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
"""ViT-B/32 (LAION-2B): the most used open CLIP, ~88M parameters, ~4.4 GFLOPs per 224px image, so a laptop CPU
embeds tens of images per second; larger ViTs are 4-20x slower for a small gain on coarse robot-scene retrieval."""

TINY_ARCH = "curate-tiny"
SMALL_ARCH = "curate-small"
_CONFIGS: dict[str, dict[str, Any]] = {
    TINY_ARCH: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    SMALL_ARCH: {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 48, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
}


class ModelUnavailableError(CurateError):
    """CLIP weights cannot be loaded (not cached, offline, unknown tag, or a bad checkpoint file)."""

    exit_code = 8


def register_configs() -> None:
    """Register the curate-* architectures with open_clip (idempotent)."""
    import open_clip

    if all(name in open_clip.list_models() for name in _CONFIGS):
        return
    # open_clip reads configs from files into its registry once; the folder can go right after (a later rescan
    # skips a missing folder), so no process leaves a directory behind in /tmp.
    with tempfile.TemporaryDirectory(prefix="curate-clip-configs-") as tmp:
        folder = Path(tmp)
        for name, cfg in _CONFIGS.items():
            (folder / f"{name}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(folder)


@dataclass
class ClipModel:
    """A loaded CLIP: the torch model, its image preprocessing, tokenizer, and a stable id for vector tables."""

    model: Any
    preprocess: Any
    tokenizer: Any
    model_id: str
    arch: str
    pretrained: str | None
    device: str
    dim: int
    info: dict[str, Any] = field(default_factory=dict)

    def encode_images(self, batch: Any) -> np.ndarray:
        """Normalised image vectors (float32) of a preprocessed (N, 3, H, W) tensor."""
        import torch

        with torch.no_grad(), _autocast(self.device):
            out = self.model.encode_image(batch.to(self.device, non_blocking=True), normalize=True)
        return out.float().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Normalised text vectors (float32)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(texts).to(self.device)
        with torch.no_grad(), _autocast(self.device):
            out = _encode_text_trimmed(self.model, tokens)
            if out is None:
                out = self.model.encode_text(tokens, normalize=True)
        return out.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "arch": self.arch, "pretrained": self.pretrained, "dim": self.dim,
                "device": self.device, **self.info}


def _encode_text_trimmed(model: Any, tokens: Any) -> Any:
    """`CLIP.encode_text(tokens, normalize=True)` over the tokens up to the longest text's end token only.

    The text tower is causal and pools at the end token, so the padding after it (a 10-word instruction pads
    to 77 tokens) never changes the result: cutting it makes text encoding ~5x cheaper with identical vectors.
    Returns None for models this does not apply to (they use their own `encode_text`).
    """
    import torch
    import torch.nn.functional as F
    from open_clip.model import CLIP
    from open_clip.transformer import text_global_pool

    if type(model) is not CLIP or getattr(model, "text_pool_type", None) != "argmax" or model.attn_mask is None:
        return None
    length = int(tokens.argmax(dim=-1).max().item()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, "argmax")
    if model.text_projection is not None:
        proj = model.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x, dim=-1)


SMALL_MODEL_PARAMS = 20_000_000
"""Below this many parameters a CPU forward pass runs on one thread during `embed_lake`."""


@contextlib.contextmanager
def forward_threads(model: ClipModel) -> Iterator[None]:
    """Torch intra-op threads while a pipeline embeds with `model` next to its decode threads.

    A large model (ViT-B-32: 88M parameters, ~0.3 s per image here) keeps torch's default (one thread per core):
    the decoders need ~2% of the CPU. A small model's operations are too short to split: with two threads on
    two busy cores each op waits for the other thread (measured: curate-tiny 430 images/s on two threads,
    11,800 on one), so it runs on one thread and leaves the other core to the decoders.
    """
    import torch

    params = sum(p.numel() for p in model.model.parameters())
    if not model.device.startswith("cpu") or params >= SMALL_MODEL_PARAMS or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autocast(device: str) -> Any:
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailableError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelUnavailableError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def model_id_for(arch: str, pretrained: str | None) -> str:
    """A table-safe id: arch + tag, or arch + checkpoint name + content hash (two files never collide)."""
    if pretrained and _looks_like_path(pretrained):
        digest = _file_digest(Path(pretrained))
        tag = f"{Path(pretrained).stem}-{digest[:8]}"
    else:
        tag = pretrained or "random"
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{arch}__{tag}").strip("_").lower()


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors")) or Path(value).exists()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata curate stores next to weights it saved (arch, what it was trained on); {} for others."""
    side = Path(str(path) + ".json")
    if side.exists():
        return json.loads(side.read_text())
    return {}


def save_checkpoint(model: Any, path: str | os.PathLike[str], *, arch: str, info: dict[str, Any] | None = None) -> Path:
    """Save weights as open_clip reads them (`{"state_dict": ...}`) plus a JSON sidecar naming the arch."""
    import torch

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save({"state_dict": model.state_dict()}, tmp)
    tmp.replace(out)
    Path(str(out) + ".json").write_text(json.dumps({"arch": arch, **(info or {})}, indent=2))
    return out


def _cached_weights(arch: str, tag: str) -> str | None:
    """Path of cached hub weights for (arch, tag), without touching the network."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        return None
    hub = cfg.get("hf_hub") or ""
    if hub:
        from huggingface_hub import try_to_load_from_cache

        parts = hub.strip("/").split("/")
        repo_id, prefix = "/".join(parts[:2]), "/".join(parts[2:])
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo_id, f"{prefix}/{name}" if prefix else name)
            if isinstance(found, str):
                return found
    url = cfg.get("url") or ""
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.exists():
            return str(local)
    return None


def pretrained_available(arch: str = DEFAULT_ARCH, tag: str = DEFAULT_PRETRAINED) -> bool:
    """Whether (arch, tag) weights are already on this machine (no network is used to tell)."""
    try:
        return _cached_weights(arch, tag) is not None
    except Exception:
        return False


def _how_to_fix(arch: str) -> str:
    return (f"download the weights on a machine with internet (they are cached in ~/.cache/huggingface), or pass a "
            f"local checkpoint with `--model {arch} --pretrained /path/to/open_clip_model.safetensors`, or train one "
            "on your lake with `curate train-clip --lake L`")


def load_model(arch: str | None = None, pretrained: str | None = DEFAULT_PRETRAINED, *, device: str = "auto",
               allow_random: bool = False) -> ClipModel:
    """Load an open_clip model.

    Args:
        arch: open_clip architecture (e.g. ViT-B-32, curate-tiny); default: the checkpoint's sidecar, else ViT-B-32.
        pretrained: a pretrained tag (from the hub cache) or a path to a local checkpoint.
        device: auto, cpu or cuda[:N]; fp16 autocast is used on a GPU.
        allow_random: with `pretrained=None`, accept random weights (tests, training from scratch).

    Raises:
        ModelUnavailableError: unknown arch/tag, weights not cached while offline, or an unreadable checkpoint.
    """
    import open_clip

    register_configs()
    info: dict[str, Any] = {}
    if pretrained and _looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"checkpoint {path} does not exist; pass the path of an open_clip weights "
                                        "file (.pt/.bin/.safetensors)")
        info = checkpoint_info(path)
        arch = arch or info.get("arch") or DEFAULT_ARCH
        pretrained = str(path)
    arch = arch or DEFAULT_ARCH
    if arch not in open_clip.list_models():
        raise ModelUnavailableError(f"unknown CLIP architecture {arch!r}; see `python -c 'import open_clip; "
                                    f"print(open_clip.list_models())'` (e.g. {DEFAULT_ARCH}, {TINY_ARCH})")
    dev = resolve_device(device)
    load_from: str | None = pretrained
    if pretrained and not _looks_like_path(pretrained):
        if not open_clip.get_pretrained_cfg(arch, pretrained):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise ModelUnavailableError(f"{arch} has no pretrained tag {pretrained!r} (known: {tags})")
        cached = _cached_weights(arch, pretrained)
        if cached is None:
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
                raise ModelUnavailableError(f"{arch}/{pretrained} weights are not in the local cache and "
                                            f"HF_HUB_OFFLINE is set; {_how_to_fix(arch)}")
            _fetch_quickly(arch, pretrained)
        else:
            info["weights"] = cached
    elif pretrained is None and not allow_random:
        raise ModelUnavailableError(f"no weights given for {arch}; {_how_to_fix(arch)}")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=load_from, device=dev)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise ModelUnavailableError(f"could not load {arch} weights from {pretrained}: {exc}; {_how_to_fix(arch)}") \
            from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None else \
        int(model.encode_text(tokenizer(["x"])).shape[1])
    return ClipModel(model=model, preprocess=preprocess, tokenizer=tokenizer, model_id=model_id_for(arch, pretrained),
                     arch=arch, pretrained=pretrained, device=dev, dim=dim, info=info)


def _fetch_quickly(arch: str, tag: str) -> None:
    """Try the hub once with short timeouts; any failure becomes an immediate, actionable error."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        if cfg.get("hf_hub"):
            from huggingface_hub import hf_hub_download

            parts = cfg["hf_hub"].strip("/").split("/")
            repo_id, prefix = "/".join(parts[:2]), "/".join(parts[2:])
            name = "open_clip_model.safetensors"
            hf_hub_download(repo_id, f"{prefix}/{name}" if prefix else name, etag_timeout=5)
        else:
            raise OSError("weights are only available by URL")
    except Exception as exc:
        raise ModelUnavailableError(f"{arch}/{tag} weights could not be fetched ({type(exc).__name__}); "
                                    f"{_how_to_fix(arch)}") from None


def make_random_checkpoint(path: str | os.PathLike[str], *, arch: str = TINY_ARCH, seed: int = 0) -> Path:
    """Random weights for `arch` saved to `path`: what tests load through the real checkpoint path."""
    import open_clip
    import torch

    register_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    return save_checkpoint(model, path, arch=arch, info={"trained_on": None, "note": "random weights"})
