"""MovieLens readers: 100K (``u.data``), the CSV releases (``ratings.csv``) and the
``::``-separated ones (``ratings.dat``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.data._files import _existing, _missing, _read_csv, _read_lines
from lifelongrec.data._schema import Dataset, LoadReport, make_items
from lifelongrec.data._values import _dataset, _events, _ids, _ints

__all__ = ["ML100K_GENRES", "read_movielens_100k", "read_movielens_csv", "read_movielens_dat"]

#: Genre names of MovieLens 100K in flag order (as in its ``u.genre``).
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_ML_NO_GENRE = "(no genres listed)"


def _ml_root(path: str | Path, marker: str, what: str) -> Path:
    """A MovieLens folder given either the folder or its main ratings file."""
    p = _existing(path, f"{what} folder")
    root = p.parent if p.is_file() else p
    if not (root / marker).is_file():
        raise _missing(root / marker, f"{what} file {marker}")
    return root


def _split_genres(genres: pd.Series) -> list[list[str]]:
    return [[] if g in ("", _ML_NO_GENRE) else g.split("|") for g in genres.tolist()]


#: A MovieLens title ends in its release year, ``"Heat (1995)"``, or a span for a series,
#: ``"Babylon 5 (1994-1998)"`` (hyphen or en dash): the first year is the release.
_ML_TITLE_YEAR = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
#: ml-100k's ``release_date``: ``01-Jan-1995``.
_ML_DATE_YEAR = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$")


def _release_year(title: Any, release_date: Any = None) -> int | None:
    """The release year of a MovieLens movie: from ``release_date`` when it parses, else
    from the ``(YYYY)`` the title ends with; ``None`` when neither says."""
    for pattern, text in ((_ML_DATE_YEAR, release_date), (_ML_TITLE_YEAR, title)):
        if isinstance(text, str) and (m := pattern.search(text.strip())):
            return int(m.group(1))
    return None


def _with_year(attributes: dict[str, Any], title: Any) -> dict[str, Any]:
    year = _release_year(title, attributes.get("release_date"))
    return attributes if year is None else {**attributes, "year": year}


# -------------------------------------------------------------------- MovieLens
def read_movielens_100k(path: str | Path) -> Dataset:
    """Read MovieLens 100K: ``u.data`` ratings, ``u.item`` movies, ``u.user`` users.

    Parameters
    ----------
    path
        The ``ml-100k`` folder (or its ``u.data`` file).

    Returns
    -------
    Dataset
        ``events``: one ``"rating"`` event per ``u.data`` line, in file order, ``value`` the
        rating. ``items`` (when ``u.item`` exists): ``title``; ``categories`` the genre
        names (from ``u.genre`` when present, else the standard 19) whose flag is 1;
        ``attributes`` the non-empty ``release_date``, ``video_release_date`` and
        ``imdb_url``, and ``year`` (int) the release year, from ``release_date`` or else
        the ``(YYYY)`` ending the title (absent when neither has one). ``users`` (when
        ``u.user`` exists): ``user_id``, ``age`` (int), ``gender``, ``occupation``, ``zip``.

    Raises
    ------
    FileNotFoundError
        The folder or ``u.data`` does not exist.
    DataError
        A line has the wrong number of fields, or a bad id, rating, timestamp or flag.
    """
    root = _ml_root(path, "u.data", "MovieLens 100K")
    report = LoadReport()
    data_path = root / "u.data"
    frame, rows = _read_lines(data_path, "\t", ("user_id", "item_id", "rating", "timestamp"))
    events = _events(
        frame,
        rows,
        user="user_id",
        item="item_id",
        timestamp="timestamp",
        value="rating",
        event_type="rating",
    )
    report.add("read u.data", len(frame), len(events), "no rows removed")

    genres = list(ML100K_GENRES)
    genre_path = root / "u.genre"
    if genre_path.is_file():
        gframe, grows = _read_lines(genre_path, "|", ("genre", "index"), encoding="latin-1")
        index = _ints(gframe["index"], grows, "index", "genre index")
        genres = [str(g) for g in gframe["genre"].to_numpy()[np.argsort(index, kind="stable")]]

    items = None
    item_path = root / "u.item"
    if item_path.is_file():
        names = ("item_id", "title", "release_date", "video_release_date", "imdb_url")
        flag_names = tuple(f"genre:{g}" for g in genres)
        iframe, irows = _read_lines(item_path, "|", names + flag_names, encoding="latin-1")
        ids = _ids(iframe["item_id"], irows, "item_id", "item id")
        flags = iframe[list(flag_names)].to_numpy(dtype=object)
        is_flag = (flags == "0") | (flags == "1")
        if not is_flag.all():
            r, c = (int(x[0]) for x in np.nonzero(~is_flag))
            raise irows.error(
                "bad genre flag",
                r,
                column=genres[c],
                value=flags[r, c],
                expected="0 or 1",
            )
        genre_arr = np.asarray(genres, dtype=object)
        categories = [genre_arr[row].tolist() for row in flags == "1"]
        attr_cols = [iframe[c].tolist() for c in names[2:]]
        titles = iframe["title"].tolist()
        attributes = [
            _with_year({k: v for k, v in zip(names[2:], vals, strict=True) if v}, title)
            for title, vals in zip(titles, zip(*attr_cols, strict=True), strict=True)
        ]
        items = make_items(ids, titles, categories, attributes)

    users = None
    user_path = root / "u.user"
    if user_path.is_file():
        uframe, urows = _read_lines(
            user_path, "|", ("user_id", "age", "gender", "occupation", "zip"), encoding="latin-1"
        )
        users = pd.DataFrame(
            {
                "user_id": _ids(uframe["user_id"], urows, "user_id", "user id"),
                "age": _ints(uframe["age"], urows, "age", "age"),
                "gender": uframe["gender"].to_numpy(dtype=object),
                "occupation": uframe["occupation"].to_numpy(dtype=object),
                "zip": uframe["zip"].to_numpy(dtype=object),
            }
        )
    return _dataset(
        events, path=root, fmt="movielens-100k", report=report, items=items, users=users
    )


def read_movielens_csv(path: str | Path, *, include_tags: bool = False) -> Dataset:
    """Read a MovieLens CSV release (ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m).

    Parameters
    ----------
    path
        The folder (or its ``ratings.csv``). ``ratings.csv`` has ``userId, movieId,
        rating, timestamp``; optional ``movies.csv`` (``movieId, title, genres``),
        ``links.csv`` (``movieId, imdbId, tmdbId``) and ``tags.csv`` (``userId, movieId,
        tag, timestamp``). Files are RFC-4180 CSV, any line ending.
    include_tags
        Also read ``tags.csv`` as events of type ``"tag"`` (``value`` NaN; the tag text is
        not kept), appended after the ratings. Off by default: tagging is a different
        signal from rating.

    Returns
    -------
    Dataset
        ``events``: ``"rating"`` events in file order (then tags). ``items`` (when
        ``movies.csv`` exists): every catalogue movie with ``title``, ``categories`` the
        ``|``-separated genres (``"(no genres listed)"`` gives none) and ``attributes``
        ``imdb_id``/``tmdb_id`` from ``links.csv`` when present and ``year`` (int), the
        release year the title ends with (``"Heat (1995)"``; the first year of a span
        such as ``"(1994-1998)"``; absent when the title has none). ``users`` is ``None``.

    Raises
    ------
    FileNotFoundError
        The folder or ``ratings.csv`` does not exist (or ``tags.csv`` when asked for).
    DataError
        A missing column, a row with the wrong number of fields, or a bad value.
    """
    root = _ml_root(path, "ratings.csv", "MovieLens CSV")
    report = LoadReport()
    ratings_path = root / "ratings.csv"
    cols = ("userId", "movieId", "rating", "timestamp")
    frame, rows = _read_csv(ratings_path, cols, what="(userId,movieId,rating,timestamp)")
    events = _events(
        frame,
        rows,
        user="userId",
        item="movieId",
        timestamp="timestamp",
        value="rating",
        event_type="rating",
    )
    report.add("read ratings.csv", len(frame), len(events), "no rows removed")
    if include_tags:
        names = ("userId", "movieId", "tag", "timestamp")
        events = _with_tags(events, root / "tags.csv", _read_csv, names, report)

    items = None
    movies_path = root / "movies.csv"
    if movies_path.is_file():
        mframe, mrows = _read_csv(movies_path, ("movieId", "title", "genres"))
        ids = _ids(mframe["movieId"], mrows, "movieId", "item id")
        titles = mframe["title"].tolist()
        links: dict[Any, dict[str, Any]] = {}
        links_path = root / "links.csv"
        if links_path.is_file():
            lframe, _ = _read_csv(links_path, ("movieId", "imdbId", "tmdbId"))
            links = {
                m: {k: v for k, v in (("imdb_id", i), ("tmdb_id", t)) if v}
                for m, i, t in zip(
                    lframe["movieId"].tolist(),
                    lframe["imdbId"].tolist(),
                    lframe["tmdbId"].tolist(),
                    strict=True,
                )
            }
        attributes = [_with_year(links.get(m, {}), t) for m, t in zip(ids, titles, strict=True)]
        items = make_items(ids, titles, _split_genres(mframe["genres"]), attributes)
    return _dataset(
        events,
        path=root,
        fmt="movielens-csv",
        report=report,
        items=items,
        event_types=["rating", "tag"] if include_tags else ["rating"],
    )


def read_movielens_dat(path: str | Path, *, include_tags: bool = False) -> Dataset:
    """Read a MovieLens ``::``-separated release (ml-1m, ml-10m).

    Parameters
    ----------
    path
        The folder (or its ``ratings.dat``): ``ratings.dat`` (``UserID::MovieID::Rating::
        Timestamp``), optional ``movies.dat`` (``MovieID::Title::Genres``, UTF-8 or
        latin-1), ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``) and
        ``tags.dat`` (``UserID::MovieID::Tag::Timestamp``).
    include_tags
        Also read ``tags.dat`` as ``"tag"`` events (see :func:`read_movielens_csv`).

    Returns
    -------
    Dataset
        As :func:`read_movielens_csv` (``attributes`` holds ``year`` only); ``users``
        (when ``users.dat`` exists) has ``user_id``, ``gender``, ``age`` (the age-group
        code, int), ``occupation`` (the code as given) and ``zip``.

    Raises
    ------
    FileNotFoundError
        The folder or ``ratings.dat`` does not exist.
    DataError
        A line with the wrong number of fields, or a bad id, rating or timestamp.
    """
    root = _ml_root(path, "ratings.dat", "MovieLens .dat")
    report = LoadReport()
    frame, rows = _read_lines(
        root / "ratings.dat", "::", ("UserID", "MovieID", "Rating", "Timestamp")
    )
    events = _events(
        frame,
        rows,
        user="UserID",
        item="MovieID",
        timestamp="Timestamp",
        value="Rating",
        event_type="rating",
    )
    report.add("read ratings.dat", len(frame), len(events), "no rows removed")
    if include_tags:
        names = ("UserID", "MovieID", "Tag", "Timestamp")
        read = lambda path, columns: _read_lines(path, "::", columns)  # noqa: E731
        events = _with_tags(events, root / "tags.dat", read, names, report)

    items = None
    movies_path = root / "movies.dat"
    if movies_path.is_file():
        mframe, mrows = _read_lines(movies_path, "::", ("MovieID", "Title", "Genres"))
        ids = _ids(mframe["MovieID"], mrows, "MovieID", "item id")
        titles = mframe["Title"].tolist()
        attributes = [_with_year({}, t) for t in titles]
        items = make_items(ids, titles, _split_genres(mframe["Genres"]), attributes)

    users = None
    users_path = root / "users.dat"
    if users_path.is_file():
        names = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
        uframe, urows = _read_lines(users_path, "::", names)
        users = pd.DataFrame(
            {
                "user_id": _ids(uframe["UserID"], urows, "UserID", "user id"),
                "gender": uframe["Gender"].to_numpy(dtype=object),
                "age": _ints(uframe["Age"], urows, "Age", "age"),
                "occupation": uframe["Occupation"].to_numpy(dtype=object),
                "zip": uframe["Zip-code"].to_numpy(dtype=object),
            }
        )
    return _dataset(
        events,
        path=root,
        fmt="movielens-dat",
        report=report,
        items=items,
        users=users,
        event_types=["rating", "tag"] if include_tags else ["rating"],
    )


def _with_tags(
    events: pd.DataFrame,
    path: Path,
    read: Any,
    columns: tuple[str, str, str, str],
    report: LoadReport,
) -> pd.DataFrame:
    """``events`` and, after them, the rows of the tags file ``path`` (``read(path,
    columns)``; columns user, item, tag, timestamp) as ``"tag"`` events without a value."""
    if not path.is_file():
        raise _missing(path, f"MovieLens tags file {path.name} (include_tags=True)")
    frame, rows = read(path, columns)
    user, item, _, timestamp = columns
    tags = _events(
        frame, rows, user=user, item=item, timestamp=timestamp, value=None, event_type="tag"
    )
    report.add(f"read {path.name}", len(frame), len(tags), "no rows removed")
    return pd.concat([events, tags], ignore_index=True)
