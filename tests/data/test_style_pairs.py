"""Style pairs: files on disk (grayscale note, missing file, too-small style, non-image),
DIV2K contents in the real layout (``DIV2K_valid_HR/0801.png``), named embedded pairs,
procedural textures."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.io
import torch

from cvloss.data.style_pairs import (STYLE_TEXTURES, DatasetError, load_pair_files, load_style_pairs, parse_pairs,
                                     procedural_texture)


def _png(path, shape, seed=0):
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(str(path), img, check_contrast=False)
    return path


def test_files_keep_aspect_and_convert_grayscale_with_a_note(tmp_path):
    c = _png(tmp_path / "c.png", (40, 60, 3))
    s = _png(tmp_path / "s.png", (30, 50))  # grayscale, short side 30 >= 40 / 4
    pairs = load_pair_files(c, s, size=20, style_size=24)
    assert pairs.contents.shape == (1, 3, 20, 30) and pairs.styles.shape == (1, 3, 24, 40)
    assert pairs.explicit and pairs.pairs == ((0, 0),) and pairs.name == "files"
    assert torch.equal(pairs.styles[0, 0], pairs.styles[0, 1]) and torch.equal(pairs.styles[0, 0], pairs.styles[0, 2])
    assert pairs.notes and "grayscale" in pairs.notes[0] and "s.png" in pairs.notes[0]
    assert 0 <= float(pairs.contents.min()) and float(pairs.contents.max()) <= 1


def test_bad_files_give_one_clear_line(tmp_path):
    c = _png(tmp_path / "c.png", (200, 240, 3))
    small = _png(tmp_path / "small.png", (40, 40, 3))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    cases = [
        (dict(content=str(tmp_path / "nope.png"), style=str(small)), "content image .*nope.png' does not exist"),
        (dict(content=str(c), style=str(small)), r"less than 1/4 of the content's short side.*at least 50 px"),
        (dict(content=str(c), style=str(text)), "style image .* is not a readable image"),
        (dict(content=str(c)), "give both a content and a style image"),
    ]
    for kwargs, match in cases:
        with pytest.raises(DatasetError, match=match) as err:
            load_style_pairs(None, "val", size=16, **kwargs)
        assert "\n" not in str(err.value)


def test_div2k_contents_in_the_real_layout(tmp_path):
    root = tmp_path / "div2k"
    for i in (801, 802):
        _png(root / "DIV2K_valid_HR" / f"0{i}.png", (36, 48, 3), seed=i)
    for i in (700, 701):  # the last train id and the first val id of DIV2K_train_HR
        _png(root / "DIV2K_train_HR" / f"0{i}.png", (36, 48, 3), seed=i)
    pairs = load_style_pairs(root, "test", size=16, source="div2k")
    assert pairs.content_names == ("0801", "0802") and pairs.style_names == STYLE_TEXTURES
    assert pairs.contents.shape == (2, 3, 16, 16) and pairs.styles.shape == (5, 3, 16, 16)
    assert len(pairs.pairs) == 10 and not pairs.explicit and pairs.split == "test"
    val = load_style_pairs(root, "val", size=16, source="div2k")  # DIV2K's val ids, disjoint from test
    assert val.content_names == ("0701",) and val.split == "val"
    assert load_style_pairs(root, "train", size=16, source="div2k").content_names == ("0701",)  # = val
    with pytest.raises(DatasetError, match="cvloss datasets download div2k"):
        load_style_pairs(tmp_path / "empty", "test", size=16, source="div2k")


def test_named_embedded_pairs():
    pairs = load_style_pairs(None, "train", size=24, pairs="chelsea:waves,coffee:gravel,chelsea:gravel")
    assert pairs.content_names == ("chelsea", "coffee") and pairs.style_names == ("waves", "gravel")
    assert pairs.pairs == ((0, 0), (1, 1), (0, 1)) and pairs.explicit and pairs.real == "div2k"
    assert pairs.pair_names() == ["chelsea:waves", "coffee:gravel", "chelsea:gravel"]
    assert pairs.contents.shape == (2, 3, 24, 24)
    assert parse_pairs(" astronaut:brick ,") == [("astronaut", "brick")]
    for bad in ("astronaut", "astronaut:marble", "lena:brick", ","):
        with pytest.raises(DatasetError):
            parse_pairs(bad)


def test_procedural_textures_are_deterministic_colour_images():
    for name in ("waves", "mosaic"):
        a, b = procedural_texture(name, 48), procedural_texture(name, 48)
        assert a.shape == (48, 48, 3) and a.dtype == np.float32 and np.array_equal(a, b)
        assert 0 <= a.min() and a.max() <= 1 and a.std() > 0.1
        assert np.abs(a[..., 0] - a[..., 2]).mean() > 0.05  # coloured, unlike the skimage textures
    assert not np.array_equal(procedural_texture("mosaic", 48, seed=1), procedural_texture("mosaic", 48))
    with pytest.raises(DatasetError, match="unknown procedural texture"):
        procedural_texture("marble", 8)
