"""The classify recipe's training and testing (llmkit/recipes/classify.py has its config and record;
this module imports torch, so listing or printing a recipe does not)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llmkit import faults
from llmkit.config import TrainConfig, to_dict
from llmkit.data.classification import ClassifyData, prepare
from llmkit.divergence import check_finite
from llmkit.hub import cache_dir
from llmkit.methods import count_params, get_method, gradient_checkpointing_allowed, load_kwargs
from llmkit.models.classifier import Collator, SequenceClassifier, predict, save_classifier
from llmkit.models.loading import load_backbone, load_tokenizer, resolve_model
from llmkit.recipes import classify_report
from llmkit.recipes.classify import ClassifyConfig
from llmkit.trackers import open_trackers
from llmkit.tracking import History, PeakMemory, prepare_output_dir, write_json

# ----------------------------------------------------------------------------- features


@torch.no_grad()
def embed_texts(model: SequenceClassifier, tokenizer, texts, max_length: int, batch_size: int, desc: str) -> np.ndarray:
    """(N, H) pooled embeddings, batched, in eval mode (no dropout)."""
    model.eval()
    collate = Collator(tokenizer, max_length)
    dev = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
        b = collate([(t, 0) for t in texts[i:i + batch_size]])
        out.append(model.embed(b["input_ids"].to(dev), b["attention_mask"].to(dev)).float().cpu().numpy())
    return np.concatenate(out)


def cached_embeddings(model, tokenizer, texts, cfg: ClassifyConfig, model_path: str, desc: str) -> np.ndarray:
    """Embeddings of a frozen backbone, cached on disk by model, pooling, length and texts."""
    key = hashlib.sha256(json.dumps([model_path, cfg.model.name, cfg.model.revision, cfg.model.pooling,
                                     cfg.model.max_length, cfg.model.dtype, texts]).encode()).hexdigest()[:24]
    path = cache_dir() / "features" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    feats = embed_texts(model, tokenizer, texts, cfg.model.max_length, cfg.eval.batch_size, desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats


# ----------------------------------------------------------------------------- training


def fit_head_on_features(model, method, cfg: ClassifyConfig, xtr: np.ndarray, ytr: list[int], history: History,
                         xte: np.ndarray, yte: list[int]) -> tuple[int, dict]:
    """Frozen backbone: fit the linear head on cached embeddings; -> (optimizer steps taken: 0 for a
    closed-form solver such as the feature-based method's logistic regression; train.eval_steps figures)."""
    num_labels = model.head.out_features
    if method.fit_head is not None:
        w, b = method.fit_head(xtr, np.asarray(ytr), num_labels, cfg.method, cfg.train.seed)
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(w))
            model.head.bias.copy_(torch.from_numpy(b))
        logits = torch.from_numpy(xtr) @ model.head.weight.T + model.head.bias
        loss = F.cross_entropy(logits, torch.tensor(ytr)).item()
        history.log(step=1, epoch=1.0, loss=loss, train_accuracy=float((logits.argmax(-1).numpy() == np.asarray(ytr)).mean()))
        return 0, {}
    # Gradient descent on the head alone (finetune I with no blocks): same loop shape, tiny inputs.
    t = cfg.train
    g = torch.Generator().manual_seed(t.seed)
    x, y = torch.from_numpy(xtr), torch.tensor(ytr)
    steps_per_epoch = math.ceil(len(y) / t.batch_size)
    total = t.max_steps if t.max_steps > 0 else math.ceil(t.epochs * steps_per_epoch)
    opt_ = torch.optim.AdamW(model.head.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    sched = make_scheduler(opt_, t, total)
    x_test, y_test = torch.from_numpy(xte), torch.tensor(yte)

    def evaluate():
        with torch.no_grad():
            return held_out(model.head(x_test), y_test)  # no dropout: the head sees the features as at test time

    watch = EvalWatch(t, evaluate, model)
    model.train()
    step, running = 0, []
    while step < total:
        for idx in torch.randperm(len(y), generator=g).split(t.batch_size):
            loss = F.cross_entropy(model.head(model.dropout(x[idx])), y[idx])
            check_finite(step + 1, t.learning_rate, loss=loss)
            loss.backward()
            opt_.step()
            sched.step()
            opt_.zero_grad()
            step += 1
            running.append(loss.item())
            if step % t.log_every(total) == 0 or step == total:
                history.log(step=step, epoch=round(step / steps_per_epoch, 3), loss=float(np.mean(running)), lr=sched.get_last_lr()[0])
                running = []
            if watch.due(step, total) and watch(step, round(step / steps_per_epoch, 3), history):
                total = step  # early stopping
            if step >= total:
                break
    watch.restore()
    return step, watch.metrics()


class EvalWatch:
    """train.eval_steps for the classification loops: the held-out loss and accuracy every eval_steps
    optimizer steps (a history row each), early stopping after `early_stopping_patience` evaluations
    without a lower loss, and with keep_best a copy of the trainable weights at the best one, put back
    at the end. Its state travels in the loop's checkpoint, so a resumed run stops and keeps alike."""

    def __init__(self, t, evaluate, model):
        self.t, self.evaluate, self.model = t, evaluate, model
        self.best_loss, self.best_step, self.bad, self.stopped, self.best = math.inf, None, 0, False, None

    def due(self, step: int, total: int) -> bool:
        return bool(self.t.eval_steps) and (step % self.t.eval_steps == 0 or step == total)

    def __call__(self, step: int, epoch: float, history: History, log: bool = True) -> bool:
        """Evaluate at `step`; -> whether training should stop here."""
        row = self.evaluate()
        if log:
            history.log(step=step, epoch=epoch, **row)
        if row["eval_loss"] < self.best_loss:
            self.best_loss, self.best_step, self.bad = row["eval_loss"], step, 0
            if self.t.best_kept():
                self.best = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        else:
            self.bad += 1
        self.stopped = bool(self.t.early_stopping_patience) and self.bad >= self.t.early_stopping_patience
        return self.stopped

    def restore(self) -> None:
        if self.best is not None:
            with torch.no_grad():
                for n, p in self.model.named_parameters():
                    if n in self.best:
                        p.copy_(self.best[n])

    def metrics(self) -> dict:
        if not self.t.best_kept() or self.best_step is None:  # as the Trainer kinds: figures of the weights kept
            return {}
        return {"best_step": self.best_step, "best_eval_loss": self.best_loss, "stopped_early": self.stopped}

    def state(self) -> dict:
        return {"best_loss": self.best_loss, "best_step": self.best_step, "bad": self.bad}

    def load_state(self, state: dict, best: dict | None) -> None:
        self.best_loss, self.best_step, self.bad = state["best_loss"], state["best_step"], state["bad"]
        self.best = best


def held_out(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Held-out loss and accuracy from (N, C) logits."""
    return {"eval_loss": F.cross_entropy(logits, labels).item(),
            "eval_accuracy": (logits.argmax(-1) == labels).float().mean().item()}


def make_scheduler(optimizer, t: TrainConfig, total_steps: int):
    from transformers import get_scheduler

    from llmkit.recipes.trainer import SCHEDULERS

    return get_scheduler(SCHEDULERS[t.lr_scheduler], optimizer, num_warmup_steps=int(t.warmup_ratio * total_steps), num_training_steps=total_steps)


def param_groups(model, weight_decay: float):
    """AdamW groups: no decay on biases and norm weights (1-D tensors)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def test_logits(model, tokenizer, data: ClassifyData, cfg: ClassifyConfig) -> dict:
    """Held-out loss and accuracy of `model` (unwrapped) on the test rows, in eval mode (no dropout, so
    the random stream is untouched and a resumed run evaluates alike); back in train mode after."""
    model.eval()
    collate, bs = Collator(tokenizer, cfg.model.max_length), cfg.eval.batch_size
    dev = next(model.parameters()).device
    logits = []
    with torch.no_grad():
        for i in range(0, len(data.test_texts), bs):
            b = collate(list(zip(data.test_texts[i:i + bs], data.test_labels[i:i + bs])))
            logits.append(model(b["input_ids"].to(dev), b["attention_mask"].to(dev)).float())  # (B, C)
    model.train()
    return held_out(torch.cat(logits), torch.tensor(data.test_labels, device=dev))


def train_loop(accelerator, model, tokenizer, data: ClassifyData, cfg: ClassifyConfig, out: Path,
               history: History) -> tuple[int, float, dict]:
    """Minibatch AdamW over the trainable parameters -> (optimizer steps, training seconds over every
    session of the run: a resumed run adds its checkpoint's seconds to its own, train.eval_steps figures)."""
    t = cfg.train
    micro, accum = t.batch_plan(accelerator.num_processes)
    accelerator.gradient_accumulation_steps = accum
    loader = torch.utils.data.DataLoader(list(zip(data.train_texts, data.train_labels)), batch_size=micro,
                                         shuffle=True, collate_fn=Collator(tokenizer, cfg.model.max_length))
    if gradient_checkpointing_allowed(cfg.method.name, t.gradient_checkpointing) and hasattr(model.backbone, "gradient_checkpointing_enable"):
        model.backbone.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=t.learning_rate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / accum)
    total = t.max_steps if t.max_steps > 0 else math.ceil(t.epochs * steps_per_epoch)
    scheduler = make_scheduler(optimizer, t, total)  # stepped by hand once per optimizer step
    accelerator.register_for_checkpointing(scheduler)

    unwrapped = accelerator.unwrap_model(model)
    watch = EvalWatch(t, lambda: test_logits(unwrapped, tokenizer, data, cfg), unwrapped)
    ckpt = LoopCheckpoint(out / "checkpoint", accelerator, watch)
    step, before, running = ckpt.load(total) if t.resume else (0, 0.0, [])
    start = time.perf_counter()

    def save_checkpoint():
        ckpt.save(step, total, before + time.perf_counter() - start, running)

    bar = tqdm(total=total, initial=step, desc="train", disable=not accelerator.is_main_process)
    grad_norm = {}  # the last step's norm, when clipping computes one
    model.train()
    while step < total:
        epoch = step // steps_per_epoch
        loader.set_epoch(epoch)  # seeded shuffling: the same order again after a resume
        skip = (step - epoch * steps_per_epoch) * accum
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        for batch in _rng_neutral(batches):
            with accelerator.accumulate(model):
                logits = model(batch["input_ids"], batch["attention_mask"])  # (B, C)
                loss = F.cross_entropy(logits, batch["labels"])
                if t.max_grad_norm <= 0:  # with clipping, a NaN loss shows in the gradient norm, checked once a step
                    check_finite(step + 1, t.learning_rate, loss=loss)
                accelerator.backward(loss)
                if accelerator.sync_gradients and t.max_grad_norm > 0:
                    norm = accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)  # before clipping
                    check_finite(step + 1, t.learning_rate, gradient_norm=norm)
                    grad_norm = {"grad_norm": float(norm)}
                optimizer.step()
                optimizer.zero_grad()
            running.append(loss.detach().float())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            bar.update(1)
            if step % t.log_every(total) == 0 or step == total:
                mean_loss = accelerator.gather(torch.stack(running).mean()[None]).mean().item()
                running = []
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                if accelerator.is_main_process:
                    history.log(step=step, epoch=round(step / steps_per_epoch, 3), loss=mean_loss, lr=scheduler.get_last_lr()[0],
                                **grad_norm)
            if watch.due(step, total) and watch(step, round(step / steps_per_epoch, 3), history, accelerator.is_main_process):
                total = step  # early stopping: no more steps, no checkpoint to keep
            if t.save_steps and step % t.save_steps == 0 and step < total:
                save_checkpoint()
            if step >= total:
                break
        if not t.save_steps and step < total:
            save_checkpoint()
    bar.close()
    watch.restore()
    return step, before + time.perf_counter() - start, watch.metrics()


class LoopCheckpoint:
    """The classification loop's checkpoint: Accelerate's state (model, optimizer, scheduler, RNG), the
    step, the training seconds so far, and each process's losses not yet logged (the resumed run logs
    the same mean). Written beside the old one and renamed over it: a kill leaves one whole checkpoint."""

    def __init__(self, path: Path, accelerator, watch: EvalWatch):
        self.path, self.acc, self.watch = path, accelerator, watch

    def load(self, total: int) -> tuple[int, float, list]:
        """-> (step, seconds, unlogged losses) of a complete checkpoint, or a fresh start."""
        if not (self.path / "trainer_state.json").is_file():
            return 0, 0.0, []
        self.acc.load_state(str(self.path))
        saved = json.loads((self.path / "trainer_state.json").read_text())
        unlogged = self.path / f"unlogged_{self.acc.process_index}.json"
        running = [torch.tensor(x, device=self.acc.device) for x in json.loads(unlogged.read_text())] \
            if unlogged.is_file() else []
        if "eval_watch" in saved:  # train.eval_steps: the best so far, and its weights with keep_best
            best = self.path / "best_trainable.pt"
            self.watch.load_state(saved["eval_watch"], torch.load(best, map_location=self.acc.device) if best.is_file() else None)
        self.acc.print(f"resuming from {self.path} at step {saved['step']}/{total}")
        return saved["step"], saved.get("seconds", 0.0), running

    def save(self, step: int, total: int, seconds: float, running: list) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.acc.save_state(str(tmp))
        (tmp / f"unlogged_{self.acc.process_index}.json").write_text(json.dumps([float(x) for x in running]))
        faults.point("checkpoint")
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            if self.watch.best is not None:
                torch.save(self.watch.best, tmp / "best_trainable.pt")
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "total_steps": total, "seconds": seconds,
                                                                "eval_watch": self.watch.state()}))
            shutil.rmtree(self.path, ignore_errors=True)
            tmp.rename(self.path)  # the old checkpoint goes only once the new one is complete
        self.acc.wait_for_everyone()
        faults.point("train")


def _rng_neutral(loader):
    """Iterate `loader` without the global RNG draw a DataLoader makes when its iterator starts
    (its base seed). Without this, a resumed run starts an iterator mid-epoch, shifts the dropout
    random stream, and no longer reproduces the run it continues."""
    it = iter(loader)
    with torch.random.fork_rng(devices=[]):
        first = next(it, None)
    if first is None:
        return
    yield first
    yield from it


# ----------------------------------------------------------------------------- the recipe


def run(cfg: ClassifyConfig, out: Path) -> dict:
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    from llmkit import distributed

    accelerator = distributed.accelerator(mixed_precision=distributed.mixed_precision(cfg.train.mixed_precision),
                                          dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
                                          # backbones carry parts the classifier never uses (BERT's pooler)
                                          kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(cfg.train.seed)
    data = prepare(cfg.data, seed=cfg.train.seed)  # validation errors stop here, before the model loads
    method = get_method(cfg.method.name)
    _check_eval_steps(cfg, method)
    model_path = resolve_model(cfg.model.name, cfg.model.revision)
    tokenizer = load_tokenizer(cfg.model, model_path)
    extra = load_kwargs(cfg.method.name, cfg.method, model_path)
    backbone = method.apply(load_backbone(cfg.model, model_path, **extra), cfg.method)
    model = SequenceClassifier(backbone, len(data.labels), cfg.model.pooling, cfg.model.head_dropout)
    if accelerator.is_main_process:  # the model has loaded: nothing left to refuse the run for
        prepare_output_dir(out, to_dict(cfg), overwrite=cfg.output.overwrite)
    accelerator.wait_for_everyone()
    resuming = cfg.train.resume and (out / "checkpoint" / "trainer_state.json").is_file()
    history = History(out / "history.jsonl", resume_step=_checkpoint_step(out) if resuming else None,
                      trackers=open_trackers(cfg.train.report_to, out, to_dict(cfg)) if accelerator.is_main_process else None)
    trainable, total = count_params(model)
    accelerator.print(f"{cfg.method.name}: {trainable:,} of {total:,} parameters train "
                      f"({100 * trainable / total:.3f}%); {len(data.train_texts)} train / {len(data.test_texts)} test rows")

    with PeakMemory() as mem:
        start = time.perf_counter()
        if not model.backbone_trains():
            model.to(accelerator.device)
            xtr = cached_embeddings(model, tokenizer, data.train_texts, cfg, model_path, "embed train")
            xte = cached_embeddings(model, tokenizer, data.test_texts, cfg, model_path, "embed test")
            steps, watched = fit_head_on_features(model, method, cfg, xtr, data.train_labels, history, xte, data.test_labels)
            train_seconds = time.perf_counter() - start
            with torch.no_grad():
                preds = model.head(torch.from_numpy(xte).to(model.head.weight.device)).argmax(-1).tolist()
        else:
            steps, train_seconds, watched = train_loop(accelerator, model, tokenizer, data, cfg, out, history)
            model = accelerator.unwrap_model(model)
            preds = predict(model, tokenizer, data.test_texts, cfg.model.max_length, cfg.eval.batch_size)

    y = data.test_labels
    metrics = {
        "accuracy": float(accuracy_score(y, preds)),
        "macro_f1": float(f1_score(y, preds, average="macro", labels=list(range(len(data.labels))), zero_division=0)),
        "trainable_params": trainable,
        "total_params": total,
        "train_seconds": round(train_seconds, 2),
        "peak_memory_mb": mem.mb,
        "peak_memory_kind": mem.kind,
        "optimizer_steps": steps,
        "num_train": len(data.train_texts),
        "num_test": len(y),
        "method": cfg.method.name,
        "model": cfg.model.name,
        **watched,
        **distributed.describe(accelerator.num_processes),
    }
    if cfg.output.save_model:
        with distributed.whole_weights(model):  # ZeRO-3: every rank gathers, the main process writes
            if accelerator.is_main_process:
                save_classifier(model, tokenizer, out / "model", labels=data.labels, base_model=cfg.model.name,
                                max_length=cfg.model.max_length, method=cfg.method.name, method_config=to_dict(cfg.method))
                faults.point("model")
    if accelerator.is_main_process:
        confusion = confusion_matrix(y, preds, labels=list(range(len(data.labels)))).tolist()
        write_json(out / "predictions_summary.json", {"labels": data.labels, "confusion_matrix": confusion})
        classify_report.write_report(out, cfg, metrics, data, confusion)
        history.close()
        write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    accelerator.wait_for_everyone()
    return metrics


def _check_eval_steps(cfg: ClassifyConfig, method) -> None:
    """train.eval_steps needs optimizer steps to evaluate between, and (for now) whole weights in each process."""
    from llmkit import distributed
    from llmkit.errors import ConfigError

    if not cfg.train.eval_steps:
        return
    if method.fit_head is not None:
        raise ConfigError(f"train.eval_steps: method {cfg.method.name} fits its head in closed form (one solve, no "
                          "optimizer steps to evaluate between); its test figures are in metrics.json")
    if distributed.is_zero3() or distributed.uses_fsdp():
        raise ConfigError("train.eval_steps for classify needs whole weights in every process; under ZeRO-3 or FSDP "
                          "set train.eval_steps=0 (the test figures come after training)")


def _checkpoint_step(out: Path) -> int:
    return json.loads((out / "checkpoint" / "trainer_state.json").read_text())["step"]


