"""lifelongrec.serving: the long-running service (see ../shared/DESIGN.md).

:class:`RecommenderService` holds the champion, the users' live state, the retrieval
index and the background learner over one home folder (event store + registry);
:func:`create_app` puts the HTTP API (FastAPI, one router per resource) around it;
``lifelongrec serve`` runs both on uvicorn with slow-client limits (:func:`run_server`,
:class:`ServerLimits`).
"""

from lifelongrec.serving._app import DEFAULT_MAX_BODY_BYTES, create_app
from lifelongrec.serving._auth import ENV_KEYS, KEYS_FILE, SCOPES, KeyRing
from lifelongrec.serving._index import ItemIndex
from lifelongrec.serving._server import ServerLimits, run_server
from lifelongrec.serving._service import RecommenderService, ServiceConfig, ServiceError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_KEYS",
    "KEYS_FILE",
    "SCOPES",
    "ItemIndex",
    "KeyRing",
    "RecommenderService",
    "ServiceConfig",
    "ServerLimits",
    "ServiceError",
    "create_app",
    "run_server",
]
