"""The tools that keep the science honest, each shown to fire on a run built to trip it and to stay silent
on a healthy one: the health warnings (not learning, chance accuracy, GradScaler skipping, fp16 on the
CPU), the non-finite-loss failure, `vitlab check accumulation`, and seeded CPU runs repeating bit for bit.
"""
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import vitlab.engine.checks as checks
import vitlab.engine.models as models
from vitlab.cli import main as cli_main
from vitlab.config import RunConfig
from vitlab.engine.checks import TOLERANCE, check_accumulation
from vitlab.engine.events import RunFailed, WarningRaised
from vitlab.engine.loop import micro_step
from vitlab.engine.runner import train_run

# 8x8 digits in 2x2 patches of 4 px: 4 tokens + a class token. Learns fast enough that one epoch of 90
# steps ends far from chance (epoch-1 mean train loss 1.45-1.70 and accuracy 59-68 % over seeds 0-3).
TINY_VIT = {"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 1}
LN10 = math.log(10)


def digits_run(name="r", model=None, data=None, **train):
    return RunConfig.model_validate({
        "name": name, "model": model or TINY_VIT, "data": {"dataset": "digits", **(data or {})},
        "train": {"epochs": 1, "batch_size": 16, "lr": 3e-3, "seed": 0, "log_every": 5, "checkpoint": False,
                  **train}})


def train(tmp_path, cfg):
    events = []
    summary = train_run(cfg, experiment="science", runs_dir=tmp_path, emit=events.append)
    return summary, events


def warning_codes(events):
    return [e.code for e in events if isinstance(e, WarningRaised)]


# -- the seed report's attention bug ----------------------------------------------------------------

class BatchMixingAttention(nn.Module):
    """The seed report's attention: `nn.MultiheadAttention(dim, heads)` (batch_first=False, the default)
    handed a (batch, tokens, dim) tensor. It reads it as (sequence, batch, embed), so the sequence it
    attends over is the batch of images: token i of an image attends to token i of the other images,
    never to the other tokens of its own image."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads)

    def forward(self, x, attn_mask=None, is_causal=False):  # timm's Block calls attn(x, attn_mask=, is_causal=)
        return self.mha(x, x, x, need_weights=False)[0]


def with_report_attention(build):
    """vitlab's model factory, with every block's attention swapped for the report's."""

    def build_model(cfg, num_classes, **kwargs):
        model = build(cfg, num_classes, **kwargs)
        for block in model.blocks:
            block.attn = BatchMixingAttention(cfg.model.embed_dim, cfg.model.heads)
        return model

    return build_model


@torch.no_grad()
def test_report_attention_mixes_images_and_blinds_the_class_token():
    torch.manual_seed(0)
    x, others = torch.randn(4, 3, 8, 8), torch.randn(3, 3, 8, 8)
    swapped = torch.cat([x[:1], others])  # image 0 again, among other images
    cfg = digits_run()
    correct, buggy = models.build_model(cfg, 10).eval(), with_report_attention(models.build_model)(cfg, 10).eval()

    # Correct attention: an image's logits are its own, whatever else is in the batch.
    torch.testing.assert_close(correct(swapped)[0], correct(x)[0])
    assert not torch.allclose(correct(x)[0], correct(x)[1])
    # The report's: the class token only ever attends to the other images' class tokens, which are the
    # same learned vector for every image, so it never sees a pixel: every image gets the same logits.
    logits = buggy(x)
    torch.testing.assert_close(logits, logits[:1].expand_as(logits))
    # With mean pooling instead, a patch token attends to the same patch of the other images: an image's
    # prediction changes with the batch it is in.
    pooled = {**TINY_VIT, "class_token": False}
    mean_pool = with_report_attention(models.build_model)(digits_run(model=pooled), 10).eval()
    assert not torch.allclose(mean_pool(swapped)[0], mean_pool(x)[0])


def test_not_learning_fires_on_report_attention_and_not_on_the_correct_one(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "build_model", with_report_attention(models.build_model))
    buggy, events = train(tmp_path, digits_run("report-attention"))
    monkeypatch.undo()
    assert buggy["status"] == "finished"
    # It can only learn the class prior (digits are balanced, so that is ln 10) and one constant answer.
    assert buggy["train_loss"] == pytest.approx(LN10, rel=0.05)
    assert buggy["accuracy"] < 0.15
    assert {"not-learning", "chance-accuracy"} <= set(warning_codes(events))

    correct, events = train(tmp_path, digits_run("batch-first"))
    assert correct["status"] == "finished"
    assert correct["train_loss"] < 0.8 * LN10 and correct["accuracy"] > 0.45
    # a healthy fp32 CPU run raises nothing at all (what else runs on the machine is not its health)
    assert [code for code in warning_codes(events) if code != "cpu-contended"] == []


# -- each health warning on a run built to trigger it -----------------------------------------------

@pytest.mark.parametrize("accuracy, expected", [(0.211, set()), (0.10, {"not-learning", "chance-accuracy"})])
def test_a_loss_near_ln_c_warns_only_with_chance_accuracy(accuracy, expected):
    from vitlab.engine.health import HealthMonitor

    codes = []
    # the quickstart ViT after epoch 1 on digits: loss 2.286 (ln 10 = 2.303) but 21 % (it ends at 94 %)
    HealthMonitor(10, "fp32").on_epoch(1, 2.286, accuracy, lambda code, message: codes.append(code))
    assert set(codes) == expected


def test_a_model_at_chance_during_warmup_is_judged_after_it():
    from vitlab.engine.health import HealthMonitor

    codes = []
    monitor = HealthMonitor(10, "fp32", warmup_epochs=1.5)  # the lr still ramps up in epochs 1 and 2
    for epoch in (1, 2):
        monitor.on_epoch(epoch, 2.30, 0.10, lambda code, message: codes.append(code))
    assert codes == []
    monitor.on_epoch(3, 2.30, 0.10, lambda code, message: codes.append((code, message)))
    assert [c for c, _ in codes] == ["not-learning", "chance-accuracy"] and "after epoch 3" in codes[0][1]


def test_lr_too_small_to_learn_warns_not_learning_and_chance(tmp_path):
    summary, events = train(tmp_path, digits_run("frozen", lr=1e-9))  # 90 Adam steps of 1e-9: the init
    assert summary["status"] == "finished"
    assert summary["train_loss"] == pytest.approx(LN10, rel=0.05) and summary["accuracy"] < 0.15
    codes = warning_codes(events)
    assert {"not-learning", "chance-accuracy"} <= set(codes)
    assert len(codes) == len(set(codes))  # each warning once per run


class HugeInitialScale(torch.amp.GradScaler):
    """GradScaler starting at 2**40 instead of 2**16: the scaled loss gradient (~1e11) overflows fp16 for
    real in the backward pass and GradScaler skips steps until it has halved its way down to a scale that
    fits (~25 steps). vitlab's loop counts what the real GradScaler does; only the start is moved, because
    a tiny model on the CPU does not overflow at the default scale (the control below skips nothing)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "init_scale": 2.0 ** 40})


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")  # skipped steps
def test_scaler_skipping_warns_on_fp16_overflow(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.amp, "GradScaler", HugeInitialScale)  # the runner builds torch.amp.GradScaler(...)
    summary, events = train(tmp_path, digits_run("overflow", data={"limit_train": 480}, precision="fp16",
                                                 log_every=2))
    assert summary["status"] == "finished"
    assert 20 <= summary["skipped_steps"] < summary["steps"] == 30
    assert "scaler-skipping" in warning_codes(events)


def test_fp16_on_cpu_warns_and_default_scale_does_not_skip(tmp_path):
    summary, events = train(tmp_path, digits_run("fp16-cpu", data={"limit_train": 480}, precision="fp16",
                                                 log_every=2))
    assert summary["status"] == "finished" and summary["skipped_steps"] <= 10
    codes = warning_codes(events)
    assert codes[0] == "precision-on-cpu"  # raised at the start, before any step
    assert "scaler-skipping" not in codes


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_non_finite_loss_fails_the_run_with_advice(tmp_path, monkeypatch, precision):
    monkeypatch.setenv("VITLAB_INJECT_FAULT", "nan:2")  # the engine's fault seam: loss * NaN from step 2
    summary, events = train(tmp_path, digits_run("nan", data={"limit_train": 320}, precision=precision))
    assert summary["status"] == "failed"
    assert "train.lr" in summary["error"] and ("bf16" in summary["error"]) == (precision == "fp16")  # overflow
    [failed] = [e for e in events if isinstance(e, RunFailed)]
    assert failed.reason == "non-finite"
    assert summary["train_time_s"] > 0  # the time it trained before the NaN, not 0
    # fp16: GradScaler saw the NaN gradients and skipped those steps; the advice says so.
    assert ("GradScaler skipped" in summary["error"]) == (precision == "fp16")


# -- vitlab check accumulation ---------------------------------------------------------------------

def write_preset(tmp_path, model, name="acc"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        defaults:
          data: {{dataset: digits}}
          train: {{batch_size: 16, accumulation_steps: 4, seed: 0}}
        runs:
          - name: {name}-run
            model: {model}
        """))
    return path


VIT_YAML = "{kind: vit, patch_size: 4, embed_dim: 32, heads: 2, layers: 1}"


def per_micro_batch_mean(model, x, y, window_samples, *args, **kwargs):
    """The usual accumulation bug: each micro-batch's loss is its own mean, not its share of the window's."""
    return micro_step(model, x, y, len(y), *args, **kwargs)


def test_check_accumulation_passes_on_the_real_loop(tmp_path):
    path = write_preset(tmp_path, VIT_YAML)
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "vitlab", "check", "accumulation", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "acc-run: one pass of 64 vs accumulated 16 + 16 + 16 + 16" in done.stdout
    assert "acc-run, last window: one pass of 30 vs accumulated 16 + 14" in done.stdout  # digits: 1438 = 22x64 + 30
    assert done.stdout.rstrip().endswith("ok") and "MISMATCH" not in done.stdout


def test_check_accumulation_catches_broken_loss_scaling(tmp_path, monkeypatch, capsys):
    path = write_preset(tmp_path, VIT_YAML)
    cfg = RunConfig.model_validate({"name": "acc-run", "model": TINY_VIT, "data": {"dataset": "digits"},
                                    "train": {"batch_size": 16, "accumulation_steps": 4}})
    assert check_accumulation(cfg).max_rel_diff < TOLERANCE  # the control, in-process

    monkeypatch.setattr(checks, "micro_step", per_micro_batch_mean)
    result = check_accumulation(cfg)
    assert not result.ok
    # 4 micro-batches of 16 each weighted 1/16 instead of 1/64: every gradient comes out 4x, a relative error of 3.
    assert result.max_rel_diff == pytest.approx(3.0, rel=1e-3)
    # a run without accumulation is checked split in two, not compared with itself (which always passes)
    single = check_accumulation(cfg.model_copy(update={"train": cfg.train.model_copy(update={"accumulation_steps": 1})}))
    assert single.split and single.windows[0].micro_batches == [8, 8]
    assert single.windows[0].max_rel_diff == pytest.approx(1.0, rel=1e-3)
    one = check_accumulation(cfg.model_copy(update={"train": cfg.train.model_copy(update={  # batch 1 too: 1 + 1
        "batch_size": 1, "accumulation_steps": 1})}))
    assert one.split and one.windows[0].micro_batches == [1, 1] and not one.ok
    big = check_accumulation(cfg.model_copy(update={"train": cfg.train.model_copy(update={  # more than the data
        "batch_size": 4096, "accumulation_steps": 1}), "data": cfg.data.model_copy(update={"limit_train": 100})}))
    assert big.windows[0].micro_batches == [50, 50]  # was one micro-batch of all 100, "checked" against itself

    assert cli_main(["check", "accumulation", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "not scaled by the samples of its window" in out


def nominal_batch(model, x, y, window_samples, cfg, *args, **kwargs):
    """The bug only a short last window shows: dividing by the nominal effective batch, not the window's samples."""
    return micro_step(model, x, y, cfg.effective_batch, cfg, *args, **kwargs)


def test_check_accumulation_catches_a_short_last_window_weighed_as_a_full_one(monkeypatch):
    cfg = RunConfig.model_validate({"name": "acc-run", "model": TINY_VIT, "data": {"dataset": "digits"},
                                    "train": {"batch_size": 16, "accumulation_steps": 4}})
    monkeypatch.setattr(checks, "micro_step", nominal_batch)
    result = check_accumulation(cfg)
    first, last = result.windows
    assert first.micro_batches == [16, 16, 16, 16] and first.max_rel_diff < TOLERANCE  # full: no difference here
    assert last.micro_batches == [16, 14] and last.max_rel_diff == pytest.approx(1 - 30 / 64, rel=1e-3)
    assert not result.ok


@pytest.mark.parametrize("drop_path_rate", [0.1, 0.0])
def test_check_accumulation_passes_on_swin(tmp_path, monkeypatch, drop_path_rate):
    """A tiny Hugging Face Swin (its config in a local dir, as model.weights). Two false alarms this guards
    against: stochastic depth (Swin's default drop_path_rate 0.1) drawing other masks in the one pass than
    in the micro-batches, and the key bias (its own tensor in HF Swin), whose true gradient is zero, so both
    gradients are float noise and their relative difference is O(1)."""
    from transformers import SwinConfig

    SwinConfig(embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=2, patch_size=4, image_size=32,
               drop_path_rate=drop_path_rate).save_pretrained(tmp_path)
    cfg = RunConfig.model_validate({"name": "swin", "model": {"kind": "swin", "weights": str(tmp_path)},
                                    "data": {"dataset": "synthetic", "limit_train": 64, "limit_val": 8},
                                    "train": {"batch_size": 4, "accumulation_steps": 4}})
    assert any(".k_proj.bias" in n or ".key.bias" in n for n, _ in models.build_model(cfg, 10).named_parameters())
    result = check_accumulation(cfg)
    assert result.ok, (result.max_rel_diff, result.worst.worst_param)
    monkeypatch.setattr(checks, "micro_step", per_micro_batch_mean)
    assert check_accumulation(cfg).max_rel_diff == pytest.approx(3.0, rel=1e-3)  # still sees a scaling error


def test_check_accumulation_resnet18_notes_batchnorm_and_passes(tmp_path, capsys):
    path = write_preset(tmp_path, "{kind: resnet18}", name="bn")
    assert cli_main(["check", "accumulation", str(path), "--run", "bn-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert "bn-run: one pass of 64 vs accumulated 16 + 16 + 16 + 16" in out
    assert "(tolerance 1e-04) ok" in out and "MISMATCH" not in out
    assert "note: BatchNorm held at running statistics" in out


# -- determinism -----------------------------------------------------------------------------------

def test_seed_makes_cpu_runs_repeat_bit_for_bit(tmp_path):
    def run(seed):
        cfg = digits_run(f"seed{seed}", data={"limit_train": 320, "augment": True}, epochs=2, seed=seed,
                         checkpoint=True)
        summary = train_run(cfg, experiment="det", runs_dir=tmp_path)
        assert summary["status"] == "finished"
        state = torch.load(os.path.join(summary["run_dir"], "checkpoint.pt"), map_location="cpu",
                           weights_only=True)
        return summary, state["model"]

    (a, wa), (b, wb), (c, wc) = run(0), run(0), run(1)
    assert a["run_dir"] != b["run_dir"]
    assert a["eval_loss"] == b["eval_loss"] and a["train_loss"] == b["train_loss"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa) and a["eval_loss"] != c["eval_loss"]


def test_settings_that_change_nothing_are_warned(tmp_path):
    summary, events = train(tmp_path, digits_run("probe-of-nothing", freeze="backbone", momentum=0.5))
    assert summary["status"] == "finished"
    assert {"freeze-scratch", "momentum-unused"} <= set(warning_codes(events))
    _, events = train(tmp_path, digits_run("sgd", data={"limit_train": 64}, optimizer="sgd", momentum=0.5))
    assert "momentum-unused" not in warning_codes(events) and "freeze-scratch" not in warning_codes(events)
    assert "batch-over-data" not in warning_codes(events)  # 16 of 64
    _, events = train(tmp_path, digits_run("big", data={"limit_train": 64}, batch_size=32, accumulation_steps=4))
    [said] = [e.message for e in events if getattr(e, "code", None) == "batch-over-data"]  # "effective batch 128"
    assert said.startswith("the effective batch (128) is more than the 64 training images: each epoch is one")


def test_batchnorm_under_accumulation_is_warned(tmp_path):
    """Accumulation is exact for a model without BatchNorm; with it, statistics are the micro-batch's."""
    stem = {"kind": "vit", "patch_size": 2, "embed_dim": 32, "heads": 2, "layers": 1, "stem": "conv"}
    _, events = train(tmp_path, digits_run("conv-ga", data={"limit_train": 64}, model=stem, batch_size=8,
                                           accumulation_steps=2))
    [said] = [e.message for e in events if getattr(e, "code", None) == "batchnorm-split"]
    assert said.startswith("the conv stem's BatchNorm normalises over each micro-batch of 8, not over the effective "
                           "batch of 16")
    _, events = train(tmp_path, digits_run("conv", data={"limit_train": 64}, model=stem, batch_size=16))
    assert "batchnorm-split" not in warning_codes(events)


@pytest.mark.parametrize("stem, warned", [("imagenet", True), ("cifar", False)])
def test_resnet18s_imagenet_stem_on_cifar_is_warned(tmp_path, stem, warned):
    from datagen import write_cifar

    write_cifar(tmp_path, "cifar10", n_train=16, n_test=8)
    cfg = RunConfig.model_validate({"name": "r18", "model": {"kind": "resnet18", "stem": stem},
                                    "data": {"dataset": "cifar10", "root": str(tmp_path)},
                                    "train": {"epochs": 1, "batch_size": 16, "checkpoint": False}})
    summary, events = train(tmp_path, cfg)
    assert summary["status"] == "finished" and ("resnet-stem" in warning_codes(events)) == warned
    assert summary["eval_split"] == "test" and events[0].eval_split == "test"  # CIFAR's accuracy is on its test split


# -- weight decay ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model, kept", [
    ({"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 1},
     {"cls_token", "pos_embed", "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias", "head.bias"}),
    ({"kind": "swin"}, {"model.swin.encoder.layers.0.blocks.0.attention.relative_position_bias"
                        ".relative_position_bias_table", "model.swin.embeddings.norm.weight"}),
    ({"kind": "resnet18"}, {"bn1.weight", "bn1.bias", "fc.bias"}),
])
def test_weight_decay_spares_embeddings_norms_and_biases(model, kept):
    from vitlab.engine.optim import make_optimizer

    size = 224 if model["kind"] == "swin" else 32
    cfg = RunConfig.model_validate({"name": "wd", "model": model, "train": {"weight_decay": 0.05},
                                    "data": {"dataset": "synthetic", "image_size": size}})
    net = models.build_model(cfg, 10)
    decayed, spared = make_optimizer(cfg, net, torch.device("cpu")).param_groups
    names = {id(p): n for n, p in net.named_parameters()}
    assert (decayed["weight_decay"], spared["weight_decay"]) == (0.05, 0.0)
    assert kept <= {names[id(p)] for p in spared["params"]}
    assert all(p.ndim >= 2 for p in decayed["params"]) and len(decayed["params"]) + len(spared["params"]) == len(names)
    head = "fc.weight" if model["kind"] == "resnet18" else "head.weight" if model["kind"] == "vit" else None
    assert head is None or head in {names[id(p)] for p in decayed["params"]}


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_adamw_decays_weights_apart_from_the_gradient_and_adam_through_it(optimizer):
    # with a zero gradient AdamW's step is the decay alone, w (1 - lr wd); Adam adds wd w to the gradient and
    # normalises it, a step of about lr against the weight's sign. The names alone could not tell one from the other
    from vitlab.engine.optim import make_optimizer

    cfg = RunConfig.model_validate({"name": "wd", "model": TINY_VIT, "data": {"dataset": "synthetic", "image_size": 8},
                                    "train": {"optimizer": optimizer, "lr": 0.1, "weight_decay": 0.05}})
    net = models.build_model(cfg, 10)
    opt = make_optimizer(cfg, net, torch.device("cpu"))
    decayed, spared = ([p.detach().clone() for p in g["params"]] for g in opt.param_groups)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, w0 in zip(opt.param_groups[0]["params"], decayed):
        g = 0.05 * w0  # Adam's gradient; its first step is lr g / (|g| + eps)
        expected = w0 * (1 - 0.1 * 0.05) if optimizer == "adamw" else w0 - 0.1 * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(p, w0) for p, w0 in zip(opt.param_groups[1]["params"], spared))  # no decay there
