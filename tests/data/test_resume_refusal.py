"""A resume on other training data is refused, for every DataModule and every option that changes
the inputs or the targets (issue 8); the same data, or an option that changes neither, resumes."""

from __future__ import annotations

import pytest
import torch

import train
from lit_memo.data import DigitsDataModule, MNISTDataModule, SyntheticDataModule

SYNTH = dict(n=40, d=5, seed=0)
DIGITS = dict(subset_size=200, flatten=True, seed=0)


def record(dm):
    dm.setup("fit")
    return dm.state_dict()


@pytest.mark.parametrize("change,part,option", [
    (dict(seed=1), "inputs and targets", "seed: 0 -> 1"),
    (dict(n=41), "inputs and targets", "n: 40 -> 41"),
    (dict(d=6), "inputs and targets", "d: 5 -> 6"),  # the labels are drawn after x from one stream
    (dict(labels="sign"), "targets", "labels: 'gaussian' -> 'sign'"),
    (dict(labels="teacher"), "targets", "labels"),
])
def test_synthetic_resume_on_other_data_is_refused(change, part, option):
    saved = record(SyntheticDataModule(**SYNTH))
    other = SyntheticDataModule(**{**SYNTH, **change})
    other.setup("fit")
    with pytest.raises(ValueError, match=f"training {part} differ") as err:
        other.load_state_dict(saved)
    assert option in str(err.value)


def test_same_training_data_resumes():
    saved = record(SyntheticDataModule(**SYNTH))
    same = SyntheticDataModule(**SYNTH, n_test=10, batches_per_epoch=3)  # held-out split and epoch length: not training data
    same.setup("fit")
    same.load_state_dict(saved)
    # a checkpoint loaded before setup is checked by setup
    other = SyntheticDataModule(**{**SYNTH, "seed": 5})
    other.load_state_dict(saved)
    with pytest.raises(ValueError, match="seed: 0 -> 5"):
        other.setup("fit")


@pytest.mark.parametrize("change,part", [
    (dict(seed=1), "subset"),
    (dict(subset_size=201), "subset"),
    (dict(random_labels=True), "targets"),
    (dict(label_noise=0.2), "targets"),
    (dict(targets="float"), "targets"),
    (dict(normalize=True), "inputs"),
    (dict(unit_norm=True), "inputs"),
    (dict(noise_std=0.01), "inputs"),
    (dict(pca_dim=20), "inputs"),
    (dict(normalize=True, mean=[0.3], std=[0.4]), "inputs"),
])
def test_image_resume_on_other_data_is_refused(change, part):
    saved = record(DigitsDataModule(**DIGITS))
    other = DigitsDataModule(**{**DIGITS, **change})
    other.setup("fit")
    with pytest.raises(ValueError, match=f"training .*{part}.* differ"):
        other.load_state_dict(saved)
    DigitsDataModule(**DIGITS, num_workers=0, test_size=297).load_state_dict(saved)  # before setup: nothing to compare yet


def test_image_resume_with_changed_files_on_disk_is_refused(monkeypatch):
    saved = record(DigitsDataModule(**DIGITS))
    other = DigitsDataModule(**DIGITS)
    real = DigitsDataModule._split_images
    monkeypatch.setattr(DigitsDataModule, "_split_images", lambda self, split, idx: real(self, split, idx).flip(-1))
    other.setup("fit")
    with pytest.raises(ValueError, match="training inputs differ .*same options: the data on disk changed"):
        other.load_state_dict(saved)


def test_another_datamodule_is_refused():
    saved = record(SyntheticDataModule(**SYNTH))
    digits = DigitsDataModule(**DIGITS)
    digits.setup("fit")
    with pytest.raises(ValueError, match="trained on SyntheticDataModule, not DigitsDataModule"):
        digits.check_training_set(saved["training_set"])


def test_mnist_pca_and_noise_fingerprint(data_root):
    opts = dict(data_dir=str(data_root), subset_size=300, flatten=True, unit_norm=True, seed=0)
    saved = record(MNISTDataModule(**opts, pca_dim=50))
    other = MNISTDataModule(**opts, pca_dim=50, noise_std=0.05)
    other.setup("fit")
    with pytest.raises(ValueError, match="training inputs differ.*noise_std: 0.0 -> 0.05"):
        other.load_state_dict(saved)


@pytest.mark.slow
def test_train_resume_with_another_data_seed_is_refused(tmp_path):
    """The issue's case: a synthetic run resumed with another data seed used to train on (loss 0.02 -> 0.42)."""
    common = ["--config", "synthetic_narrow.yaml", "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
              "--wandb_mode=disabled", f"--output_dir={tmp_path}"]
    train.main([*common, "--trainer.max_steps=50"])
    (ckpt,) = tmp_path.glob("*/*/checkpoints/last.ckpt")
    assert torch.load(ckpt, weights_only=False)["SyntheticDataModule"]["training_set"]["fingerprint"]
    with pytest.raises(SystemExit, match="^error: .*seed: 0 -> 1"):  # one line, before the run folder exists
        train.main([*common, "--trainer.max_steps=100", "--data.init_args.seed=1", f"--ckpt_path={ckpt}"])
    assert len(list(tmp_path.glob("*/*/"))) == 1
    resumed = train.main([*common, "--trainer.max_steps=100", f"--ckpt_path={ckpt}"])
    assert resumed.trainer.global_step == 100


def test_check_checkpoint_reads_the_record_under_any_key():
    """What a pre-flight check calls with a loaded checkpoint, before any run folder exists."""
    checkpoint = {"SyntheticDataModule": record(SyntheticDataModule(**SYNTH)), "state_dict": {}}
    same = SyntheticDataModule(**SYNTH)
    same.setup("fit")
    same.check_checkpoint(checkpoint)
    digits = DigitsDataModule(**DIGITS)
    digits.setup("fit")
    with pytest.raises(ValueError, match="trained on SyntheticDataModule, not DigitsDataModule"):
        digits.check_checkpoint(checkpoint)


def test_teacher_labels_do_not_depend_on_the_held_out_size():
    """A held-out split of another size must not change the training targets (so a resume is accepted)."""
    plain = SyntheticDataModule(n=997, d=50, labels="teacher", n_test=0)
    bigger = SyntheticDataModule(n=997, d=50, labels="teacher", n_test=517)
    for dm in (plain, bigger):
        dm.setup("fit")
    assert plain.training_set_fingerprint() == bigger.training_set_fingerprint()


def _rounded(value, rel=1e-6):
    """``value`` moved by a relative ``rel``: what another machine's BLAS/SIMD rounding does to a fitted float."""
    return value * (1 + rel)


@pytest.mark.parametrize("rel,accepted", [(1e-6, True), (1e-2, False)])
def test_image_resume_compares_fitted_statistics_up_to_rounding(monkeypatch, rel, accepted):
    """Format 1 hashed the fitted mean/std/PCA bitwise: a resume on another machine was refused."""
    import lit_memo.data.image as image
    from lit_memo.data.transforms import PCAProjection

    opts = dict(DIGITS, normalize=True, pca_dim=20)
    first = DigitsDataModule(**opts)
    saved = record(first)
    stats, fit = image.channel_stats, PCAProjection.fit
    monkeypatch.setattr(image, "channel_stats", lambda batches: tuple(_rounded(t, rel) for t in stats(batches)))
    monkeypatch.setattr(PCAProjection, "fit", classmethod(lambda cls, x, k: PCAProjection(
        *(_rounded(t, rel) for t in (lambda p: (p.mean, p.components, p.explained_variance_ratio))(fit(x, k))))))
    other = DigitsDataModule(**opts)
    other.setup("fit")
    assert not torch.equal(other.splits["train"].images, first.splits["train"].images)  # the inputs' last bits moved
    if accepted:
        other.load_state_dict(saved)
        return
    with pytest.raises(ValueError, match="training PCA variances and normalisation statistics differ .*same options: "
                                         "the data on disk changed"):
        other.load_state_dict(saved)


def test_synthetic_resume_compares_the_data_up_to_rounding(monkeypatch):
    saved = record(SyntheticDataModule(**SYNTH, labels="teacher"))
    make = SyntheticDataModule.make_tensors
    monkeypatch.setattr(SyntheticDataModule, "make_tensors", lambda self: tuple(
        torch.nextafter(t, torch.full_like(t, 2.0)) for t in make(self)))  # every value one ulp up
    same = SyntheticDataModule(**SYNTH, labels="teacher")
    same.setup("fit")
    same.load_state_dict(saved)
    other = SyntheticDataModule(**{**SYNTH, "seed": 1}, labels="teacher")
    other.setup("fit")
    with pytest.raises(ValueError, match="training inputs and targets differ .*seed: 0 -> 1"):
        other.load_state_dict(saved)


def test_another_subset_or_seed_is_refused_with_the_fix():
    saved = record(DigitsDataModule(**DIGITS, normalize=True))
    for change, option in ((dict(seed=1), "seed: 0 -> 1"), (dict(subset_size=150), "subset_size: 200 -> 150")):
        other = DigitsDataModule(**{**DIGITS, "normalize": True, **change})
        other.setup("fit")
        with pytest.raises(ValueError) as err:
            other.load_state_dict(saved)
        message = str(err.value)
        parts, rest = message.split(" differ from those the checkpoint was trained on (data options changed: ")
        assert parts.startswith("DigitsDataModule: the training ") and "subset" in parts, message
        assert option in rest and "resume with the checkpoint's data options, or start a new run without --ckpt_path" in rest


def test_a_format_1_record_is_checked_where_it_can_be():
    """A checkpoint written before format 2 hashed the inputs bitwise: that part is skipped (with a
    warning), the subset and labels are still compared."""
    saved = record(DigitsDataModule(**DIGITS))
    old = saved["training_set"]
    old.pop("format")
    old["fingerprint"]["inputs"] = "0123456789abcdef"
    same = DigitsDataModule(**DIGITS)
    same.setup("fit")
    with pytest.warns(UserWarning, match="older format .* its inputs cannot be compared .*checked: subset, targets"):
        same.load_state_dict(saved)
    other = DigitsDataModule(**{**DIGITS, "seed": 1})
    other.setup("fit")
    with pytest.raises(ValueError, match="training subset and targets differ .*seed: 0 -> 1"), pytest.warns(UserWarning):
        other.load_state_dict(saved)
