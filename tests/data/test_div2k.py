"""DIV2K loader on a fixture in the real on-disk layout (HR + official bicubic LR files,
an image whose size is not a multiple of the scale), pairing rules and the downsampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data.div2k import SPLIT_IDS, bicubic_downsample, check_scale, load_div2k, make_pair
from cvloss.data.registry import extraction_marker, get_dataset, load_dataset
from cvloss.data.types import DatasetError


def _png(path, h, w, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


@pytest.fixture
def div2k(tmp_path):
    """<data-dir>/div2k: train 0001 (48x40), 0002 (38x50: not a multiple of 4), 0700
    (the last train id) and 0701, 0800 (val ids, also in DIV2K_train_HR); official X4 LR
    for them, with MATLAB's ceil sizes (0002x4 is 10x13); valid 0801 without LR; files that
    must be ignored (out-of-range id, non-PNG, odd name)."""
    root = tmp_path / "div2k"
    hr = {"0001": _png(root / "DIV2K_train_HR/0001.png", 40, 48, 1),
          "0002": _png(root / "DIV2K_train_HR/0002.png", 38, 50, 2)}
    _png(root / "DIV2K_train_LR_bicubic/X4/0001x4.png", 10, 12, 3)
    _png(root / "DIV2K_train_LR_bicubic/X4/0002x4.png", 10, 13, 4)
    for i, name in enumerate(("0700", "0701", "0800")):
        hr[name] = _png(root / f"DIV2K_train_HR/{name}.png", 16, 16, 10 + i)
        _png(root / f"DIV2K_train_LR_bicubic/X4/{name}x4.png", 4, 4, 20 + i)
    _png(root / "DIV2K_train_HR/0801.png", 8, 8, 5)  # a test id in the train folder
    (root / "DIV2K_train_HR/notes.txt").write_text("not an image")
    _png(root / "DIV2K_train_HR/0003_copy.png", 8, 8, 6)
    _png(root / "DIV2K_valid_HR/0801.png", 36, 30, 7)
    _png(root / "DIV2K_valid_HR/0700.png", 8, 8, 8)  # a train id in the valid folder
    return root, hr


def test_train_split_reads_hr_and_official_lr_in_name_order(div2k):
    root, hr = div2k
    data = load_div2k(root, "train", scale=4)
    assert data.names == ("0001", "0002", "0700") and data.name == "div2k" and data.real is None
    assert [tuple(t.shape) for t in data.hr] == [(3, 40, 48), (3, 38, 50), (3, 16, 16)]
    assert data.hr[1].dtype == torch.uint8
    assert torch.equal(data.hr[1].permute(1, 2, 0), torch.from_numpy(hr["0002"]))
    assert [tuple(t.shape) for t in data.lr[4]] == [(3, 10, 12), (3, 10, 13), (3, 4, 4)]


def test_three_splits_are_disjoint_id_ranges(div2k):
    root, hr = div2k
    splits = {s: load_div2k(root, s, scale=4) for s in ("train", "val", "test")}
    assert splits["val"].names == ("0701", "0800") and 4 in splits["val"].lr  # from DIV2K_train_HR and its LR
    assert splits["test"].names == ("0801",) and splits["test"].lr == {}  # DIV2K_valid_HR only
    names = [set(d.names) for d in splits.values()]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
    assert torch.equal(splits["val"].hr[0].permute(1, 2, 0), torch.from_numpy(hr["0701"]))
    again = load_div2k(root, "val", scale=4)  # deterministic
    assert again.names == splits["val"].names and all(torch.equal(a, b) for a, b in zip(again.hr, splits["val"].hr))
    assert SPLIT_IDS == {"train": ("train", 1, 700), "val": ("train", 701, 800), "test": ("valid", 801, 900)}


def test_pair_crops_hr_to_scale_times_lr_when_size_is_not_a_multiple(div2k):
    root, _ = div2k
    data = load_div2k(root, "train", scale=4)
    h, l = make_pair(data.hr[1], 4, data.lr[4][1])  # HR 38x50, LR 10x13 (ceil) -> 9x12 and 36x48
    assert tuple(l.shape) == (3, 9, 12) and tuple(h.shape) == (3, 36, 48)
    assert torch.equal(h, data.hr[1][:, :36, :48]) and torch.equal(l, data.lr[4][1][:, :9, :12])
    h, l = make_pair(data.hr[1], 3)  # no official LR: crop to 36x48, bicubic LR 12x16
    assert tuple(h.shape) == (3, 36, 48) and tuple(l.shape) == (3, 12, 16)


def test_valid_split_without_lr_folder_and_limit(div2k):
    root, _ = div2k
    data = load_div2k(root, "test", scale=2)
    assert data.names == ("0801",) and data.lr == {}
    assert load_div2k(root, "train", limit=1).names == ("0001",)


def test_registry_loads_it_from_the_data_dir(div2k):
    root, _ = div2k
    for f in get_dataset("div2k").files:  # as `cvloss datasets download` leaves it
        extraction_marker(root, f.filename).touch()
    data = load_dataset("div2k", "train", data_dir=root.parent, scale=4, task="sr")
    assert data.names == ("0001", "0002", "0700") and 4 in data.lr
    test = load_dataset("div2k", "test", data_dir=root.parent, task="sr", optional={"scale": 4})
    assert test.names == ("0801",)


def test_errors_are_one_line(div2k, tmp_path):
    root, _ = div2k
    with pytest.raises(DatasetError, match="cvloss datasets download div2k"):
        load_div2k(tmp_path / "nowhere", "train")
    (root / "DIV2K_train_LR_bicubic/X4/0002x4.png").unlink()
    with pytest.raises(DatasetError, match="lacks the LR files of 0002"):
        load_div2k(root, "train", scale=4)
    with pytest.raises(DatasetError, match="2, 3 or 4"):
        check_scale(5)
    with pytest.raises(DatasetError, match="unknown split 'valid' for div2k"):
        load_div2k(root, "valid")


def test_bicubic_downsample_matches_pil_bicubic_and_keeps_constants():
    # PIL's BICUBIC reduce is Keys a=-0.5 widened by the scale: the same kernel as ours.
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(64, 64), mode="bilinear")
    hr = (smooth[0] * 255).round().to(torch.uint8)
    ours = bicubic_downsample(hr, 4).permute(1, 2, 0).numpy().astype(int)
    pil = np.asarray(Image.fromarray(hr.permute(1, 2, 0).numpy()).resize((16, 16), Image.BICUBIC)).astype(int)
    assert np.abs(ours - pil).max() <= 1
    const = torch.full((3, 12, 12), 77, dtype=torch.uint8)
    assert torch.equal(bicubic_downsample(const, 3), torch.full((3, 4, 4), 77, dtype=torch.uint8))
    with pytest.raises(ValueError, match="not a multiple"):
        bicubic_downsample(const[:, :11], 2)
