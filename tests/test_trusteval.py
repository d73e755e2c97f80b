"""Trustworthy evaluation: subject-aware hold-out, confidence intervals, McNemar, study warnings.

All data is synthetic and tiny: label arrays, file-name lists, and a few 16x16 PNGs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data.dataset import Split
from ferkit.data.groups import (
    NO_GROUP_WARNING,
    describe,
    detect_groups,
    group_split,
    groups_from_regex,
    hold_out,
)
from ferkit.errors import FerkitError
from ferkit.evaluation.stats import (
    bootstrap_macro_f1,
    intervals,
    mcnemar,
    verdict,
    wilson_interval,
)


def _split(refs: list[str], labels: list[int], classes=("angry", "happy", "sad")) -> Split:
    n = len(refs)
    return Split("train", np.zeros((n, 4, 4, 1), np.uint8), np.asarray(labels, np.int64),
                 list(refs), list(classes), list(classes))  # fmt: skip


def _ck_refs(subjects: int, frames: int = 4, classes: int = 3) -> tuple[list[str], list[int]]:
    """CK+-style items: every subject poses every class in a sequence of frames."""
    refs, labels = [], []
    for s in range(1, subjects + 1):
        for c in range(classes):
            for f in range(1, frames + 1):
                refs.append(
                    f"/data/ck/{['angry', 'happy', 'sad'][c]}/S{s:03d}_{c + 1:03d}_{f:08d}.png"
                )
                labels.append(c)
    return refs, labels


# -- group-aware hold-out ------------------------------------------------------------------


def test_ck_names_are_detected() -> None:
    refs, _ = _ck_refs(5)
    label, _, groups = detect_groups(refs)
    assert label.startswith("CK+")
    assert groups[0] == "S001" and set(groups.tolist()) == {f"S{i:03d}" for i in range(1, 6)}


@pytest.mark.parametrize(
    ("name", "other", "subject"),
    [("Rafd090_01_Caucasian_female_angry_frontal.jpg", "Rafd090_02_Caucasian_male_sad_left.jpg",
      "01"), ("subject12_happy_3.png", "subject7_sad_1.png", "12"),
     ("KA.AN1.39.tiff", "MK.HA2.40.tiff", "KA"), ("AF01ANS.JPG", "BM02HAS.JPG", "F01")],
)  # fmt: skip
def test_other_subject_patterns(name: str, other: str, subject: str) -> None:
    refs = [f"/d/x/{name}", f"/d/y/{name}", f"/d/x/{other}"]
    found = detect_groups(refs)
    assert found is not None and found[2][0] == subject


@pytest.mark.parametrize("seed", range(5))
def test_group_split_never_shares_a_subject(seed: int) -> None:
    rng = np.random.default_rng(seed)
    subjects = int(rng.integers(12, 40))
    refs, labels = _ck_refs(subjects, frames=int(rng.integers(1, 5)))
    groups = detect_groups(refs)[2]
    train, val = group_split(np.asarray(labels), groups, 0.1, seed)
    assert len(val) > 0 and len(train) + len(val) == len(refs)
    assert not set(groups[train].tolist()) & set(groups[val].tolist())
    assert set(np.asarray(labels)[val].tolist()) == {0, 1, 2}  # every class held out


def test_hold_out_groups_by_regex_and_records_it() -> None:
    refs, labels = _ck_refs(20)
    refs = [r.replace("/S", "/person-") for r in refs]  # no automatic pattern matches now
    train, val, info = hold_out(_split(refs, labels), 0, group_by=r"person-(\d+)_")
    subject = lambda ref: ref.split("person-")[1][:3]  # noqa: E731
    assert not {subject(r) for r in train.refs} & {subject(r) for r in val.refs}
    assert info["method"] == "group" and info["source"] == "--group-by"
    assert info["train_subjects"] + info["val_subjects"] == info["subjects"] == 20
    assert "held out by subject" in describe(info, "train")


def test_regex_that_misses_an_item_is_refused() -> None:
    with pytest.raises(FerkitError, match="1 of 2 items name no subject"):
        groups_from_regex(["/a/S001_1.png", "/a/other.png"], r"S(\d+)_")
    with pytest.raises(FerkitError, match="not a regular expression"):
        groups_from_regex(["/a/S001_1.png"], r"S(\d+")


def test_no_group_found_warns_and_holds_out_at_random() -> None:
    refs = [f"/d/{c}/img{i}.png" for c in ("angry", "happy") for i in range(20)]
    labels = [0] * 20 + [1] * 20
    train, val, info = hold_out(_split(refs, labels), 0)
    assert info["method"] == "random" and info["warning"] == NO_GROUP_WARNING
    assert len(val) == 4 and len(train) == 36
    _, _, off = hold_out(_split(refs, labels), 0, group_by="none")
    assert off["method"] == "random" and "warning" not in off  # asked for: no warning


# -- intervals -------------------------------------------------------------------------------


def test_wilson_interval_matches_reference() -> None:
    # reference: statsmodels proportion_confint(count, nobs, method="wilson"); values computed
    # by hand from the closed form (Wilson 1927) where statsmodels is not installed
    try:
        from statsmodels.stats.proportion import proportion_confint
    except ImportError:
        reference = {(12, 29): (0.2551318, 0.5926216), (81, 100): (0.7222, 0.8749),
                     (0, 10): (0.0, 0.2775), (10, 10): (0.7225, 1.0)}  # fmt: skip
    else:
        pairs = [(12, 29), (81, 100), (0, 10), (10, 10)]
        reference = {p: proportion_confint(*p, method="wilson") for p in pairs}
    for (k, n), (lo, hi) in reference.items():
        got = wilson_interval(k, n)
        assert got[0] == pytest.approx(lo, abs=1e-4) and got[1] == pytest.approx(hi, abs=1e-4)


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_n() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 600, 6000):
        t = rng.integers(0, 4, n)
        p = np.where(rng.random(n) < 0.7, t, rng.integers(0, 4, n))
        lo, hi = bootstrap_macro_f1(t, p)
        assert lo <= f1_score(t, p, average="macro") <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0
    assert bootstrap_macro_f1(t, p) == bootstrap_macro_f1(t, p)  # seeded: reproducible
    ci = intervals(t, p)
    assert ci["accuracy_ci"][0] < float(np.mean(t == p)) < ci["accuracy_ci"][1]
    assert "Wilson" in ci["intervals"]["accuracy"]


# -- McNemar ---------------------------------------------------------------------------------


def _pairs(a_only: int, b_only: int, both: int = 30) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([True] * a_only + [False] * b_only + [True] * both)
    return a, np.array([False] * a_only + [True] * b_only + [True] * both)


def test_mcnemar_exact_for_few_disagreements() -> None:
    from scipy.stats import binomtest

    test = mcnemar(*_pairs(9, 1))
    assert test["method"] == "exact binomial"
    assert test["p_value"] == pytest.approx(binomtest(1, 10, 0.5).pvalue)  # 0.02148
    assert verdict("A", "B", test).startswith("A beats B")
    assert "no significant difference" in verdict("A", "B", mcnemar(*_pairs(6, 3)))


def test_mcnemar_chi_square_with_continuity() -> None:
    from scipy.stats import chi2

    test = mcnemar(*_pairs(40, 20))
    assert test["method"].startswith("chi-square")
    assert test["statistic"] == pytest.approx((20 - 1) ** 2 / 60, abs=1e-4)
    assert test["p_value"] == pytest.approx(chi2.sf((20 - 1) ** 2 / 60, 1))
    assert verdict("A", "B", mcnemar(*_pairs(20, 40))).startswith("B beats A")
    assert mcnemar(*_pairs(0, 0))["p_value"] == 1.0


def test_compare_tests_only_runs_on_the_same_items() -> None:
    from ferkit.evaluation.compare import markdown_table, write_comparison

    truth = [0, 1] * 30

    def report(model: str, correct: int, items: str = "x") -> dict:
        pred = truth[:correct] + [1 - t for t in truth[correct:]]
        return {"model": model, "accuracy": correct / 60, "macro_f1": 0.5, "n": 60,
                "dropped_classes": [], "predict_seconds": 0.1, "split": "val",
                "accuracy_ci": [0.1, 0.9], "macro_f1_ci": [0.2, 0.8],
                "predictions": {"items": items, "y_true": truth, "y_pred": pred}}  # fmt: skip

    rows, tests = write_comparison([report("b", 30), report("a", 58), report("c", 29, "y")], "d")
    assert [r["model"] for r in rows] == ["a", "b", "c"]
    assert tests[0]["verdict"].startswith("a beats b")
    assert "different items" in tests[1]["verdict"]
    assert "[10.0%-90.0%]" in markdown_table(rows, tests)


# -- study warnings --------------------------------------------------------------------------


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path)


def test_study_warnings_appear_in_the_report(tmp_path: Path) -> None:
    from ferkit.study.flags import study_warnings
    from ferkit.study.report import write_report

    data = {"source_classes": ["happy", "sad", "angry"], "val_source": "10% of train (...)",
            "grouping": {"method": "random", "warning": NO_GROUP_WARNING},
            "train_counts": {"happy": 300, "sad": 20, "angry": 40},
            "val_counts": {"happy": 30, "sad": 2, "angry": 4}}  # fmt: skip
    evals = {"svm-raw": {"accuracy": 1.0, "accuracy_ci": [0.9, 1.0], "n": 36},
             "happy-sad": {"accuracy": 0.41, "accuracy_ci": [0.25, 0.59], "n": 29,
                           "classes_scored": 2}}  # fmt: skip
    study = {
        "config": {"data": str(tmp_path / "posed"), "mode": "quick"},
        "runs": list(evals),
        "stages": {"data": {"status": "done", "result": data},
                   **{f"eval-{r}": {"status": "done", "result": e} for r, e in evals.items()}},
    }  # fmt: skip
    study["warnings"] = study_warnings(study, duplicates=7)
    kinds = [w["kind"] for w in study["warnings"]]
    assert kinds == ["small-validation", "duplicates-across-splits", "imbalance",
                     "possible-leakage", "too-good", "below-chance"]  # fmt: skip
    write_report(tmp_path, study)
    html = (tmp_path / "report.html").read_text()
    for warning in study["warnings"]:
        assert warning["message"].split(":")[0].replace("'", "&#x27;") in html
    assert html.count('class="warning"') == 6 and "What to do" in html
    assert "svm-raw: 100.0% validation accuracy" in html
    assert "possible-leakage" in (tmp_path / "report.md").read_text()
    assert study_warnings(study, duplicates=None)[1]["kind"] == "imbalance"  # count unknown


def test_cross_split_duplicates_come_from_the_data_stage() -> None:
    from ferkit.study.flags import cross_split_duplicates

    def study(result: dict) -> dict:
        return {"stages": {"data": {"status": "done", "result": result}}}

    assert cross_split_duplicates(study({})) is None  # a record from before the count
    assert cross_split_duplicates(study({"duplicates": {"dropped": 5, "exact": 1}})) == 5
    assert cross_split_duplicates(study({"duplicates": {"dropped": 5}, "deduped": 5})) == 0


def test_study_holds_out_by_subject_and_records_it(tmp_path: Path) -> None:
    from ferkit.study.data import load_source, write_working_copy

    for s in range(1, 21):
        for c, name in enumerate(("happy", "sad")):
            for f in range(1, 4):
                _png(tmp_path / "posed" / name / f"S{s:03d}_{c + 1:03d}_{f:08d}.png", 60 + 80 * c)
    ds = load_source(tmp_path / "posed")
    result = write_working_copy(ds, tmp_path / "out", None, None, seed=0)
    grouping = result["grouping"]
    assert grouping["method"] == "group" and grouping["source"].endswith("CK+ (S010_004_00000017)")
    assert "held out by subject" in result["val_source"]
    assert sum(result["val_counts"].values()) == 3 * 2 * grouping["val_subjects"]
    assert json.dumps(result)  # JSON-ready for the study record
    assert math.isclose(grouping["share"], 0.1)


def test_a_tune_search_from_before_group_by_resumes() -> None:
    pytest.importorskip("optuna")
    from dataclasses import asdict

    from ferkit.training.config import TrainConfig
    from ferkit.training.tune import _setup, _with_new_defaults

    wanted = _setup("convnet", 5, TrainConfig(), {})
    older = {**wanted, "base": {k: v for k, v in wanted["base"].items() if k != "group_by"}}
    assert older != wanted and _with_new_defaults(older) == wanted
    assert asdict(TrainConfig())["group_by"] is None


def test_svm_search_folds_keep_each_subject_in_one_fold(tmp_path: Path) -> None:
    from ferkit.data.groups import groups_from_regex
    from ferkit.study.data import SUBJECT_IN_NAMES, load_source, write_working_copy
    from ferkit.training.svm import train_svm

    for s in range(1, 9):
        for c, name in enumerate(("happy", "sad")):
            for f in range(1, 4):
                _png(tmp_path / "posed" / name / f"S{s:03d}_{c + 1:03d}_{f:08d}.png", 60 + 80 * c)
    summary = train_svm(tmp_path / "posed", tmp_path / "run", features="raw", search_on="train",
                        search_size=40, progress=False, validate=False)  # fmt: skip
    assert summary["search"]["grouped"] and summary["search"]["grouping"]["source"].startswith(
        "detected"
    )
    plain = train_svm(tmp_path / "posed", tmp_path / "run2", features="raw", search_on="train",
                      search_size=40, progress=False, validate=False, group_by="none")  # fmt: skip
    assert not plain["search"]["grouped"]
    # the study's working copy keeps the subjects in its train names for that search
    copy = write_working_copy(load_source(tmp_path / "posed"), tmp_path / "w", None, None, 0)
    assert copy["svm_group_by"] == SUBJECT_IN_NAMES
    files = sorted(str(p) for p in (tmp_path / "w" / "dataset" / "train").rglob("*.png"))
    assert (
        len(set(groups_from_regex(files, SUBJECT_IN_NAMES).tolist()))
        == 8 - copy["grouping"]["val_subjects"]
    )
