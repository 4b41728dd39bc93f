"""The server key behind foreign payers' confirmation secrets.

A payer without ASAN Login (an e-visa applicant) pays with the payment's confirmation secret
instead of a token. The secret is an HMAC-SHA256 of the payment id under this key, so that it
can be computed again whenever it must be shown (CreatePayment and its replays) and is never
kept anywhere: not in the payments table, not in a stored idempotency response. Payments keep
a SHA-256 of it, which verifies a secret and still does after the key changed.

The key lives in PAYMENT_CONFIRMATION_KEY_FILE (at least 32 bytes of random text, e.g.
`openssl rand -base64 48`), mounted from a Secret: every replica must hold the same key. On a
developer's machine, without the variable, it is made on first use under ASAN_VAR_DIR/keys,
like the token keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from services.payment.tables import PaymentRow
from services.runtime.config import ConfigError, env_str, var_dir

MIN_KEY_BYTES = 32
_CONTEXT = b"asan.payment.v1 confirmation secret\0"


class ConfirmationKey:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a confirmation key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def secret_for(self, payment_id: str) -> str:
        """The payment's confirmation secret: 32 bytes, base64url without padding."""
        digest = hmac.new(self._key, _CONTEXT + payment_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def matches(self, payment: PaymentRow, secret: str) -> bool:
        """Whether `secret` is the confirmation secret of a payment payable by one (a foreign
        payer's): its kept hash, or this key's secret for it; compared in constant time."""
        if not secret or not payment.confirmation_secret_hash:
            return False
        kept = hmac.compare_digest(secret_hash(secret), payment.confirmation_secret_hash)
        # After a change of key, a replayed CreatePayment shows the secret under the new key.
        return kept | hmac.compare_digest(secret, self.secret_for(payment.id))

    @classmethod
    def from_env(cls) -> ConfirmationKey:
        """The key in PAYMENT_CONFIRMATION_KEY_FILE, which must exist (a key made per pod would
        give each replica other secrets); without the variable, a development key under the
        var directory, made on first use."""
        configured = env_str("PAYMENT_CONFIRMATION_KEY_FILE", "")
        if configured:
            path = Path(configured)
            if not path.is_file():
                raise ConfigError(f"PAYMENT_CONFIRMATION_KEY_FILE names {path}, which does not exist")
        else:
            path = var_dir() / "keys" / "payment_confirmation.key"
            if not path.exists():
                _create_key(path)
        key = path.read_bytes().strip()
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"{path} (PAYMENT_CONFIRMATION_KEY_FILE) must hold at least {MIN_KEY_BYTES} bytes of "
                "random text, e.g. `openssl rand -base64 48`"
            )
        return cls(key)


def secret_hash(secret: str) -> str:
    """What a payment keeps of its secret: the SHA-256 hex of the text."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name (0600 from the start), then linked into place: two
    # processes starting together keep one key, and neither reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(base64.b64encode(secrets.token_bytes(48)) + b"\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
