"""PayNow's shared service framework: settings, errors, logging, middleware, clients, app."""

from ._access_tokens import (
    AccessTokenRejected,
    AccessTokenVerifier,
    CachedJwks,
    JwksFetch,
    VerifiedToken,
)
from ._app import MigratingDatabase, ServiceApp
from ._clients import close_channels, connect, outgoing_timeout
from ._config import ConfigError, Secret, ServiceSettings, load_settings
from ._errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    IdempotencyKeyReused,
    Internal,
    InvalidArgument,
    InvalidPageToken,
    NotFound,
    PermissionDenied,
    RequestInProgress,
    ResourceExhausted,
    StorageUnavailable,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    to_status,
)
from ._idempotency import IdempotencyStore, idempotency_table
from ._identity import (
    CALLER_SERVICE_KEY,
    INTERNAL_TOKEN_KEY,
    MERCHANT_ID_KEY,
    REQUEST_ID_KEY,
    USER_ID_KEY,
    Caller,
    current_caller,
    current_request_id,
)
from ._ids import ID_ALPHABET, ID_LENGTH, is_id, new_id
from ._local_secrets import local_secret
from ._logging import configure_logging, register_secret
from ._paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PageRequest,
    TimeOrdered,
    encode_page_token,
    page_request,
)
from ._proto_time import to_timestamp
from ._registry import Registry, RegistryError, ServiceEntry, load_registry
from ._remote_errors import RemoteError, remote_error
from ._sql_types import UtcDateTime
from ._storage import Database
from ._uow import SqlUnitOfWorkRunner, UnitOfWorkRunner

__all__ = [
    "CALLER_SERVICE_KEY",
    "DEFAULT_PAGE_SIZE",
    "ID_ALPHABET",
    "ID_LENGTH",
    "INTERNAL_TOKEN_KEY",
    "MAX_PAGE_SIZE",
    "MERCHANT_ID_KEY",
    "REQUEST_ID_KEY",
    "USER_ID_KEY",
    "Aborted",
    "AccessTokenRejected",
    "AccessTokenVerifier",
    "AlreadyExists",
    "CachedJwks",
    "Caller",
    "ConfigError",
    "Database",
    "DomainError",
    "FailedPrecondition",
    "IdempotencyKeyReused",
    "IdempotencyStore",
    "Internal",
    "InvalidArgument",
    "InvalidPageToken",
    "JwksFetch",
    "MigratingDatabase",
    "NotFound",
    "PageRequest",
    "PermissionDenied",
    "Registry",
    "RegistryError",
    "RemoteError",
    "RequestInProgress",
    "ResourceExhausted",
    "Secret",
    "ServiceApp",
    "ServiceEntry",
    "ServiceSettings",
    "SqlUnitOfWorkRunner",
    "StorageUnavailable",
    "TimeOrdered",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnitOfWorkRunner",
    "UtcDateTime",
    "VerifiedToken",
    "close_channels",
    "configure_logging",
    "connect",
    "current_caller",
    "current_request_id",
    "encode_page_token",
    "idempotency_table",
    "is_id",
    "load_registry",
    "load_settings",
    "local_secret",
    "new_id",
    "outgoing_timeout",
    "page_request",
    "register_secret",
    "remote_error",
    "to_status",
    "to_timestamp",
]
