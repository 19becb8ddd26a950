"""The Cost Management client that connectors/azure/export_definitions.py and export_runs.py talk through:
`azure-mgmt-costmanagement` 5.0.0 (api-version 2025-03-01) with CloudTally's retry policy, the error messages, and
the UTC time parsing and formatting both use.

Errors come out as `IngestError`s naming the scope and the export (403 says which role is missing, 404 whether the
scope or the export, 400 carries the service's message, 429 says how often it was tried).

Throttling: azure-core's `RetryPolicy` already retries a response that carries `Retry-After` (any method, any
status >= 400) and sleeps exactly the stated delay through `transport.sleep`; it reads `Retry-After`,
`retry-after-ms` and `x-ms-retry-after-ms`. Cost Management states its delay in its own headers
(`x-ms-ratelimit-microsoft.costmanagement-{qpu,entity,tenant,clienttype}-retry-after`, seconds), and azure-core
does not retry a POST (query, run) on a 429 without `Retry-After`. `ThrottleRetryPolicy` is azure-core's policy
with exactly those two additions, a bounded number of attempts, a cap on how long one stated delay may be, and an
injectable sleep (tests); no retry loop of our own.

Credentials: any `TokenCredential`; `DefaultAzureCredential()` when none is given. Nothing is stored. `base_url`
overrides the Resource Manager endpoint (sovereign clouds, tests). A bearer token is only ever sent over https,
except to a loopback address (127.0.0.1, ::1, localhost) — the local test server — where the request is sent with
azure-core's per-request `enforce_https=False` option.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlparse

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import RetryPolicy

from connectors.base import IngestError

API_VERSION = "2025-03-01"
_CM_RETRY_AFTER = re.compile(r"^x-ms-ratelimit-microsoft\.costmanagement-[a-z0-9.-]*retry-after$", re.I)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ------------------------------------------------------------------------------------------- client and retries


class ThrottleRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy, plus Cost Management's throttling headers and bounded, injectable waits.

    max_attempts: requests in all (first try included). max_retry_after: a stated delay longer than this (seconds)
    is not waited out; the 429 is returned at once. sleep: called with the delay instead of `transport.sleep`."""

    def __init__(self, *, max_attempts: int = 4, max_retry_after: float = 300.0,
                 sleep: Callable[[float], None] | None = None, **kwargs: Any) -> None:
        retries = max(0, max_attempts - 1)
        kwargs.setdefault("retry_backoff_factor", 1.0)
        super().__init__(retry_total=retries, retry_status=retries, **kwargs)
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self._sleep_fn = sleep

    def get_retry_after(self, response) -> float | None:
        stated = super().get_retry_after(response)
        for name, value in response.http_response.headers.items():
            if _CM_RETRY_AFTER.match(name):
                try:
                    seconds = float(value)
                except ValueError:
                    continue
                stated = seconds if stated is None else max(stated, seconds)
        return stated

    def is_retry(self, settings, response) -> bool:
        if response.http_response.status_code == 429:
            # A 429 was not processed, so retrying any method (also POST) is safe — unless told to wait too long.
            stated = self.get_retry_after(response)
            return stated is None or stated <= self.max_retry_after
        return super().is_retry(settings, response)

    def sleep(self, settings, transport, response=None) -> None:
        delay = self.get_retry_after(response) if response is not None else None
        if delay is None:
            delay = self.get_backoff_time(settings)
        if delay > 0:
            (self._sleep_fn or transport.sleep)(delay)


def make_client(credential: Any = None, *, base_url: str | None = None, max_attempts: int = 4,
                max_retry_after: float = 300.0, sleep: Callable[[float], None] | None = None, **kwargs: Any):
    """A `CostManagementClient` (api-version 2025-03-01) with CloudTally's retry policy.

    credential: any TokenCredential; `DefaultAzureCredential()` when None. base_url: the Resource Manager endpoint
    (default: the public cloud's, https://management.azure.com). Plain http is accepted only for a loopback host."""
    from azure.mgmt.costmanagement import CostManagementClient

    if base_url:
        _check_base_url(base_url)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    policy = ThrottleRetryPolicy(max_attempts=max_attempts, max_retry_after=max_retry_after, sleep=sleep)
    client = CostManagementClient(credential, base_url=base_url, api_version=API_VERSION, retry_policy=policy,
                                  **kwargs)
    client._cloudtally_attempts = max_attempts  # for error messages
    return client


def _check_base_url(base_url: str) -> None:
    u = urlparse(base_url)
    if u.scheme == "https":
        return
    if u.scheme == "http" and (u.hostname or "") in _LOOPBACK:
        return
    raise ValueError(f"base_url {base_url!r}: a bearer token is only sent over https (plain http only to a "
                     "loopback address, for tests)")


class _Session:
    """A client plus what every call needs: the per-request options and the names errors cite."""

    def __init__(self, client, credential, base_url, kwargs):
        self.client = client or make_client(credential, base_url=base_url, **kwargs)
        endpoint = str(getattr(self.client._config, "base_url", "") or "")
        self.endpoint = endpoint
        # azure-core refuses bearer tokens over http; allowed only for loopback (checked in make_client).
        self.opts: dict[str, Any] = {}
        if endpoint.startswith("http://"):
            _check_base_url(endpoint)
            self.opts["enforce_https"] = False
        self.attempts = getattr(self.client, "_cloudtally_attempts", None)


# --------------------------------------------------------------------------------------------------- helpers


def _service_error(exc: Exception) -> tuple[str | None, str | None]:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            doc = json.loads(response.text() or "{}")
            err = doc.get("error", doc) if isinstance(doc, dict) else {}
            if isinstance(err, dict) and (err.get("code") or err.get("message")):
                return err.get("code"), err.get("message")
        except (ValueError, TypeError, AttributeError):
            pass
    error = getattr(exc, "error", None)
    if error is not None and (getattr(error, "code", None) or getattr(error, "message", None)):
        return getattr(error, "code", None), getattr(error, "message", None)
    return None, getattr(exc, "reason", None) or None


def _scope_missing(code: str) -> bool:
    c = code.lower()
    return any(k in c for k in ("subscriptionnotfound", "billingaccountnotfound", "billingprofilenotfound",
                                "resourcegroupnotfound", "invalidsubscription", "scopenotfound",
                                "invalidscope", "invalidbilling"))


def _explain(exc: Exception, s: _Session, scope: str, export: str | None, action: str, *, write: bool) -> IngestError:
    """An SDK exception -> IngestError naming the action, the export and the scope."""
    what = f"{action} {export!r} on {scope}" if export else f"{action} {scope}"
    if isinstance(exc, IngestError):
        return exc
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)) and getattr(exc, "response", None) is None:
        return IngestError(f"Azure Cost Management: could not {what}: cannot reach {s.endpoint or 'the endpoint'}: "
                           f"{exc}")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return IngestError(f"Azure Cost Management: could not {what}: no Azure token ({exc}). Sign in (az login), "
                           "or set a service principal or managed identity for DefaultAzureCredential")
    code, message = _service_error(exc)
    said = f" (service says: {code + ': ' if code else ''}{message})" if message or code else ""
    if status == 401:
        return IngestError(f"Azure Cost Management: could not {what}: the token was rejected (HTTP 401){said}")
    if status == 403:
        role = ("Cost Management Contributor" if write
                else "Cost Management Reader (or Cost Management Contributor)")
        return IngestError(f"Azure Cost Management: could not {what}: permission denied (HTTP 403) — the identity "
                           f"needs {role} on {scope}{said}")
    if status == 404:
        if code and _scope_missing(code) or not export or action.startswith("create"):
            return IngestError(f"Azure Cost Management: could not {what}: scope {scope} not found (HTTP 404); "
                               f"check the subscription / billing account id{said}")
        return IngestError(f"Azure Cost Management: could not {what}: export {export!r} not found on {scope} "
                           f"(HTTP 404){said}")
    if status == 400:
        return IngestError(f"Azure Cost Management rejected the request to {what} (HTTP 400): "
                           f"{code + ': ' if code else ''}{message or exc}")
    if status == 429:
        stated = _stated_delay(exc)
        tries = f"{s.attempts} attempts" if s.attempts else "its retries"
        if stated is not None and s.attempts and isinstance(s.client._config.retry_policy, ThrottleRetryPolicy) \
                and stated > s.client._config.retry_policy.max_retry_after:
            return IngestError(f"Azure Cost Management throttled the request to {what} (HTTP 429) and asked to wait "
                               f"{stated:g} s, longer than the {s.client._config.retry_policy.max_retry_after:g} s "
                               "CloudTally waits; try again later")
        return IngestError(f"Azure Cost Management throttled the request to {what}: still HTTP 429 after {tries}"
                           + (f" (last Retry-After {stated:g} s)" if stated is not None else "")
                           + "; try again later")
    return IngestError(f"Azure Cost Management: could not {what}: HTTP {status}{said or ' ' + str(exc)}")


def _stated_delay(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    best = None
    for name, value in response.headers.items():
        if name.lower() == "retry-after" or _CM_RETRY_AFTER.match(name):
            try:
                v = float(value)
            except ValueError:
                continue
            best = v if best is None else max(best, v)
    return best


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
    if m:  # Python 3.11 accepts at most 6 fractional digits; .NET sends 7
        text = f"{m.group(1)}.{m.group(2)[:6]}{m.group(3)}"
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
