"""The event store's impression log: appends and their errors, attribution of feedback
events (by request id, or by the latest impression within a window), online metrics
against an independent computation, erasure, and the upgrade of an older store."""

import sqlite3

import numpy as np
import pandas as pd
import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import IMPRESSION_COLUMNS, EventStore, make_events, open_store

CLICKS = ["click", "view", "purchase"]
CONVERSIONS = ["purchase"]


@pytest.fixture
def store(store_location):
    """A new store, once on each backend (SQLite, PostgreSQL where a server runs)."""
    with open_store(store_location) as s:
        yield s


def raw_rows(location, sql):
    """Rows of ``sql`` read past the store, by the backend's own client."""
    if isinstance(location, str):  # a PostgreSQL URL
        import psycopg

        url, schema = location.split("?schema=")
        with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    conn = sqlite3.connect(location)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def shown(request_id, user, items, version="v1", arm=None, ts=100, scores=None):
    """One recommendation list as impression rows (ranks 1..n)."""
    n = len(items)
    return pd.DataFrame(
        {
            "request_id": [request_id] * n,
            "user_id": [user] * n,
            "item_id": list(items),
            "rank": list(range(1, n + 1)),
            "score": list(scores) if scores is not None else [float(n - j) for j in range(n)],
            "model_version": [version] * n,
            "arm": [arm] * n,
            "timestamp": [ts] * n,
        }
    )


def test_impressions_round_trip_and_a_retried_batch_is_not_stored_twice(store):
    batch = pd.concat([shown("r1", "u1", ["a", "b"], arm="B"), shown("r2", "u2", ["c"])])
    batch.loc[batch["item_id"] == "b", "score"] = np.nan
    assert store.append_impressions(batch) == 3
    assert store.append_impressions(batch) == 0  # (request_id, item_id) already stored
    assert store.n_impressions == 3
    back = store.impressions()
    assert list(back.columns) == list(IMPRESSION_COLUMNS)
    assert back["item_id"].tolist() == ["a", "b", "c"]
    assert back["rank"].tolist() == [1, 2, 1] and back["timestamp"].tolist() == [100] * 3
    assert back["score"].iloc[0] == 2.0 and np.isnan(back["score"].iloc[1])
    assert back["arm"].tolist() == ["B", "B", None]
    assert store.impressions(user_id="u2")["request_id"].tolist() == ["r2"]
    assert store.impressions(request_id="r1")["item_id"].tolist() == ["a", "b"]
    assert store.append_impressions(shown("r3", "u1", [])) == 0


@pytest.mark.parametrize(
    "column, value, expected",
    [
        ("rank", 0, "an integer >= 1"),
        ("rank", 1.5, "an integer >= 1"),
        ("score", float("inf"), "a finite number"),
        ("score", "high", "a finite number"),
        ("arm", 5, "a non-empty string, or None"),
        ("arm", "", "a non-empty string, or None"),
        ("request_id", "", "a non-empty string"),
        ("model_version", None, "a non-empty string"),
        ("timestamp", "noon", "an integer"),
    ],
)
def test_a_bad_impression_names_row_and_field_and_nothing_is_written(
    store, column, value, expected
):
    batch = shown("r1", "u1", ["a", "b", "c"])
    batch[column] = batch[column].astype(object)
    batch.loc[2, column] = value
    with pytest.raises(DataError, match="row 2") as info:
        store.append_impressions(batch)
    assert info.value.column == column and expected in str(info.value)
    assert store.n_impressions == 0


def test_impression_frames_must_have_exactly_the_columns(store):
    with pytest.raises(DataError, match="arm"):
        store.append_impressions(shown("r1", "u1", ["a"]).drop(columns="arm"))
    with pytest.raises(DataError, match="does not keep"):
        store.append_impressions(shown("r1", "u1", ["a"]).assign(extra=1))


def test_request_ids_of_events_are_checked(store):
    events = make_events(["u1", "u1"], ["a", "b"], [1, 2], "click")
    with pytest.raises(ParameterError, match="request_ids"):
        store.append(events, request_ids=["r1"])
    with pytest.raises(DataError, match="row 1") as info:
        store.append(events, request_ids=["r1", 7])
    assert info.value.column == "request_id"
    assert store.n_events == 0


def metrics(store, **kw):
    return store.online_metrics(CLICKS, CONVERSIONS, **kw)


def test_attribution_by_request_id_and_by_the_latest_impression_in_the_window(store):
    store.append_impressions(shown("r1", "u1", ["a", "b", "c"], ts=1_000))
    store.append_impressions(shown("r2", "u1", ["a", "d"], ts=2_000, version="v2"))
    events = make_events(
        ["u1", "u1", "u1", "u1", "u1", "u2"],
        ["a", "b", "c", "d", "a", "a"],
        [5_000, 1_500, 900, 2_100, 2_050, 2_050],
        ["click", "view", "view", "purchase", "click", "click"],
    )
    store.append(events, request_ids=["r1", None, None, None, "r2", "r2"])
    out = metrics(store, window=3_600).set_index("model_version")
    # v1 (r1): a clicked by request id (late, but it names r1); b viewed within the
    # window; c's view came before it was shown
    assert out.loc["v1", "impressions"] == 3 and out.loc["v1", "clicks"] == 2
    assert out.loc["v1", "events"] == 2 and out.loc["v1", "conversions"] == 0
    # v2 (r2): a clicked by request id, d bought through the window; u2 named r2 but r2
    # was not shown to u2
    assert out.loc["v2", "impressions"] == 2 and out.loc["v2", "clicks"] == 2
    assert out.loc["v2", "conversions"] == 1 and out.loc["v2", "conversion_rate"] == 0.5
    # a shorter window loses the view 500 s after the impression, and the purchase
    short = metrics(store, window=60).set_index("model_version")
    assert short.loc["v1", "clicks"] == 1 and short.loc["v2", "conversions"] == 0


def test_an_event_without_request_goes_to_the_latest_impression_of_its_item(store):
    store.append_impressions(shown("r1", "u1", ["a"], version="old", ts=100))
    store.append_impressions(shown("r2", "u1", ["a"], version="new", ts=200))
    store.append(make_events(["u1"], ["a"], [250], "click"))
    out = metrics(store).set_index("model_version")
    assert out.loc["new", "clicks"] == 1 and out.loc["old", "clicks"] == 0


def brute_force(imps: pd.DataFrame, events: list[tuple], window: int, hour: bool) -> dict:
    """The metrics by a plain loop over every event and impression."""
    imps = imps.reset_index(drop=True)
    hits: dict[int, list[str]] = {}
    for user, item, ts, etype, rid in events:
        if etype not in CLICKS and etype not in CONVERSIONS:
            continue
        if rid is not None:
            match = imps.index[
                (imps.request_id == rid) & (imps.item_id == item) & (imps.user_id == user)
            ]
        else:
            ok = (imps.user_id == user) & (imps.item_id == item)
            ok &= (imps.timestamp <= ts) & (imps.timestamp >= ts - window)
            cand = imps[ok]
            match = [] if cand.empty else [cand.sort_values("timestamp", kind="stable").index[-1]]
        for j in match:
            hits.setdefault(int(j), []).append(etype)
    clicked = np.array([any(t in CLICKS for t in hits.get(j, [])) for j in range(len(imps))])
    conv = np.array([sum(t in CONVERSIONS for t in hits.get(j, [])) for j in range(len(imps))])
    n_events = np.array([len(hits.get(j, [])) for j in range(len(imps))])
    rank_ctr = {r: clicked[imps["rank"] == r].mean() for r in imps["rank"].unique()}
    out = {}
    for key, g in imps.groupby(["model_version", "arm"] + (["hour"] if hour else []), dropna=False):
        j = g.index.to_numpy()
        expected = sum(rank_ctr[r] for r in g["rank"])
        out[tuple(None if isinstance(k, float) else k for k in key)] = {
            "impressions": len(j),
            "clicks": int(clicked[j].sum()),
            "ctr": clicked[j].mean(),
            "coec": clicked[j].sum() / expected if expected > 0 else np.nan,
            "conversions": int(conv[j].sum()),
            "events_per_user": n_events[j].sum() / g["user_id"].nunique(),
            "requests": g["request_id"].nunique(),
            "users": g["user_id"].nunique(),
        }
    return out


@pytest.mark.parametrize("by_hour", [False, True])
def test_online_metrics_match_an_independent_computation(store, by_hour):
    rng = np.random.default_rng(7)
    frames, events = [], []
    items = [f"i{j}" for j in range(12)]
    for r in range(60):
        user = f"u{rng.integers(8)}"
        ts = int(rng.integers(0, 4 * 3600))
        version, arm = ["v1", "v2"][r % 2], [None, "A", "B"][r % 3]
        shown_items = list(rng.choice(items, size=5, replace=False))
        frames.append(shown(f"r{r}", user, shown_items, version, arm, ts))
        for item in shown_items:
            if rng.random() < 0.3:
                etype = str(rng.choice(["click", "view", "purchase", "search"]))
                late = ts + int(rng.integers(0, 3 * 1800))
                rid = f"r{r}" if rng.random() < 0.5 else None
                events.append((user, item, late, etype, rid))
    imps = pd.concat(frames, ignore_index=True)
    store.append_impressions(imps)
    users, its, ts, types, rids = zip(*events, strict=True)
    store.append(make_events(list(users), list(its), list(ts), list(types)), request_ids=rids)
    imps["hour"] = imps["timestamp"] // 3600 * 3600
    want = brute_force(imps, events, window=1800, hour=by_hour)
    got = metrics(store, window=1800, by_hour=by_hour)
    assert len(got) == len(want) and got["clicks"].sum() > 0
    for row in got.to_dict("records"):
        key = (row["model_version"], row["arm"]) + ((row["hour"],) if by_hour else ())
        for name, value in want[key].items():
            assert row[name] == pytest.approx(value, nan_ok=True), (key, name)
    # the rows come sorted: version, then no arm before the arms
    assert got["model_version"].is_monotonic_increasing
    assert got.drop_duplicates("model_version")["arm"].isna().all()


def test_since_and_until_select_impressions_by_time(store):
    store.append_impressions(shown("r1", "u1", ["a"], ts=3_600))
    store.append_impressions(shown("r2", "u1", ["b"], ts=7_300))
    assert metrics(store, since=3_601)["impressions"].tolist() == [1]
    assert metrics(store, until=3_601)["impressions"].tolist() == [1]
    hours = metrics(store, by_hour=True)["hour"].tolist()
    assert hours == [3_600, 7_200]
    empty = metrics(store, since=10_000)
    assert empty.empty and "ctr" in empty.columns


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"click_types": "click"}, "click_types"),
        ({"conversion_types": [""]}, "conversion_types"),
        ({"window": -1}, "window"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_metric_arguments_are_refused(store, kw, name):
    args = {"click_types": CLICKS, "conversion_types": CONVERSIONS, **kw}
    with pytest.raises(ParameterError, match=name):
        store.online_metrics(args.pop("click_types"), args.pop("conversion_types"), **args)


def test_erasing_a_user_erases_their_impressions_and_request_ids(store, store_location):
    store.append_impressions(shown("r1", "u1", ["a", "b"]))
    store.append_impressions(shown("r2", "u2", ["a"]))
    store.append(
        make_events(["u1", "u2"], ["a", "a"], [150, 150], "click"), request_ids=["r1", "r2"]
    )
    assert store.delete_user("u1") == 1
    assert store.impressions()["user_id"].tolist() == ["u2"]
    assert raw_rows(store_location, "SELECT request_id FROM event_requests") == [("r2",)]
    assert metrics(store)["clicks"].tolist() == [1]


def test_reading_after_a_cursor_gives_each_impression_once(store):
    assert store.last_impression_id == 0 and store.read_impressions().empty
    store.append_impressions(shown("r1", "u1", ["a", "b", "c"]))
    store.append_impressions(shown("r2", "u2", ["d"], ts=200))
    first = store.read_impressions(limit=2)
    assert list(first.columns) == ["id", *IMPRESSION_COLUMNS]
    assert first["item_id"].tolist() == ["a", "b"] and first["rank"].tolist() == [1, 2]
    rest = store.read_impressions(after_id=int(first["id"].iloc[-1]))
    assert rest["item_id"].tolist() == ["c", "d"] and rest["timestamp"].tolist() == [100, 200]
    assert int(rest["id"].iloc[-1]) == store.last_impression_id
    assert store.read_impressions(after_id=store.last_impression_id).empty
    store.delete_user("u1")  # erased rows are gone for a reader that starts over
    assert store.read_impressions()["user_id"].tolist() == ["u2"]
    with pytest.raises(ParameterError, match="after_id"):
        store.read_impressions(after_id=-1)
    with pytest.raises(ParameterError, match="limit"):
        store.read_impressions(limit=0)


def test_a_store_of_schema_version_1_gains_the_impression_log(tmp_path):
    path = tmp_path / "events.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,
            item_id TEXT NOT NULL, timestamp INTEGER NOT NULL, event_type TEXT NOT NULL,
            value REAL, event_id TEXT);
        CREATE INDEX events_user_time ON events (user_id, timestamp);
        CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
        CREATE TABLE items (pos INTEGER PRIMARY KEY, item_id TEXT NOT NULL UNIQUE,
            title TEXT, categories TEXT NOT NULL, attributes TEXT NOT NULL);
        INSERT INTO events (user_id, item_id, timestamp, event_type) VALUES ('u1', 'a', 5, 'view');
        PRAGMA application_id = 1280070227;
        PRAGMA user_version = 1;
        """
    )
    conn.commit()
    conn.close()
    with EventStore(path) as store:
        assert store.n_events == 1
        assert store.append_impressions(shown("r1", "u1", ["a"], ts=4)) == 1
        store.append(make_events(["u1"], ["a"], [6], "click"), request_ids=["r1"])
        assert metrics(store)["clicks"].tolist() == [1]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    finally:
        conn.close()


def test_rows_built_by_the_caller_are_stored_as_a_frame_would_be(store, tmp_path):
    frame = shown("r1", "u1", ["a", "b"], arm="B")
    rows = list(frame.itertuples(index=False, name=None))
    assert store.append_impression_rows(rows) == 2
    assert store.append_impression_rows(rows) == 0  # a retried flush
    with EventStore(tmp_path / "other.sqlite") as other:
        other.append_impressions(frame)
        assert other.impressions().equals(store.impressions())
    with pytest.raises(ParameterError, match="rows"):
        store.append_impression_rows([("r2", "u1", "a")])
    assert store.append_impression_rows([]) == 0


def test_impression_flushes_skip_the_fsync_and_events_keep_it(tmp_path, monkeypatch):
    """Impressions commit with synchronous=NORMAL, in chunks of 100 rows; the next
    event write (and an impression write that fails) runs with synchronous=FULL again."""
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    with EventStore(tmp_path / "events.sqlite") as store:
        rows = list(shown("r1", "u1", [f"i{j}" for j in range(250)]).itertuples(index=False))
        del statements[:]
        assert store.append_impression_rows([tuple(r) for r in rows]) == 250
        flush = [s.strip().upper() for s in statements]
        assert flush[0] == "PRAGMA SYNCHRONOUS = NORMAL"
        assert flush[1] == "BEGIN IMMEDIATE"
        inserts = [s for s in flush if s.startswith("INSERT INTO IMPRESSIONS")]
        assert len(inserts) == 250
        assert flush[-2:] == ["COMMIT", "PRAGMA SYNCHRONOUS = FULL"]

        del statements[:]
        with pytest.raises(sqlite3.Error):  # a score SQLite cannot bind
            store.append_impression_rows([("r2", "u1", "a", 1, object(), "v1", None, 5)])
        assert statements[-1].strip().upper() == "PRAGMA SYNCHRONOUS = FULL"
        assert store.n_impressions == 250

        del statements[:]
        store.append(make_events(["u1"], ["i0"], [200], "click"))
        assert not any("SYNCHRONOUS" in s.upper() for s in statements)
    conn = real_connect(tmp_path / "events.sqlite")
    try:
        assert conn.execute("SELECT count(*) FROM impressions").fetchone()[0] == 250
    finally:
        conn.close()
