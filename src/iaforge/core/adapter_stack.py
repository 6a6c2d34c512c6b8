"""Adapter stacks: one base model holding many named LoRA adapters, switched per batch.

A variant plus the IA is the stack every IA stage (training, DPO, evaluation, the audit tier) works with;
this module is the one place that knows how peft activates such a stack and which parameters may train.
"""

from __future__ import annotations

from pathlib import Path

from iaforge.core.adapters import attach

BASE_GROUP = "__base__"  # the base model itself, no variant adapter: it should report nothing unusual

IA_NAME = "ia"


def is_ia_param(name: str, ia_name: str = IA_NAME) -> bool:
    return f".{ia_name}." in name and "lora_" in name


class AdapterSwitch:
    """Activate (variant, IA) on a PeftModel holding many adapters, keeping only the IA trainable.

    peft's `set_adapter` walks every module and sets requires_grad on every adapter's weights, so a switch costs
    time in proportion to the adapters attached: with 28, 52 and 100 variants 0.29, 0.47 and 1.35 s a switch
    (bench/adapter_switch.py), as much as the training step itself. Only the IA ever trains, so requires_grad is
    set once here, and a switch only tells each LoRA layer which adapters to apply (what peft's own switch sets
    last). Checked against peft on the first switch; a model this path does not cover (auxiliary trainable
    modules, merged layers) switches through peft as before.
    """

    def __init__(self, model, ia_name: str = IA_NAME, train_ia: bool = True):
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        self.model, self.ia, self.train_ia = model, ia_name, train_ia
        self.expected = {n for n, _ in model.named_parameters() if is_ia_param(n, ia_name)} if train_ia else set()
        self.current: tuple | None = None
        self.layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        self.fast = bool(self.layers) and all(hasattr(m, "_active_adapter") and not m.merged for m in self.layers) \
            and not any(isinstance(m, AuxiliaryTrainingWrapper) for m in model.modules())
        self.checked = False  # the fast path is used once it agreed with peft on a real switch

    def __call__(self, group: str | None, with_ia: bool = True) -> None:
        names = [] if group in (None, BASE_GROUP) else [group]
        if with_ia:
            names.append(self.ia)
        if not names:
            # nothing to activate would leave the last adapters on, silently (an experiment compared variants
            # with another variant that way): the bare base model is `with model.disable_adapter():`
            raise ValueError("AdapterSwitch: the base model without the IA has no adapter to activate; "
                             "use `with model.disable_adapter():`")
        key = tuple(names)
        if key == self.current:
            return
        if names and self.fast and self.checked:
            for m in self.layers:
                m._active_adapter = list(names)
            self.model.base_model.active_adapter = list(names)
        elif names:
            self.model.base_model.set_adapter(names)
            self._only_ia_trainable()  # peft's switch made the variant's weights trainable too
            if self.fast:
                self._check_fast(names)
        self.current = key

    def _only_ia_trainable(self) -> None:
        for n, p in self.model.named_parameters():
            p.requires_grad_(n in self.expected)
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        if trainable != self.expected:  # pragma: no cover - guards a peft behavior change
            raise RuntimeError("trainable parameter set drifted away from the IA")

    def _check_fast(self, names: list[str]) -> None:
        """After a peft switch: setting each layer's active adapters directly must read back as peft left them."""
        peft_view = [list(m.active_adapters) for m in self.layers]
        for m in self.layers:
            m._active_adapter = list(names)
        self.checked = [list(m.active_adapters) for m in self.layers] == peft_view
        if not self.checked:  # pragma: no cover - peft changed how it stores active adapters
            self.fast = False
            self.model.base_model.set_adapter(names)
            self._only_ia_trainable()


def load_with_variants(base_dir: str | Path, variant_dirs: dict[str, Path]):
    from iaforge.core.base_model import load_base

    model, tok = load_base(base_dir)
    for name, path in sorted(variant_dirs.items()):
        model = attach(model, path, name)
    return model, tok


def save_adapter(model, dest: str | Path, adapter: str | None = None) -> None:
    """Write a PeftModel's LoRA as safetensors into `dest` (usually an `atomic_dir`).

    adapter=None: every adapter of the model in peft's own layout, model card included (a variant's folder,
    which DVC tracks as is). A name: that one adapter out of a stack (the IA beside its variants), with its
    files directly in `dest`: peft writes a named adapter into `dest/<name>/` plus a generic README.md, and
    loaders of the IA expect a flat adapter folder.
    """
    import shutil

    dest = Path(dest)
    if adapter is None:
        model.save_pretrained(dest, safe_serialization=True)
        _sort_config_sets(dest)
        return
    staging = dest / "_peft"
    model.save_pretrained(staging, selected_adapters=[adapter], safe_serialization=True)
    written = staging if adapter == "default" else staging / adapter  # peft writes "default" at the top
    for f in written.iterdir():
        if f.is_file() and f.name != "README.md":
            f.rename(dest / f.name)
    shutil.rmtree(staging)
    _sort_config_sets(dest)


# LoraConfig fields peft holds as sets: it writes them as lists in string-hash order, which changes with
# PYTHONHASHSEED, so the same adapter got different bytes (and DVC hashes) from run to run.
_SET_FIELDS = ("target_modules", "exclude_modules")


def _sort_config_sets(dest: Path) -> None:
    import json

    for path in dest.rglob("adapter_config.json"):
        cfg = json.loads(path.read_text(encoding="utf-8"))
        fixed = {k: sorted(v) if k in _SET_FIELDS and isinstance(v, list) and all(isinstance(x, str) for x in v) else v
                 for k, v in cfg.items()}
        if fixed != cfg:
            path.write_text(json.dumps(fixed, indent=2, sort_keys=True), encoding="utf-8")  # peft's own layout
