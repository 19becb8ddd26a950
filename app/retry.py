"""Which ingest errors are worth retrying, and how long to wait.

`classify(exc)` walks the exception and its causes (connectors wrap the cloud SDKs' errors in IngestError with
`raise ... from exc`) and answers "transient" for what may work a moment later:

- connection failures and timeouts (Python's ConnectionError/TimeoutError, botocore's connection and read-timeout
  errors, azure-core's ServiceRequestError/ServiceResponseError, requests' and google-auth's transport errors);
- throttling and server errors: HTTP 408, 429 and 5xx, or a throttling error code (S3 `SlowDown`,
  `ThrottlingException`, `RequestLimitExceeded`, ...) from boto3, azure-core or google-api-core;
- another process holding the DuckDB file longer than the lock timeout (WarehouseBusy), and DuckDB's write-write
  conflict between two ingests in one process (both bump the warehouse's data version).

Everything else is "permanent" and fails fast: bad input (an IngestError with no transient cause), access denied
(403), a missing bucket, container or table (404), schema errors, and bugs.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal

Kind = Literal["transient", "permanent"]

THROTTLING_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded", "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
    "ServerBusy", "OperationTimedOut", "TransactionInProgress",
}
TRANSIENT_STATUS = {408, 429}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _status_kind(status) -> Kind | None:
    if not isinstance(status, int):
        return None
    if status in TRANSIENT_STATUS or status >= 500:
        return "transient"
    if 400 <= status < 500:
        return "permanent"
    return None


def _one(exc: BaseException) -> Kind | None:
    """The verdict on one exception of the chain, or None when it says nothing either way (look at its cause)."""
    import duckdb

    from app.warehouse import WarehouseBusy

    if isinstance(exc, WarehouseBusy):
        return "transient"
    if isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower():
        return "transient"  # two writers in one process touched the same row (e.g. the data version): redo
    module = type(exc).__module__ or ""
    if module.startswith("botocore"):
        from botocore import exceptions as be

        if isinstance(exc, be.ClientError):
            err = exc.response.get("Error", {})
            if err.get("Code") in THROTTLING_CODES:
                return "transient"
            return _status_kind(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")) or "permanent"
        if isinstance(exc, (be.ConnectionError, be.HTTPClientError, be.ConnectionClosedError)):
            return "transient"  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ...
        if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError, be.ParamValidationError)):
            return "permanent"
        return None
    if module.startswith("azure"):
        from azure.core import exceptions as ae

        if isinstance(exc, (ae.ServiceRequestError, ae.ServiceResponseError)):
            return "transient"  # could not connect / the connection broke or timed out
        if isinstance(exc, ae.HttpResponseError):
            if (getattr(exc, "error_code", None) or "") in THROTTLING_CODES:
                return "transient"
            return _status_kind(getattr(exc, "status_code", None)) or "permanent"
        if isinstance(exc, ae.ClientAuthenticationError):
            return "permanent"
        return None
    if module.startswith("google"):
        try:
            from google.api_core import exceptions as ge
        except ImportError:  # pragma: no cover - google-cloud-* is a dependency
            ge = None
        if ge is not None:
            if isinstance(exc, (ge.RetryError, ge.DeadlineExceeded)):
                return "transient"
            if isinstance(exc, ge.GoogleAPICallError):
                return _status_kind(getattr(exc, "code", None)) or "permanent"
        from google.auth import exceptions as gae

        if isinstance(exc, gae.TransportError):
            return "transient"
        if isinstance(exc, gae.GoogleAuthError):
            return "permanent"
        return None
    if module.startswith(("requests", "urllib3")):
        import requests

        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return "transient"
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return _status_kind(exc.response.status_code)
        return None
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "transient"
    return None


def classify(exc: BaseException) -> Kind:
    """transient (retry with backoff) or permanent (fail now): the first decisive exception in the cause chain."""
    for link in _chain(exc):
        kind = _one(link)
        if kind is not None:
            return kind
    return "permanent"


def backoff(retry: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds before retry number `retry` (1, 2, ...): exponential with full jitter, uniform in
    [0, min(cap, base * 2**(retry-1))]."""
    ceiling = min(cap, base * (2 ** (retry - 1)))
    return (rand or random).uniform(0, ceiling)
