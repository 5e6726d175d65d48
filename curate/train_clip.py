"""Train or fine-tune a CLIP contrastively on a lake's own (keyframe, instruction) pairs, with open_clip's ClipLoss.

On a user's machine this adapts a pretrained CLIP to their robot's cameras and vocabulary
(`--model ViT-B-32 --pretrained laion2b_s34b_b79k`); without downloadable weights it trains the small
`curate-small` architecture from scratch, which is enough to give the demo world real semantics
("red cube" finds red cubes). The result is an ordinary open_clip checkpoint plus a JSON sidecar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.embed import _episode_texts, keyframe_indices
from curate.errors import ConfigError
from curate.lake import Lake
from curate.models import SMALL_ARCH, ClipModel, load_model, save_checkpoint

Progress = Callable[[str, int, int], None]


@dataclass
class TrainReport:
    checkpoint: str
    model_id: str
    arch: str
    pairs: int
    episodes: int
    epochs: int
    final_loss: float
    first_loss: float
    seconds: float


def default_checkpoint_path(lake: Lake, arch: str) -> Path:
    """`<lake>/models/<arch>-lake.pt` for a local lake, else under ~/.cache/curate/models."""
    if "://" not in lake.uri or lake.uri.startswith("file://"):
        base = Path(lake.uri.removeprefix("file://")) / "models"
    else:
        base = Path.home() / ".cache" / "curate" / "models" / lake.uri.split("://", 1)[1].replace("/", "_")
    return base / f"{arch}-lake.pt"


def _pairs(lake: Lake, model: ClipModel, *, where: str | None, keyframes: str, max_pairs: int,
           seed: int) -> tuple[Any, list[str], int]:
    """Preprocessed keyframes of every episode's first camera, each paired with one of the episode's texts."""
    import torch

    from curate.media import decode_frame
    from schemas import Frame

    cols = ["episode_id", "n_steps", "cameras", "instruction", "instructions_alt", "segments"]
    eps = lake.scan(where=where, columns=cols).collect().to_dicts()
    eps = [e for e in eps if e.get("instruction")]
    if not eps:
        raise ConfigError(f"no episode of {where or 'the lake'} has an instruction to train on")
    rng = np.random.default_rng(seed)
    keys, first_cam = [], {}
    for e in eps:
        cams = [c["name"] for c in e.get("cameras") or [] if (c.get("kind") or "rgb") == "rgb"]
        first_cam[e["episode_id"]] = cams[0] if cams else None
        for idx in keyframe_indices(int(e["n_steps"] or 0), keyframes):
            keys.append((e["episode_id"], idx))
    info = {e["episode_id"]: e for e in eps}
    images, texts = [], []
    for i in range(0, len(keys), 512):
        table = lake.read_frames(keys[i:i + 512], columns=["episode_id", "index", "camera", "format", "data",
                                                          "video_uri", "video_timestamp_s"])
        for r in table.to_pylist():
            if first_cam.get(r["episode_id"]) not in (None, r["camera"]):
                continue
            frame = Frame(camera=r["camera"], format=r["format"], data=r["data"], video_uri=r.get("video_uri"),
                          video_timestamp_s=r.get("video_timestamp_s"))
            try:
                img = decode_frame(frame)
            except Exception:
                continue
            options = [t for _, _, t in _episode_texts(info[r["episode_id"]]) if t]
            instr = [t for kind, _, t in _episode_texts(info[r["episode_id"]]) if kind in ("instruction", "alt")]
            text = str(rng.choice(instr if rng.random() < 0.8 else options))
            images.append(model.preprocess(img))
            texts.append(text)
    if len(images) < 2:
        raise ConfigError("fewer than two (keyframe, instruction) pairs: nothing to learn from")
    if len(images) > max_pairs:
        keep = rng.choice(len(images), max_pairs, replace=False)
        images = [images[i] for i in keep]
        texts = [texts[i] for i in keep]
    return torch.stack(images), texts, len(eps)


def train_on_lake(lake: Lake, *, arch: str = SMALL_ARCH, pretrained: str | None = None, where: str | None = None,
                  epochs: int = 10, batch: int = 32, lr: float = 3e-3, keyframes: str = "first,middle,last",
                  out: str | Path | None = None, max_pairs: int = 20_000, seed: int = 0, device: str = "auto",
                  progress: Progress | None = None) -> TrainReport:
    """Train `arch` (from `pretrained` weights, or from scratch) on the lake's pairs; save the checkpoint.

    Returns:
        A TrainReport with the checkpoint path and the model id its vectors will carry.
    """
    import open_clip
    import torch

    if epochs < 1 or batch < 2:
        raise ConfigError("train-clip needs --epochs >= 1 and --batch >= 2")
    started = time.perf_counter()
    torch.manual_seed(seed)
    out = Path(out) if out else default_checkpoint_path(lake, arch)
    if pretrained is None:
        model = load_model(arch, None, device=device, allow_random=True)
    else:
        model = load_model(arch, pretrained, device=device)
    images, texts, n_eps = _pairs(lake, model, where=where, keyframes=keyframes, max_pairs=max_pairs, seed=seed)
    net = model.model
    net.train()
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr if pretrained is None
                            else lr / 100, weight_decay=0.1)
    n = len(texts)
    steps_per_epoch = max(1, n // batch)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=total,
                                                pct_start=0.1)
    tokens = model.tokenizer(texts)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * batch:(s + 1) * batch]
            img = images[idx].to(model.device)
            tok = tokens[idx].to(model.device)
            out_d = net(img, tok)
            feats = (out_d["image_features"], out_d["text_features"], out_d["logit_scale"]) if isinstance(out_d, dict) \
                else out_d[:3]
            loss = loss_fn(*feats)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                net.logit_scale.clamp_(0, np.log(100))
            losses.append(float(loss.detach()))
            step += 1
            if progress is not None:
                progress("train-clip", step, total)
    net.eval()
    info = {"trained_on": lake.uri, "lake_version": lake.version, "where": where, "pairs": n, "epochs": epochs,
            "base": pretrained or "random init", "final_loss": round(float(np.mean(losses[-steps_per_epoch:])), 4)}
    save_checkpoint(net, out, arch=arch, info=info)
    loaded = load_model(arch, str(out), device=device)
    return TrainReport(checkpoint=str(out), model_id=loaded.model_id, arch=arch, pairs=n, episodes=n_eps,
                       epochs=epochs, final_loss=info["final_loss"],
                       first_loss=round(float(np.mean(losses[:steps_per_epoch])), 4),
                       seconds=round(time.perf_counter() - started, 2))
