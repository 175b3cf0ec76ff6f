"""The one error type a client can cause. The consumer maps it to an ``error`` frame; nothing else is caught."""


class ClientError(Exception):
    """A frame or request that chatsite refuses, with a machine-readable ``code`` and a human ``detail``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
