"""Logging filters. Kept out of settings.py so that LOGGING can name them."""

import logging

from redis.exceptions import RedisError


class RedisOutageFilter(logging.Filter):
    """Turn channels-redis' stack traces for a lost Redis connection into one line.

    While Redis restarts, the pub/sub layer's reader logs the same ConnectionError with a full traceback every
    second. That is an outage to see at a glance, not a bug to debug: the message and the error stay, the stack
    goes. Any other exception keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("channels_redis") and isinstance(error, RedisError | OSError):
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
