"""Set Accelerate up for the processes the launcher actually started, and check it.

Every recipe runs unchanged under `accelerate launch --config_file accelerate_configs/X.yaml -m
llmkit train RECIPE.yaml`. Three launches that look right give one-process training with no
warning (measured with accelerate 1.15, transformers 5.23, deepspeed 0.19, on a CPU machine):

1. `accelerate launch --num_processes 2` with a MULTI_CPU config and no MPI hostfile starts ONE
   process: the CPU path of accelerate's launcher is the single-process launcher unless mpirun is
   used. accelerate_configs/cpu.yaml therefore uses the torchrun launcher (MULTI_GPU type).
2. Under torchrun (accelerate's MULTI_GPU/DeepSpeed launchers, or torchrun itself) on a machine
   with no GPU, `PartialState()` finds no backend and every rank reports world size 1: Accelerate
   goes multi-process on CPU only when told `cpu=True`.
3. DeepSpeed on CPU: deepspeed.comm sets up a gloo group of 2, while Accelerate, with no backend,
   still reports 1 per rank. It needs backend="gloo" and cpu=False (cpu=True skips DeepSpeed).

`state()` and `trainer_args()` pass Accelerate (and the HF Trainer) what makes the world size
right; `check_world_size()` stops a run whose processes disagree with WORLD_SIZE, the number the
launcher started. `describe()` is what metrics.json records.
"""

from __future__ import annotations

import os

from llmkit.errors import LlmkitError


def launched_world_size() -> int:
    """Processes the launcher started (torchrun, accelerate, deepspeed all set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def uses_deepspeed() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def uses_fsdp() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def state_kwargs() -> dict:
    """Keyword arguments for accelerate's PartialState / Accelerator on this launch."""
    if launched_world_size() > 1 and _no_gpu():
        return {"backend": "gloo"} if uses_deepspeed() else {"cpu": True}
    return {}


def trainer_args() -> dict:
    """TrainingArguments fields (use_cpu, ddp_backend) for the HF Trainer on this launch: the
    Trainer re-creates Accelerate's state from them, so they must say the same as state()."""
    if not _no_gpu():
        return {}
    kw = state_kwargs()
    if not kw:  # one process on CPU
        return {"use_cpu": True}
    return {"use_cpu": kw.get("cpu", False), "ddp_backend": "gloo"}


def mixed_precision(requested: str) -> str:
    """train.mixed_precision -> the precision this run uses, told to Accelerate too.

    A launcher profile sets ACCELERATE_MIXED_PRECISION (zero2.yaml: bf16) and Accelerate builds
    DeepSpeed's config from it, while the Trainer autocasts only when its own bf16/fp16 flag says so:
    when the two disagree DeepSpeed stops every rank ("ds bf16.enabled=True vs hf bf16=False"). `auto`
    takes the launcher's value on a GPU and `no` on CPU (bf16 autocast there is slower, and fp16 is
    for GPUs); an explicit value wins. Either way the environment is set to the result, so Accelerate,
    DeepSpeed and the Trainer agree."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    chosen = requested if requested != "auto" else ("no" if _no_gpu() else launcher)
    os.environ["ACCELERATE_MIXED_PRECISION"] = chosen
    return chosen


def check_launch() -> None:
    """Errors a launch would otherwise turn into a hang or a silent single process."""
    import torch

    world = launched_world_size()
    if uses_fsdp() and _no_gpu() and world > 1:
        raise LlmkitError("the FSDP profile needs GPUs; on CPU use accelerate_configs/cpu.yaml (DDP) or a zero*.yaml profile")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if local > torch.cuda.device_count():
            raise LlmkitError(f"{local} processes were started on this machine but it has {torch.cuda.device_count()} GPU(s): "
                              f"pass --num_processes {torch.cuda.device_count()} to accelerate launch (the profiles say 8)")
    elif int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > (os.cpu_count() or 1):
        local, cores = int(os.environ["LOCAL_WORLD_SIZE"]), os.cpu_count() or 1
        raise LlmkitError(f"{local} processes were started on this machine, which has no GPU and {cores} CPU core(s): "
                          f"pass --num_processes {min(cores, 2)} to accelerate launch (the GPU profiles say 8)")
    elif world == 1 and "MASTER_ADDR" in os.environ and "ACCELERATE_MIXED_PRECISION" in os.environ and "LOCAL_RANK" not in os.environ:
        print("llmkit: one process (accelerate's single-process launcher). For several CPU processes use "
              "`accelerate launch --config_file accelerate_configs/cpu.yaml` (a MULTI_CPU config without MPI runs one process).")


def check_world_size(num_processes: int) -> None:
    """Stop when Accelerate set up a different number of processes than the launcher started."""
    world = launched_world_size()
    if num_processes != world:
        raise LlmkitError(f"the launcher started {world} processes (WORLD_SIZE={world}) but Accelerate set up {num_processes}: "
                          f"each process would train alone on all the data. Launch with a profile from accelerate_configs/ "
                          f"(on CPU: accelerate_configs/cpu.yaml)")


def state():
    """accelerate.PartialState for this launch, checked against WORLD_SIZE."""
    from accelerate import PartialState

    check_launch()
    s = PartialState(**state_kwargs())
    check_world_size(s.num_processes)
    return s


def accelerator(**kwargs):
    """accelerate.Accelerator for this launch (own training loops: classify, ppo), checked."""
    from accelerate import Accelerator

    check_launch()
    kw = state_kwargs()
    if "backend" in kw:
        from accelerate.utils import InitProcessGroupKwargs

        kwargs.setdefault("kwargs_handlers", []).append(InitProcessGroupKwargs(backend=kw["backend"]))
    cpu = kw.get("cpu", False) or kwargs.pop("cpu", False)
    acc = Accelerator(cpu=cpu, **kwargs)
    check_world_size(acc.num_processes)
    return acc


def describe(num_processes: int | None = None) -> dict:
    """world_size, the distributed type and backend, and the ZeRO stage, for metrics.json."""
    from accelerate import PartialState

    s = PartialState()
    out = {"world_size": num_processes or s.num_processes, "distributed_type": str(s.distributed_type).split(".")[-1],
           "distributed_backend": s.backend or "none",
           "mixed_precision": os.environ.get("ACCELERATE_MIXED_PRECISION", "no")}
    if uses_deepspeed():
        out["zero_stage"] = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0"))
    return out


def is_zero3() -> bool:
    return uses_deepspeed() and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"


def gathered_model(trainer, rebuild):
    """The trained model, whole, on the main process (None elsewhere); every rank must call it.

    Under ZeRO-3 each rank holds a shard of every weight, so `trainer.model` cannot generate or
    be saved on one process. Here every rank takes part in gathering the full 16-bit state dict
    (the profiles set zero3_save_16bit_model), and the main process loads it into `rebuild()`,
    a model built exactly as the trained one was (base + method), outside ZeRO. Elsewhere (one
    process, DDP, ZeRO-1/2) the weights are whole on every rank: `trainer.model` as it is.
    """
    if not is_zero3():
        return trainer.model if trainer.accelerator.is_main_process else None
    state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return None
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # else from_pretrained on one rank would wait for a zero.Init on all
    model = rebuild()
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:  # tied weights may be stored once
        raise LlmkitError(f"ZeRO-3 weights do not match the rebuilt model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def whole_weights(model):
    """Context in which every weight of `model` is whole on every rank: under ZeRO-3 all ranks
    gather the shards (enter it on every rank; do only local work such as saving inside);
    elsewhere nothing to do."""
    import contextlib

    if not is_zero3():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)
