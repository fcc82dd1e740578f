"""Gradient accumulation is exact: 64x1, 16x4 and 8x8 reach the same weights, partial last window included."""
import pytest
import torch
import torch.nn.functional as F

from vitlab.config import RunConfig
from vitlab.engine.loop import epoch_order, train_epoch, windows
from vitlab.engine.runner import Run
from vitlab.engine.store import RunStore


def cfg(batch, accum, **train):
    return RunConfig.model_validate({
        "name": f"ga-{batch}x{accum}",
        "model": {"kind": "vit", "patch_size": 4, "embed_dim": 32, "heads": 2, "layers": 1},
        # 200 samples: 3 full windows of 64 and a partial one of 8
        "data": {"dataset": "synthetic", "image_size": 16, "limit_train": 200, "limit_val": 64, "augment": True},
        "train": {"epochs": 2, "batch_size": batch, "accumulation_steps": accum, "lr": 1e-3, "seed": 3,
                  "checkpoint": False, **train},
    })


def final_weights(tmp_path, config):
    run = Run(config, RunStore.create(tmp_path, "ga", config.name), experiment="ga", emit=lambda e: None,
              should_stop=lambda: False, index=0, total_runs=1)
    run.store.write_config(config.resolved())
    run.setup()
    run.train()
    return {k: v.detach().clone() for k, v in run.model.state_dict().items()}, run.evals


def test_order_depends_on_seed_and_epoch_only():
    assert torch.equal(epoch_order(100, 1, 2), epoch_order(100, 1, 2))
    assert not torch.equal(epoch_order(100, 1, 2), epoch_order(100, 1, 3))
    plan = windows(epoch_order(200, 0, 0), 16, 4)
    assert [w.samples for w in plan] == [64, 64, 64, 8]
    assert [len(m) for m in plan[-1].micro] == [8]


def test_distributed_windows_split_the_same_steps():
    """Two ranks at 16x2 see exactly the samples one process sees at 64x1, window by window."""
    order = epoch_order(203, 0, 1)
    single = windows(order, 64, 1)
    ranks = [windows(order, 16, 2, world=2, rank=r) for r in (0, 1)]
    assert [w.samples for w in single] == [w.samples for w in ranks[0]] == [w.samples for w in ranks[1]]
    for i, w in enumerate(single):
        together = torch.cat([m for r in ranks for m in r[i].micro if r[i].weight])
        assert torch.equal(together, torch.cat(w.micro))
    # a last window shorter than the world: the idle rank still joins the all-reduce, with weight 0
    tiny = windows(torch.arange(65), 32, 1, world=2, rank=1)
    assert tiny[-1].weight == 0 and tiny[-1].samples == 1


def without_key_bias(weights, dim=32):
    """The key part of the qkv bias has a true gradient of exactly zero (softmax ignores a shift shared by
    all keys), so it only ever sees float noise; Adam divides that noise by its own size and moves it by
    ~lr per step in a direction set by rounding. It never changes an output, so it is left out."""
    out = dict(weights)
    out["blocks.0.attn.qkv.bias"] = torch.cat([weights["blocks.0.attn.qkv.bias"][:dim],
                                               weights["blocks.0.attn.qkv.bias"][2 * dim:]])
    return out


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_micro_batch_split_reaches_same_weights(tmp_path, optimizer):
    ref, ref_evals = final_weights(tmp_path, cfg(64, 1, optimizer=optimizer))
    for batch, accum in ((16, 4), (8, 8)):
        got, evals = final_weights(tmp_path, cfg(batch, accum, optimizer=optimizer))
        compared = without_key_bias(got) if optimizer == "adamw" else got
        for name, tensor in (without_key_bias(ref) if optimizer == "adamw" else ref).items():
            torch.testing.assert_close(compared[name], tensor, rtol=1e-5, atol=1e-6, msg=f"{name} at {batch}x{accum}")
        assert evals[-1]["train_loss"] == pytest.approx(ref_evals[-1]["train_loss"], rel=1e-5)
        assert evals[-1]["eval_loss"] == pytest.approx(ref_evals[-1]["eval_loss"], rel=1e-5)


def test_each_step_descends_the_mean_cross_entropy_of_its_window_short_last_window_included(tmp_path):
    # The split tests above compare the loop with itself: a loss summed unscaled, or a short window divided by the
    # nominal batch, is the same at 64x1 as at 16x4. Here one plain SGD step of the real loop (one window through
    # train_epoch) is compared with w0 - lr * the gradient of F.cross_entropy's mean over the window's samples.
    config = cfg(16, 4, optimizer="sgd", momentum=0.0, lr=0.5, epochs=1)
    config = config.model_copy(update={"data": config.data.model_copy(update={"limit_train": 212})})
    run = Run(config, RunStore.create(tmp_path, "ga", config.name), experiment="ga", emit=lambda e: None,
              should_stop=lambda: False, index=0, total_runs=1)
    run.setup()
    order = epoch_order(212, 3, 0)
    plan = windows(order, 16, 4)
    assert [w.samples for w in plan] == [64, 64, 64, 20] and [len(m) for m in plan[-1].micro] == [16, 4]
    for window in (plan[0], plan[-1]):
        params = dict(run.model.named_parameters())
        w0 = {k: p.detach().clone() for k, p in params.items()}
        [(x, y)] = run.data.train.batches([torch.cat(window.micro)], epoch=0, augment=True)
        grads = torch.autograd.grad(F.cross_entropy(run.model(x), y), list(params.values()))
        run.steps.begin_epoch(order, 0, iter(run.data.train.batches(window.micro, epoch=0, augment=True)))
        train_epoch(run.steps, [window], model=run.model, dist=run.dist, scheduler=run.scheduler, cfg=config.train,
                    device=run.device, step=0, on_log=lambda *a: None, should_stop=lambda: False)
        for (name, p), g in zip(params.items(), grads):
            torch.testing.assert_close(p.detach() - w0[name], -0.5 * g, rtol=1e-4, atol=1e-7,
                                       msg=f"{name}, window of {window.samples}")


def test_broken_scaling_is_detected(tmp_path, monkeypatch):
    """The equivalence test above can fail: with the per-micro-batch mean (the usual bug) weights diverge."""
    import vitlab.engine.loop as loop

    ref, _ = final_weights(tmp_path, cfg(64, 1))
    real = F.cross_entropy

    def per_micro_mean(logits, y, reduction="mean", label_smoothing=0.0):
        # sum / window_samples becomes mean / window_samples: a micro-batch-size-dependent scale
        return real(logits, y, reduction="mean", label_smoothing=label_smoothing)

    monkeypatch.setattr(loop.F, "cross_entropy", per_micro_mean)
    got, _ = final_weights(tmp_path, cfg(8, 8))
    assert any(not torch.allclose(got[k], ref[k], rtol=1e-4, atol=1e-5) for k in ref)


def test_scheduler_warms_up_linearly_then_follows_the_cosine_to_zero():
    from vitlab.engine.optim import make_scheduler

    cfg = RunConfig.model_validate({"name": "s", "model": {"kind": "resnet18"}, "train": {
        "epochs": 4, "lr": 0.1, "scheduler": "cosine", "warmup_epochs": 1}})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:3] == pytest.approx([0.01, 0.02, 0.03]) and lrs[9] == pytest.approx(0.1)  # warmup reaches lr
    assert lrs[10] == pytest.approx(0.1) and lrs[25] == pytest.approx(0.05)  # the cosine's midpoint
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.1 / 100
    flat = make_scheduler(cfg.model_copy(update={"train": cfg.train.model_copy(update={"scheduler": "none"})}),
                          optimizer := torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 10)
    for _ in range(12):
        optimizer.step()
        flat.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # warmup, then constant
