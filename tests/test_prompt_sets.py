"""Prompt sets of a model entry (what the generic `sample` rule generates): fixed prompts x seeds, or the reports
of manifest splits kept with their source row for paired and label-based evaluation."""
import pandas as pd
import pytest

from medsynth.errors import MedsynthError
from medsynth.sampling.prompt_sets import resolve_prompt_set


def test_prompt_sets():
    t = resolve_prompt_set({"prompts": ["a", "b"], "n_per_prompt": 2, "seed": 5})
    assert t["prompt"].tolist() == ["a", "a", "b", "b"] and t["seed"].tolist() == [5, 6, 5, 6]
    named = resolve_prompt_set({"prompts": {"neg": "a", "pos": "b"}, "n_per_prompt": 2, "seed": 5})
    assert named["prompt_name"].tolist() == ["neg", "neg", "pos", "pos"]
    assert named[["prompt", "seed"]].equals(t)  # the same prompts and seeds as the list form
    df = pd.DataFrame({"id": ["x", "y", "z"], "image": ["1.png", "2.png", "3.png"], "split": ["train", "val", "test"],
                       "prompt": ["p1", "p2", "p3"], "source": ["/raw/1.dcm"] * 3, "Edema": [0.0, 1.0, 0.0]})
    s = resolve_prompt_set({"splits": ["val", "test"], "seed": 1}, df)
    assert s["source_id"].tolist() == ["y", "z"] and s["source_image"].tolist() == ["2.png", "3.png"]
    assert "source" not in s and s["Edema"].tolist() == [1.0, 0.0]
    with pytest.raises(MedsynthError):
        resolve_prompt_set({"prompts": ["a"], "splits": ["val"]}, df)
    with pytest.raises(MedsynthError, match="no rows"):
        resolve_prompt_set({"splits": ["test"]}, df[df["split"] == "train"])


def test_named_prompts_with_labels_are_a_designed_labelled_set():
    spec = {"prompts": {"normal": "clear", "eff": "effusion", "cons": "consolidation"}, "n_per_prompt": 2, "seed": 0,
            "labels": {"normal": {"No Finding": 1}, "eff": {"Pleural Effusion": 1},
                       "cons": {"Consolidation": 1, "Lung Opacity": 1}}}
    t = resolve_prompt_set(spec)
    assert list(t.columns) == ["prompt_name", "prompt", "seed", "No Finding", "Pleural Effusion", "Consolidation",
                               "Lung Opacity"]
    assert t["Pleural Effusion"].tolist() == [0, 0, 1, 1, 0, 0] and t["No Finding"].tolist() == [1, 1, 0, 0, 0, 0]
    assert t["Lung Opacity"].tolist() == [0, 0, 0, 0, 1, 1]
    with pytest.raises(MedsynthError, match="needs named prompts"):
        resolve_prompt_set({"prompts": ["a"], "labels": {"a": {"Edema": 1}}})
    with pytest.raises(MedsynthError, match="does not have"):
        resolve_prompt_set({"prompts": {"a": "x"}, "labels": {"b": {"Edema": 1}}})
