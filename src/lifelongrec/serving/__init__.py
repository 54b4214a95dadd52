"""lifelongrec.serving: the long-running service (see ../shared/DESIGN.md).

:class:`RecommenderService` holds the champion, the users' live state, the retrieval
index and the background :class:`Learner` over one home folder (event store + registry),
with settings in a :class:`ServiceConfig` grouped by concern; :func:`create_app` puts
the HTTP API (FastAPI, one router per resource, a lifespan) around it;
``lifelongrec serve`` runs both on uvicorn with slow-client limits (:func:`run_server`,
:class:`ServerLimits`).
"""

from lifelongrec.serving._app import DEFAULT_MAX_BODY_BYTES, create_app
from lifelongrec.serving._auth import ENV_KEYS, KEYS_FILE, SCOPES, KeyRing
from lifelongrec.serving._capabilities import OnlineBuffering, VectorModel
from lifelongrec.serving._config import (
    CLICK_TYPES,
    STANDARD_EVENT_TYPES,
    ExperimentSettings,
    FeedbackSettings,
    GateSettings,
    IndexSettings,
    LearnerSettings,
    LimitSettings,
    ServiceConfig,
    StoreSettings,
    UserSettings,
)
from lifelongrec.serving._experiments import ExperimentConflict
from lifelongrec.serving._impressions import ImpressionLog
from lifelongrec.serving._index import ItemIndex
from lifelongrec.serving._learner import Learner, LearnerHost
from lifelongrec.serving._live import LiveModel
from lifelongrec.serving._server import (
    ServerLimits,
    fit_open_file_limit,
    run_server,
    serve_in_thread,
    uvicorn_options,
)
from lifelongrec.serving._service import RecommenderService, ServiceError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_KEYS",
    "KEYS_FILE",
    "SCOPES",
    "STANDARD_EVENT_TYPES",
    "CLICK_TYPES",
    "ExperimentConflict",
    "ExperimentSettings",
    "FeedbackSettings",
    "ImpressionLog",
    "GateSettings",
    "IndexSettings",
    "ItemIndex",
    "KeyRing",
    "Learner",
    "LearnerHost",
    "LearnerSettings",
    "LimitSettings",
    "LiveModel",
    "OnlineBuffering",
    "RecommenderService",
    "ServiceConfig",
    "ServerLimits",
    "ServiceError",
    "StoreSettings",
    "UserSettings",
    "VectorModel",
    "create_app",
    "fit_open_file_limit",
    "run_server",
    "serve_in_thread",
    "uvicorn_options",
]
