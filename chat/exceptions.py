"""The errors a client can cause: a refused frame (an ``error`` frame) and a refused socket (a close code)."""


class ClientError(Exception):
    """A frame or request that chatsite refuses, with a machine-readable ``code`` and a human ``detail``."""

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        # More fields for the error frame: a mute's "until", slow mode's "retry_after".
        self.extra = extra


class Refused(Exception):
    """A socket chatsite will not serve: the consumer closes it with ``code`` (chat.protocol's close codes)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
