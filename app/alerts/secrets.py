"""Channel credentials at rest: webhook URLs (a Slack or Teams webhook URL is itself a credential) and generic
webhook HMAC secrets are stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from the server
secret (CLOUDTALLY_API_KEY_SECRET or <data_dir>/api-key-secret, mode 0600; app.access.server_secret). A copy of the
control database alone does not reveal them. They are never logged; views show only a hint."""
from __future__ import annotations

import base64
import hashlib
import secrets as _secrets
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from app.access import server_secret


def _fernet(rt) -> Fernet:
    key = hashlib.sha256(b"cloudtally-alert-channels\x00" + server_secret(rt.settings)).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(rt, plain: str) -> str:
    return _fernet(rt).encrypt(plain.encode()).decode()


def unseal(rt, token: str) -> str:
    try:
        return _fernet(rt).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("a channel credential cannot be decrypted: the server secret changed since the channel "
                           "was created; re-create the channel") from exc


def new_webhook_secret() -> str:
    return "whsec_" + _secrets.token_urlsafe(32)


def hint(url: str) -> str:
    """What a view shows of a target URL: scheme, host and port, never the path (Slack/Teams put tokens there)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"
