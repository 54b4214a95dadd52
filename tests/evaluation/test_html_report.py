"""``lifelongrec report``: one self-contained HTML page per run (evaluate, stream,
simulate): its figures, its plots embedded, nothing fetched from elsewhere; errors."""

import base64
import json
import re

import pytest
from typer.testing import CliRunner

from lifelongrec._errors import ParameterError
from lifelongrec.cli import app
from lifelongrec.evaluation import (
    SimulationSettings,
    html_report,
    report_kind,
    run_evaluation,
    run_stream,
    simulate,
)

SMALL = dict(synthetic_events=2_000, progress=False)


@pytest.fixture(scope="module")
def runs():
    evaluation = run_evaluation("synthetic", "popularity", "loo", 10, **SMALL)
    stream = run_stream("synthetic", "popularity", "all", 3, 10, drift="none", **SMALL)
    one = run_stream("synthetic", "popularity", "lifelong", 3, 10, drift="none", **SMALL)
    world = SimulationSettings(n_users=60, n_items=40, days=2, history_days=2, shift_day=1)
    sim = simulate("popularity", settings=world)
    # as the commands print them: through JSON
    return {k: json.loads(json.dumps(v, default=str)) for k, v in locals().items() if k != "world"}


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    assert "<script" not in page


def _images(page: str) -> list[bytes]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [base64.b64decode(x) for x in found]


def test_an_evaluation_page_lists_every_metric(runs):
    r = runs["evaluation"]
    assert report_kind(r) == "evaluate"
    page = html_report(r)
    _self_contained(page)
    assert f"<td>ndcg@10</td><td>{r['ndcg@10']:.4f}</td>" in page
    assert f"<td>map@10</td><td>{r['map@10']:.4f}</td>" in page


@pytest.mark.parametrize("name", ["stream", "one"])
def test_a_stream_page_has_the_strategies_windows_and_plot(runs, name):
    r = runs[name]
    assert report_kind(r) == "stream"
    page = html_report(r, title="my run")
    _self_contained(page)
    assert "<title>my run</title>" in page
    (png,) = _images(page)
    assert png.startswith(b"\x89PNG")
    strategies = r["strategies"] if "strategies" in r else {r["strategy"]: r}
    for s, run in strategies.items():
        assert f"<td>{s}</td><td>{run['mean']['ndcg@10']:.4f}</td>" in page


def test_a_simulation_page_has_the_days_and_plot(runs):
    r = runs["sim"]
    assert report_kind(r) == "simulate"
    page = html_report(r)
    _self_contained(page)
    assert len(_images(page)) == 1
    first = r["strategies"]["static"]["days"][0]
    assert f"<td>static</td><td>0</td><td>{first['sessions']}</td>" in page


def test_anything_else_is_refused_by_name():
    with pytest.raises(ParameterError, match="evaluate"):
        report_kind({"hello": 1})
    with pytest.raises(ParameterError, match="JSON object"):
        report_kind([1, 2])


def test_the_command_writes_the_page_beside_the_json(runs, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(runs["evaluation"]))
    r = CliRunner().invoke(app, ["report", str(path)])
    assert r.exit_code == 0, r.output
    _self_contained((tmp_path / "run.html").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(app, ["report", str(bad)])
    assert r.exit_code == 2 and "RUN" in r.output
    other = tmp_path / "other.json"
    other.write_text('{"x": 1}')
    r = CliRunner().invoke(app, ["report", str(other), "--out", str(tmp_path / "o.html")])
    assert r.exit_code == 2 and "simulate" in r.output
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing.json")])
    assert r.exit_code == 2
