"""Crowd votes (FER+) as targets: the vote rules, the file, the data the trainer sees, the loss, the reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from training_fixtures import FER_TRAIN, FER_VAL, LABELS, require_shared, small_label_dir, smoke_run

from training.votes import VOTE_COLUMNS, VotesError, VoteTable, majority_label, vote_distribution


def votes(**counts: int) -> np.ndarray:
    """Ten FER+ vote counts, the columns not named at 0."""
    unknown = set(counts) - set(VOTE_COLUMNS)
    assert not unknown, unknown
    return np.array([counts.get(c, 0) for c in VOTE_COLUMNS])


def target(**counts: int) -> dict[str, float] | None:
    t = vote_distribution(votes(**counts), LABELS)
    return None if t is None else {label: round(float(p), 4) for label, p in zip(LABELS, t, strict=True) if p}


def test_six_neutral_four_anger_votes_give_that_distribution():
    assert target(neutral=6, anger=4) == {"neutral": 0.6, "angry": 0.4}
    assert vote_distribution(votes(neutral=6, anger=4), LABELS).dtype == np.float32


def test_a_single_vote_is_dropped_as_an_outlier():
    assert target(neutral=9, anger=1) == {"neutral": 1.0}
    assert target(neutral=5, fear=3, sadness=1, surprise=1) == {"neutral": 0.625, "fear": 0.375}


def test_contempt_and_unknown_votes_say_nothing_about_the_seven_classes():
    assert target(neutral=4, contempt=3, unknown=3) == {"neutral": 1.0}
    assert target(disgust=3, contempt=5, anger=2) == {"disgust": 0.6, "angry": 0.4}


def test_a_face_the_crowd_calls_not_a_face_is_left_out():
    assert target(NF=5, neutral=3, anger=2) is None
    assert target(NF=4, neutral=4, anger=2) is None  # as many not-a-face votes as the top expression's
    assert target(NF=3, neutral=5, anger=2) == {"neutral": 0.7143, "angry": 0.2857}
    assert target(unknown=8, NF=1, neutral=1) is None  # nothing left after the single votes go


def test_the_majority_label_is_the_untied_top_of_all_ten_columns():
    assert majority_label(votes(neutral=6, anger=4), LABELS) == LABELS.index("neutral")
    assert majority_label(votes(anger=5, neutral=5), LABELS) is None  # tied
    assert majority_label(votes(contempt=6, anger=4), LABELS) is None  # contempt is no FER-2013 class
    assert majority_label(votes(NF=6, fear=4), LABELS) is None
    assert majority_label(votes(unknown=5, fear=4, NF=1), LABELS) is None
    # Single votes count here: a face with one vote each for three classes and 7 fear is plainly fear.
    assert majority_label(votes(fear=7, anger=1, sadness=1, surprise=1), LABELS) == LABELS.index("fear")


def test_labels_the_votes_cannot_serve_are_refused():
    with pytest.raises(VotesError, match="contempt"):
        vote_distribution(votes(neutral=10), ("neutral", "contempt"))


def test_the_votes_file_is_keyed_by_paths_relative_to_its_folder(tmp_path):
    (tmp_path / "train" / "angry").mkdir(parents=True)
    face = tmp_path / "train" / "angry" / "a.jpg"
    face.write_bytes(b"")
    header = "file,fer2013_label," + ",".join(VOTE_COLUMNS) + ",match_correlation\n"
    (tmp_path / "votes.csv").write_text(header + "train/angry/a.jpg,angry,6,0,0,0,4,0,0,0,0,0,0.99\n")
    table = VoteTable.read(tmp_path / "votes.csv")
    other = tmp_path / "train" / "angry" / "b.jpg"
    assert [None if c is None else c.tolist() for c in table.lookup([face, other])] == [votes(neutral=6, anger=4).tolist(), None]
    keep, targets = table.distributions([other, face], LABELS)
    assert keep.tolist() == [1] and targets[0][LABELS.index("neutral")] == pytest.approx(0.6)


@pytest.mark.parametrize(("body", "message"), [
    ("file,neutral\nx.jpg,3\n", "missing column"),
    ("file," + ",".join(VOTE_COLUMNS) + "\nx.jpg,1,2,three,0,0,0,0,0,0,0\n", ":2: vote counts must be whole numbers"),
    ("file," + ",".join(VOTE_COLUMNS) + "\n", "no rows"),
])
def test_a_bad_votes_file_is_named_with_the_problem(tmp_path, body, message):
    path = tmp_path / "v.csv"
    path.write_text(body)
    with pytest.raises(VotesError, match=message) as info:
        VoteTable.read(path)
    assert str(path) in str(info.value)
    with pytest.raises(VotesError, match="not found"):
        VoteTable.read(tmp_path / "missing.csv")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Five training and four validation faces a class, with a votes file written for them: every face
    voted 6 for its folder's class and 4 neutral (neutral faces 10 neutral), except the first validation
    face of each class (tied 5/5)."""
    require_shared()
    root = tmp_path_factory.mktemp("votes")
    train, val = small_label_dir(root / "train", FER_TRAIN, 5), small_label_dir(root / "val", FER_VAL, 4)
    column = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "neutral": "neutral",
              "sad": "sadness", "surprise": "surprise"}
    rows = ["file," + ",".join(VOTE_COLUMNS)]
    for split in (train, val):
        for label in LABELS:
            for k, face in enumerate(sorted((split / label).iterdir())):
                tied = split is val and k == 0
                counts = {c: 0 for c in VOTE_COLUMNS}
                counts["neutral"] += 5 if tied else 4
                counts[column[label]] += 5 if tied else 6
                if label == "neutral":
                    counts["neutral"], counts["happiness"] = (5, 5) if tied else (10, 0)
                rows.append(f"{face.relative_to(root).as_posix()}," + ",".join(str(counts[c]) for c in VOTE_COLUMNS))
    (root / "votes.csv").write_text("\n".join(rows) + "\n")
    return root, train, val


def test_the_trainer_sees_vote_distributions_and_selects_on_the_majority_label(small_data):
    from training.presets import PRESETS
    from training.train import prepare_data

    root, train, val = small_data
    data = prepare_data(PRESETS["ferplus"].model_copy(update={"input_size": 48}), train, val_dir=val,
                        votes=VoteTable.read(root / "votes.csv"))
    assert data.label_targets is not None and data.label_targets.shape == (5 * len(LABELS), len(LABELS))
    np.testing.assert_allclose(data.label_targets.sum(axis=1), 1.0, rtol=1e-6)
    for row, top in zip(data.label_targets, data.targets, strict=True):
        expected = {LABELS.index("neutral"): 1.0} if top == LABELS.index("neutral") else {top: 0.6, LABELS.index("neutral"): 0.4}
        assert {i: round(float(p), 3) for i, p in enumerate(row) if p} == expected
    # The tied validation face of each class has no majority label and is left out.
    assert len(data.val.targets) == 3 * len(LABELS)
    assert data.votes == {"file": str(root / "votes.csv"), "train_faces": 35, "train_left_out": 0,
                          "val_faces": 21, "val_left_out": 7}


def test_the_ferplus_preset_without_votes_is_refused(tmp_path):
    from training.cli import main

    assert main(["train", "--preset", "ferplus", "--data", str(FER_TRAIN), "--out", str(tmp_path / "run")]) == 2


def test_logit_adjustment_shifts_the_loss_by_the_prior():
    from training.presets import PRESETS
    from training.train import LogitAdjustedCrossEntropy

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]], dtype=np.float32)
    prior = np.array([0.6, 0.3, 0.1])
    uniform = LogitAdjustedCrossEntropy(np.log(np.full(3, 1 / 3)), 1.0)
    plain = -(y * np.log(probs)).sum(axis=1).mean()
    assert float(uniform(y, probs)) == pytest.approx(plain, rel=1e-5)
    adjusted = np.log(probs) + np.log(prior)
    adjusted = adjusted - np.log(np.exp(adjusted).sum(axis=1, keepdims=True))
    expected = -(y * adjusted).sum(axis=1).mean()
    assert float(LogitAdjustedCrossEntropy(np.log(prior), 1.0)(y, probs)) == pytest.approx(expected, rel=1e-5)
    assert PRESETS["ferplus"].logit_adjustment == 1.0 and PRESETS["default"].logit_adjustment == 0.0


def test_the_alert_tradeoff_counts_calm_faces_flagged_at_each_recall():
    from training.reports import alert_tradeoff

    labels = list(LABELS)
    rng = np.random.default_rng(5)
    y = np.array([0] * 10 + [4] * 20 + [3] * 5)  # 10 angry, 20 neutral, 5 happy (ignored)
    probs = rng.dirichlet(np.ones(7), size=len(y))
    result = alert_tradeoff(y, probs, labels, positives=("angry",))
    score = probs[:, 0] + probs[:, 2]
    pos, neg = score[y == 0], score[y == 4]
    assert result["n_positive"] == 10 and result["n_negative"] == 20
    assert result["auc"] == pytest.approx(roc_auc_score(np.r_[np.ones(10), np.zeros(20)], np.r_[pos, neg]))
    threshold = np.sort(pos)[::-1][7]  # the 8th best angry score catches 80% of them
    assert result["flagged_at_recall"]["0.8"] == pytest.approx(float((neg >= threshold).mean()))


def test_evaluate_reports_against_the_folders_and_the_crowd(small_data, tmp_path, capsys):
    from fer_stream.inference.engine import load_classifier
    from fer_stream.preprocessing import to_model_input
    from training.cli import main
    from training.dataset import load_faces, scan_label_folders

    root, _, val = small_data
    model = smoke_run().exported(".tflite")
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(val), "--out", str(out), "--model", str(model),
                 "--votes", str(root / "votes.csv")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    crowd = metrics["ferplus"]
    assert metrics["n"] == 4 * len(LABELS) and crowd["n"] == 3 * len(LABELS)
    # The crowd's label of every untied face here is its folder's: the same faces, the same predictions.
    faces = load_faces(scan_label_folders(val), 48)
    predicted = load_classifier(model, backend="litert").predict(to_model_input(faces.faces)).argmax(axis=1)
    untied = np.array([k % 4 != 0 for k in range(len(faces.targets))])
    assert crowd["accuracy"] == pytest.approx(float((predicted[untied] == faces.targets[untied]).mean()))
    assert metrics["accuracy"] == pytest.approx(float((predicted == faces.targets).mean()))
    for section in (metrics, crowd):
        assert [r["positives"] for r in section["alert_tradeoff"]] == [["angry"], ["fear"], ["angry", "fear"]]
    assert crowd["alert_tradeoff"][0]["n_positive"] == 3 and crowd["alert_tradeoff"][0]["n_negative"] == 3
    for png in ("alert_tradeoff.png", "ferplus_alert_tradeoff.png", "ferplus_confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "the crowd's untied majority" in printed and "neutral flagged at recall 0.8" in printed
