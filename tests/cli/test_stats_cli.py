"""`labelloop stats` on the fixture files: JSON keys, equality with the library, bad files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from labelloop import stats
from labelloop.cli import app
from labelloop.formats.columns import read_columns

runner = CliRunner()

STAT_KEYS = ("percent_agreement", "krippendorff_alpha", "fleiss_kappa", "gwet_ac1", "scott_pi")


def run(*args: str | Path) -> Any:
    result = runner.invoke(app, ["stats", *map(str, args)])
    return result


def run_json(*args: str | Path) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ratings_of(path: Path, **kw: Any) -> stats.Ratings:
    cols = read_columns(path, {"item": None, "annotator": None, "label": None})
    return stats.Ratings.from_long(cols["item"], cols["annotator"], cols["label"], **kw)


def same(a: float | None, b: float) -> bool:
    if a is None:
        return not math.isfinite(b)
    return a == pytest.approx(b, abs=1e-12, rel=0)


def assert_result(obj: dict[str, Any], res: stats.AgreementResult) -> None:
    assert same(obj["value"], res.value)
    if res.ci is None:
        assert obj["ci"] is None
    else:
        assert obj["ci"] is not None
        assert same(obj["ci"][0], res.ci[0]) and same(obj["ci"][1], res.ci[1])
    assert obj["n_items"] == res.n_items and obj["n_pairable"] == res.n_pairable


@pytest.fixture(scope="module")
def crowd(shared_fixtures: Path) -> Path:
    return shared_fixtures / "crowdsourcing"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------- agreement
def test_agreement_json_equals_library_on_rte(crowd: Path) -> None:
    path = crowd / "snow2008_rte.standardized.tsv"
    out = run_json("agreement", path)
    r = ratings_of(path)
    assert (out["n_items"], out["n_annotators"], out["n_annotations"]) == (800, 164, 8000)
    assert out["columns"] == {
        "item": "orig_id",
        "annotator": "!amt_worker_ids",
        "label": "response",
    }
    for key in STAT_KEYS:
        assert set(out[key]) >= {"value", "ci"}
    assert "cohen_kappa" not in out and "gwet_ac2" not in out
    assert_result(out["percent_agreement"], stats.percent_agreement(r))
    assert_result(out["krippendorff_alpha"], stats.krippendorff_alpha(r, level="nominal"))
    assert_result(out["fleiss_kappa"], stats.fleiss_kappa(r))
    assert_result(out["gwet_ac1"], stats.gwet_ac(r))
    assert_result(out["scott_pi"], stats.scott_pi(r))
    assert_result(out["brennan_prediger"], stats.brennan_prediger(r))
    assert (
        out["fleiss_kappa"]["ci_method"] == "analytic" and out["krippendorff_alpha"]["ci"] is None
    )
    loo = stats.leave_one_out(r)
    by_name = {row["annotator"]: row for row in out["per_annotator"]}
    for name, kappa in zip(loo.annotators.tolist(), loo.kappa.tolist(), strict=True):
        assert same(by_name[name]["kappa"], kappa)
    assert out["pairwise_kappa"]["n_pairs"] > 0
    assert [row["category"] for row in out["per_category"]] == ["0", "1"]


def test_agreement_interval_bootstrap_on_wordsim(crowd: Path) -> None:
    path = crowd / "snow2008_wordsim.standardized.tsv"
    out = run_json("agreement", path, "--level", "interval", "--bootstrap", "200", "--seed", "7")
    cols = read_columns(path, {"item": None, "annotator": None, "label": None})
    r = stats.Ratings.from_long(
        cols["item"], cols["annotator"], [int(v) for v in cols["label"]], level="interval"
    )
    assert out["categories"] == list(range(11))
    alpha = stats.krippendorff_alpha(r, level="interval", n_boot=200, seed=7, bootstrap="items")
    assert_result(out["krippendorff_alpha"], alpha)
    assert_result(out["fleiss_kappa"], stats.fleiss_kappa(r, n_boot=200, seed=7))
    assert out["krippendorff_alpha"]["ci_method"] == "bootstrap-items"
    kb = run_json(
        "agreement",
        path,
        "--level",
        "interval",
        "--bootstrap",
        "200",
        "--seed",
        "7",
        "--alpha-bootstrap",
        "krippendorff",
    )
    alpha = stats.krippendorff_alpha(
        r, level="interval", n_boot=200, seed=7, bootstrap="krippendorff"
    )
    assert_result(kb["krippendorff_alpha"], alpha)
    assert kb["krippendorff_alpha"]["ci_method"] == "bootstrap-krippendorff"
    lo, hi = out["krippendorff_alpha"]["ci"]
    assert lo <= out["krippendorff_alpha"]["value"] <= hi
    # the same seed gives the same interval
    again = run_json("agreement", path, "--level", "interval", "--bootstrap", "200", "--seed", "7")
    assert again["krippendorff_alpha"]["ci"] == out["krippendorff_alpha"]["ci"]


def test_agreement_weighted_reports_ac2(crowd: Path) -> None:
    path = crowd / "snow2008_wordsim.standardized.tsv"
    out = run_json("agreement", path, "--level", "ordinal", "--weights", "quadratic")
    assert "gwet_ac2" in out and "gwet_ac1" not in out
    cols = read_columns(path, {"item": None, "annotator": None, "label": None})
    r = stats.Ratings.from_long(
        cols["item"], cols["annotator"], [int(v) for v in cols["label"]], level="ordinal"
    )
    assert_result(out["gwet_ac2"], stats.gwet_ac(r, weights="quadratic"))
    assert_result(out["fleiss_kappa"], stats.fleiss_kappa(r, weights="quadratic"))
    assert_result(out["krippendorff_alpha"], stats.krippendorff_alpha(r, level="ordinal"))


def test_agreement_two_annotators_has_cohen_kappa(tmp_path: Path) -> None:
    rows = ["item,annotator,label"]
    a = ["x", "y", "y", "z", "x", "x", "y", "z", "z", "x"]
    b = ["x", "y", "z", "z", "x", "y", "y", "z", "x", "x"]
    for i, (la, lb) in enumerate(zip(a, b, strict=True)):
        rows += [f"i{i},ann,{la}", f"i{i},bob,{lb}"]
    path = write(tmp_path / "two.csv", "\n".join(rows) + "\n")
    out = run_json("agreement", path, "--categories", "x,y,z", "--weights", "linear")
    r = stats.Ratings.from_long(
        [f"i{i}" for i in range(10) for _ in (0, 1)],
        ["ann", "bob"] * 10,
        [v for pair in zip(a, b, strict=True) for v in pair],
        categories=["x", "y", "z"],
    )
    assert_result(out["cohen_kappa"], stats.cohen_kappa(r, weights="linear"))
    assert out["cohen_kappa"]["ci_method"] == "analytic"
    assert out["categories"] == ["x", "y", "z"]


def test_agreement_headerless_file(crowd: Path) -> None:
    path = crowd / "AdultContent_labels.txt"
    out = run_json(
        "agreement", path, "--no-header", "--annotator", "1", "--item", "2", "--label", "3"
    )
    cols = read_columns(path, {"item": "2", "annotator": "1", "label": "3"}, header=False)
    r = stats.Ratings.from_long(cols["item"], cols["annotator"], cols["label"])
    assert out["n_annotations"] == r.n_ratings and out["n_items"] == r.n_items
    assert_result(out["krippendorff_alpha"], stats.krippendorff_alpha(r))
    result = run("agreement", path, "--no-header")
    assert result.exit_code == 1
    assert "cannot tell which column holds the item" in result.stderr
    assert "columns are: 1, 2, 3" in result.stderr


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_agreement_jsonl_and_parquet_equal_tsv(crowd: Path, tmp_path: Path, kind: str) -> None:
    path = crowd / "snow2008_temp.standardized.tsv"
    cols = read_columns(path, {"item": None, "annotator": None, "label": None})
    if kind == "jsonl":
        other = tmp_path / "temp.jsonl"
        with other.open("w", encoding="utf-8") as fh:
            for it, an, la in zip(cols["item"], cols["annotator"], cols["label"], strict=True):
                fh.write(json.dumps({"item": it, "worker": an, "label": la}) + "\n")
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:  # e.g. a pyarrow built for another numpy
            pytest.skip(f"pyarrow unusable here: {exc}")
        other = tmp_path / "temp.parquet"
        pq.write_table(
            pa.table(
                {"task_id": cols["item"], "rater": cols["annotator"], "rating": cols["label"]}
            ),
            other,
        )
    base = run_json("agreement", path)
    out = run_json("agreement", other)
    for key in (*STAT_KEYS, "n_items", "n_annotators", "n_annotations"):
        assert out[key] == base[key], key


def test_agreement_tables(crowd: Path) -> None:
    result = run("agreement", crowd / "snow2008_rte.standardized.tsv", "--limit", "3")
    assert result.exit_code == 0, result.output
    for text in (
        "krippendorff_alpha",
        "fleiss_kappa",
        "Per annotator",
        "pairwise Cohen's kappa",
        "Per category",
    ):
        assert text in result.stdout


# ----------------------------------------------------------------------- infer
@pytest.mark.parametrize("method", ["majority", "wawa", "dawid-skene", "one-coin"])
def test_infer_json_equals_library(crowd: Path, method: str) -> None:
    path = crowd / "snow2008_rte.standardized.tsv"
    out = run_json("infer", path, "--method", method, "--gold", "gold")
    r = ratings_of(path)
    cls = {
        "majority": stats.MajorityVote,
        "wawa": stats.Wawa,
        "dawid-skene": stats.DawidSkene,
        "one-coin": stats.OneCoinDawidSkene,
    }[method]
    model = cls().fit(r)
    assert set(out) >= {"items", "annotators", "class_priors", "log_likelihood", "iterations"}
    assert [row["item"] for row in out["items"]] == r.items.tolist()
    assert [row["label"] for row in out["items"]] == model.labels_.tolist()
    probs = np.array([[row["probabilities"][c] for c in ("0", "1")] for row in out["items"]])
    np.testing.assert_array_equal(probs, model.probas_)
    assert out["class_priors"] == dict(zip(["0", "1"], model.priors_.tolist(), strict=True))
    assert out["iterations"] == model.n_iter_
    if model.log_likelihood_ is None:
        assert out["log_likelihood"] is None
    else:
        assert out["log_likelihood"] == model.log_likelihood_
    skills = [row["accuracy"] for row in out["annotators"]]
    np.testing.assert_array_equal(skills, model.annotator_skills_)
    if method == "dawid-skene":
        conf = out["annotators"][0]["confusion"]
        assert set(conf) == {"0", "1"} and set(conf["0"]) == {"0", "1"}
        assert conf["1"]["0"] == model.confusions_[0, 1, 0]
    labels = dict(zip(r.items.tolist(), model.labels_.tolist(), strict=True))
    cols = read_columns(path, {"item": None, "gold": "gold"})
    gold = dict(zip(cols["item"], cols["gold"], strict=True))
    accuracy = sum(labels[i] == g for i, g in gold.items()) / len(gold)
    assert out["gold"] == {"column": "gold", "n_items": 800, "accuracy": accuracy}


def test_infer_options(crowd: Path) -> None:
    path = crowd / "snow2008_temp.standardized.tsv"
    out = run_json("infer", path, "--method", "dawid-skene", "--max-iter", "3", "--tol", "0")
    assert out["iterations"] == 3
    model = stats.DawidSkene(max_iter=3, tol=0.0).fit(ratings_of(path))
    assert out["log_likelihood"] == model.log_likelihood_
    result = run("infer", path, "--method", "majority", "--max-iter", "3")
    assert result.exit_code == 2 and "does not apply to --method majority" in result.stderr
    result = run("infer", path, "--method", "dawid-skene", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "Class priors" in result.stdout and "Annotators" in result.stdout


# ---------------------------------------------------------------- label-issues
def _noisy(tmp_path: Path, n: int = 300, k: int = 3, seed: int = 0) -> tuple[Path, Path, Any, Any]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, size=n)
    given = true.copy()
    flip = rng.random(n) < 0.15
    given[flip] = (true[flip] + rng.integers(1, k, size=flip.sum())) % k
    logits = rng.normal(size=(n, k)) + 3.0 * np.eye(k)[true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = ["cat", "dog", "fox"][:k]
    lines = ["item,annotator,label"] + [f"it{i},a{i % 7},{names[g]}" for i, g in enumerate(given)]
    labels_path = write(tmp_path / "labels.csv", "\n".join(lines) + "\n")
    plines = ["item," + ",".join(names)] + [
        f"it{i}," + ",".join(repr(float(p)) for p in row) for i, row in enumerate(probs)
    ]
    probs_path = write(tmp_path / "probs.csv", "\n".join(plines) + "\n")
    return labels_path, probs_path, given, probs


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
def test_label_issues_equal_library(tmp_path: Path, filter_by: str) -> None:
    labels_path, probs_path, given, probs = _noisy(tmp_path)
    out = run_json("label-issues", labels_path, "--pred-probs", probs_path, "--filter", filter_by)
    expected = stats.find_label_issues(given, probs, filter_by=filter_by)
    assert out["n_issues"] == expected.n_issues > 0
    assert [row["item"] for row in out["issues"]] == [f"it{i}" for i in expected.ranked.tolist()]
    names = ["cat", "dog", "fox"]
    first = out["issues"][0]
    i = int(first["item"][2:])
    assert first["rank"] == 1
    assert first["given_label"] == names[given[i]]
    assert first["suggested_label"] == names[int(probs[i].argmax())]
    assert first["label_quality"] == expected.quality[i]
    assert out["classes"] == names


def test_label_issues_table_and_majority(tmp_path: Path) -> None:
    labels = write(tmp_path / "l.csv", "item,label\na,x\na,x\na,y\nb,y\nc,x\nd,y\n")
    probs = write(tmp_path / "p.csv", "item,x,y\na,0.1,0.9\nb,0.2,0.8\nc,0.9,0.1\nd,0.3,0.7\n")
    out = run_json("label-issues", labels, "--pred-probs", probs, "--filter", "predicted_neq_given")
    assert [(row["item"], row["given_label"], row["n_annotations"]) for row in out["issues"]] == [
        ("a", "x", 3)
    ]
    result = run("label-issues", labels, "--pred-probs", probs, "--filter", "predicted_neq_given")
    assert result.exit_code == 0, result.output
    assert "Likely label errors" in result.stdout


@pytest.mark.parametrize(
    ("probs_text", "message"),
    [
        ("item,x,z\na,0.5,0.5\nb,0.5,0.5\n", "no probability column for label(s) 'y'"),
        ("item,x,y\na,0.5,0.5\n", "no probabilities for 1 item(s)"),
        ("item,x,y\na,0.5,0.5\nb,0.5,0.5\nc,0.5,0.5\n", "have probabilities but no label"),
        ("item,x,y\na,0.5,0.5\nb,0.9,0.5\n", "line 3: probabilities sum to 1.4000"),
        ("item,x,y\na,0.5,0.5\nb,high,0.5\n", "line 3, field x: 'high' is not a probability"),
        ("item,x,y\na,0.5,0.5\na,0.5,0.5\n", "line 3, field item: item 'a' appears twice"),
        ("item,x\na,1\nb,1\n", "one probability column per class"),
    ],
)
def test_label_issues_mismatched_probs(tmp_path: Path, probs_text: str, message: str) -> None:
    labels = write(tmp_path / "l.csv", "item,label\na,x\nb,y\n")
    probs = write(tmp_path / "p.csv", probs_text)
    result = run("label-issues", labels, "--pred-probs", probs)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and "p.csv" in result.stderr


# ------------------------------------------------------------------ bad files
@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"item,annotator,label\na,u,1\n", ["--label", "nope"], "no column 'nope' (for --label)"),
        (b"id,who,what\na,u,1\n", [], "cannot tell which column holds the annotator"),
        (b"", [], "file is empty"),
        (b"item,annotator,label\n", [], "no ratings"),
        (b"item,annotator,label\na,u,1\na,v,\n", [], "line 3, field label: empty label"),
        (b"item,annotator,label\na,u,1\n\na,v\n", [], "line 4, field label: missing field"),
        (b"item,annotator,label\na,u,1\na,v,caf\xe9\n", [], "line 3: not UTF-8"),
        (
            b"item,annotator,label\na,u,1\na,v,two\n",
            ["--level", "interval"],
            "line 3, field label: 'two' is not a number",
        ),
        (
            b"item,annotator,label\na,u,1\na,v,2\n",
            ["--categories", "1,3"],
            "line 3, field label: label '2' is not among",
        ),
        (b"item,annotator,label\na,u,1\nb,u,2\n", [], "at least two annotators"),
    ],
    ids=[
        "missing-column",
        "unknown-columns",
        "empty",
        "header-only",
        "empty-field",
        "short-row",
        "not-utf8",
        "not-a-number",
        "outside-categories",
        "one-annotator",
    ],
)
def test_bad_files_exit_1_naming_file_line_field(
    tmp_path: Path, content: bytes, args: list[str], message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    for command in (["agreement"], ["infer", "--method", "majority"]):
        only_agreement = (
            message == "at least two annotators" or "--level" in args or "--categories" in args
        )
        if only_agreement and command[0] == "infer":
            continue
        result = run(*command, path, *args)
        assert result.exit_code == 1, (command, result.output)
        assert message in result.stderr, (command, result.stderr)
        assert str(path) in result.stderr
        assert result.stdout == ""


def test_bad_jsonl_and_missing_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.jsonl", '{"item": "a", "annotator": "u", "label": "x"}\n{"item": \n'
    )
    result = run("agreement", path)
    assert result.exit_code == 1 and "bad.jsonl, line 2: invalid JSON" in result.stderr
    result = run("agreement", tmp_path / "absent.csv")
    assert result.exit_code == 1 and "no such file" in result.stderr
    result = run("agreement", write(tmp_path / "x.xlsx", "x"))
    assert result.exit_code == 1 and "unsupported file type" in result.stderr


@pytest.mark.parametrize("command", ["agreement", "infer", "label-issues"])
def test_help(command: str) -> None:
    result = runner.invoke(app, ["stats", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--json" in result.output


def test_every_flag_is_explained_in_the_guide() -> None:
    """docs/cli.md is generated from the code (tests/test_docs.py); the prose guide in
    docs/stats/index.md must explain every option too."""
    import typer.main

    docs = (Path(__file__).resolve().parents[2] / "docs" / "stats" / "index.md").read_text(
        encoding="utf-8"
    )
    section = docs[docs.index("## On the command line: `labelloop stats`") :]
    group = typer.main.get_command(app).commands["stats"]  # type: ignore[attr-defined]
    for name, command in group.commands.items():
        assert f"### `labelloop stats {name} FILE" in section, name
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in section, (name, opt)


@pytest.mark.parametrize("method", ["glad", "mace"])
def test_infer_glad_and_mace(crowd: Path, method: str) -> None:
    path = crowd / "snow2008_temp.standardized.tsv"
    args = ["--seed", "3"] if method == "mace" else []
    out = run_json("infer", path, "--method", method, *args)
    r = ratings_of(path)
    model = (stats.GLAD() if method == "glad" else stats.MACE(random_state=3)).fit(r)
    assert [row["label"] for row in out["items"]] == model.labels_.tolist()
    np.testing.assert_array_equal(
        [row["skill"] for row in out["annotators"]], model.annotator_skills_
    )
    assert out["log_likelihood"] == model.log_likelihood_ and out["iterations"] == model.n_iter_
    assert ("confusion" in out["annotators"][0]) == (method == "mace")


def test_majority_seed_breaks_ties_at_random(tmp_path: Path) -> None:
    rows = ["item,annotator,label"] + [
        f"i{i},{a},{lab}" for i in range(40) for a, lab in (("u", "x"), ("v", "y"))
    ]
    path = write(tmp_path / "ties.csv", "\n".join(rows) + "\n")
    first = run_json("infer", path, "--method", "majority")
    assert {row["label"] for row in first["items"]} == {"x"}
    seeded = run_json("infer", path, "--method", "majority", "--seed", "1")
    r = ratings_of(path)
    model = stats.MajorityVote(tie_break="random", random_state=1).fit(r)
    assert [row["label"] for row in seeded["items"]] == model.labels_.tolist()
    assert {row["label"] for row in seeded["items"]} == {"x", "y"}


def test_tables_print_ids_and_labels_literally(tmp_path: Path) -> None:
    rows = ["item,annotator,label"] + [
        f"[i{i}],[bold]{a},{lab}" for i in range(6) for a, lab in (("u", "[x]"), ("v", "[red]y"))
    ]
    path = write(tmp_path / "markup.csv", "\n".join(rows) + "\n")
    result = run("agreement", path)
    assert result.exit_code == 0, result.output
    assert "[x]" in result.stdout and "[red]y" in result.stdout and "[bold]u" in result.stdout
    result = run("infer", path, "--method", "majority")
    assert result.exit_code == 0, result.output
    assert "[i0]" in result.stdout and "[bold]v" in result.stdout
