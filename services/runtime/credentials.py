"""A service's own identity on outgoing calls: a bearer token of its agency's service account.

In production the token comes from `<SERVICE>_SERVICE_TOKEN_FILE`, a mounted file that an
outside agent refreshes; it is read again every `FILE_REREAD_SECONDS`. On a developer's
machine and in tests, with no file configured, the token is minted locally with the
development private key (`services.runtime.tokens.mint`) for a service account of
`<SERVICE>_AGENCY_CODE`, and reused until shortly before it expires.

    credentials = ServiceCredentials.from_env("visa", auth_config)
    await stub.CreatePayment(request, metadata=credentials.metadata())
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig, ConfigError, env_str
from services.runtime.tokens import mint

# A minted token lives this long and is replaced this long before it ends.
MINTED_TTL_SECONDS = 900
REFRESH_MARGIN_SECONDS = 60
FILE_REREAD_SECONDS = 30.0


class ServiceCredentials:
    def __init__(
        self,
        service: str,
        auth: AuthConfig,
        *,
        token_file: Path | None = None,
        agency_code: str | None = None,
    ) -> None:
        if token_file is None and not agency_code:
            raise ConfigError(
                f"{service.upper()}_AGENCY_CODE is needed to mint the service's own token "
                f"(or set {service.upper()}_SERVICE_TOKEN_FILE)"
            )
        self.service = service
        self.auth = auth
        self.token_file = token_file
        self.agency_code = agency_code
        self._token = ""
        self._renew_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, service: str, auth: AuthConfig, default_agency: str | None = None
    ) -> ServiceCredentials:
        prefix = service.upper()
        token_file = env_str(f"{prefix}_SERVICE_TOKEN_FILE", "")
        return cls(
            service,
            auth,
            token_file=Path(token_file) if token_file else None,
            agency_code=env_str(f"{prefix}_AGENCY_CODE", default_agency or "") or None,
        )

    def token(self) -> str:
        with self._lock:
            now = time.monotonic()
            if not self._token or now >= self._renew_at:
                self._token, self._renew_at = self._fresh(now)
            return self._token

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the token."""
        return (("authorization", f"Bearer {self.token()}"),)

    def _fresh(self, now: float) -> tuple[str, float]:
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as error:
                raise ConfigError(f"cannot read the service token file {self.token_file}: {error}") from None
            if not token:
                raise ConfigError(f"the service token file {self.token_file} is empty")
            return token, now + FILE_REREAD_SECONDS
        assert self.agency_code is not None
        token = mint(
            self.auth,
            PrincipalKind.SERVICE,
            self.service,
            agency_code=self.agency_code,
            ttl_seconds=MINTED_TTL_SECONDS,
        )
        return token, now + MINTED_TTL_SECONDS - REFRESH_MARGIN_SECONDS
