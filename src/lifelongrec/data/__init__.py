"""Events and catalogues: schema, readers, the synthetic world, the event store,
preprocessing, splits."""

from lifelongrec.data._preprocess import deduplicate, implicit_feedback, kcore, sort_by_time
from lifelongrec.data._readers import (
    FORMATS,
    detect_format,
    load,
    read_amazon_reviews,
    read_movielens_100k,
    read_movielens_csv,
    read_movielens_dat,
    read_sequence_file,
    read_table,
)
from lifelongrec.data._schema import (
    DEFAULT_EVENT_TYPE,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    TIMESTAMP_RANGE,
    Dataset,
    LoadReport,
    as_dataset,
    make_events,
    make_items,
)
from lifelongrec.data._split import Split, leave_one_out, temporal_split, time_windows
from lifelongrec.data._stats import describe
from lifelongrec.data._store import AppendResult, EventStore, StoreClosedError
from lifelongrec.data._synthetic import SyntheticWorld, synthetic

__all__ = [
    "AppendResult",
    "DEFAULT_EVENT_TYPE",
    "EVENT_COLUMNS",
    "FORMATS",
    "ITEM_COLUMNS",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "TIMESTAMP_RANGE",
    "Dataset",
    "EventStore",
    "LoadReport",
    "Split",
    "StoreClosedError",
    "SyntheticWorld",
    "as_dataset",
    "deduplicate",
    "describe",
    "detect_format",
    "implicit_feedback",
    "kcore",
    "leave_one_out",
    "load",
    "make_events",
    "make_items",
    "read_amazon_reviews",
    "read_movielens_100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_sequence_file",
    "read_table",
    "sort_by_time",
    "synthetic",
    "temporal_split",
    "time_windows",
]
