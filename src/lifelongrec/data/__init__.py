"""Events and catalogues: schema, readers, the synthetic world and its families of
streams, the event store, preprocessing, splits; data as an experiment names it
(:func:`load_data`, :func:`prepare`, :func:`make_split`, :func:`parse_columns`)."""

from lifelongrec.data._bus import (
    BusUnavailableError,
    EventFeed,
    RedisEventBus,
    StoreFeed,
    is_bus_url,
)
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
    SHOWN_COLUMNS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    TIMESTAMP_RANGE,
    Dataset,
    LoadReport,
    as_dataset,
    check_impressions,
    make_events,
    make_items,
)
from lifelongrec.data._sources import (
    COLUMN_ROLES,
    PROTOCOLS,
    SYNTHETIC,
    TIMESTAMP_UNITS,
    columns_note,
    load_data,
    make_split,
    parse_columns,
    prepare,
)
from lifelongrec.data._split import Split, leave_one_out, temporal_split, time_windows
from lifelongrec.data._stats import describe
from lifelongrec.data._store import AppendResult, EventStore, StoreClosedError
from lifelongrec.data._store_impressions import IMPRESSION_COLUMNS
from lifelongrec.data._store_pg import (
    PostgresEventStore,
    StoreUnavailableError,
    is_store_url,
    open_store,
    shown_url,
)
from lifelongrec.data._synthetic import SyntheticWorld, synthetic
from lifelongrec.data._synthetic_streams import STREAM_FAMILIES, synthetic_streams

__all__ = [
    "AppendResult",
    "COLUMN_ROLES",
    "DEFAULT_EVENT_TYPE",
    "EVENT_COLUMNS",
    "SHOWN_COLUMNS",
    "FORMATS",
    "IMPRESSION_COLUMNS",
    "ITEM_COLUMNS",
    "PROTOCOLS",
    "STREAM_FAMILIES",
    "SYNTHETIC",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "TIMESTAMP_RANGE",
    "TIMESTAMP_UNITS",
    "BusUnavailableError",
    "Dataset",
    "EventFeed",
    "EventStore",
    "LoadReport",
    "PostgresEventStore",
    "RedisEventBus",
    "StoreFeed",
    "Split",
    "StoreClosedError",
    "StoreUnavailableError",
    "SyntheticWorld",
    "as_dataset",
    "check_impressions",
    "columns_note",
    "deduplicate",
    "describe",
    "detect_format",
    "implicit_feedback",
    "is_bus_url",
    "is_store_url",
    "kcore",
    "leave_one_out",
    "load",
    "load_data",
    "make_split",
    "make_events",
    "make_items",
    "open_store",
    "parse_columns",
    "prepare",
    "read_amazon_reviews",
    "read_movielens_100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_sequence_file",
    "read_table",
    "shown_url",
    "sort_by_time",
    "synthetic",
    "synthetic_streams",
    "temporal_split",
    "time_windows",
]
