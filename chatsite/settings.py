"""Settings for chatsite, read from the environment.

The defaults are for development on one machine: SQLite and the in-memory channel layer, one process. Setting
DATABASE_URL and REDIS_URL switches to PostgreSQL and channels-redis for several processes. With debug off the
settings refuse to start without a secret key, so production can never run on the development key.
"""

import os
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, not {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's so that `manage.py runserver` serves WebSockets.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Serves the API docs' Swagger UI from its own static files instead of a CDN.
    "ninja",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Persistent connections: the database helpers run in one thread per process, so one connection each,
        # instead of a new one (for PostgreSQL, a new TCP connection and login) for every database call.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        # ...checked before reuse, so that a database restart costs one failed call, not a broken process.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Take the write lock when a transaction begins, so two writers queue for the next seq instead of one
        # failing on lock upgrade; wait up to 20 s for it.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: concurrent-writer tests and the live browser server need a database other
    # connections and processes can see. One per test run, so that two runs never clobber each other's.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    # Named explicitly because channels' live test server derives the name again in its forked process and,
    # without this, looks for test_test_<name>.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
CHAT_CHANNEL_LAYER = os.environ.get("CHAT_CHANNEL_LAYER", "pubsub")
if REDIS_URL and CHAT_CHANNEL_LAYER == "pubsub":
    # One PUBLISH per broadcast, fanned out inside each process; membership lives in the process, so it survives
    # a Redis restart. Its at-most-once delivery is healed by seq (docs/deploy.md has the measurements).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
elif REDIS_URL and CHAT_CHANNEL_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # A busy room must not silently drop deliveries at the default 100; the log heals the rest.
                "capacity": env_int("CHAT_LAYER_CAPACITY", 1000),
                # An undelivered event older than this is stale: the client will have fetched it by seq.
                "expiry": 60,
                # Memberships are re-added by every heartbeat, so a short expiry only cleans up after crashes.
                "group_expiry": 600,
            },
        }
    }
elif REDIS_URL:
    raise ImproperlyConfigured(f"CHAT_CHANNEL_LAYER must be 'pubsub' or 'core', not {CHAT_CHANNEL_LAYER!r}")
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_REDIRECT_URL = "chat:lobby"
LOGOUT_REDIRECT_URL = "chat:lobby"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# In development WhiteNoise serves straight from the finders; STATIC_ROOT only exists after collectstatic.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
# WhiteNoise hands Django a synchronous file iterator, which Django's ASGI handler reads whole before sending
# (and warns). Static files here are a few KiB, so that costs nothing worth a log line per request.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redis_outage": {"()": "chatsite.logfilters.RedisOutageFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # On the handler, not the logger: a logger's filters do not see records of its child loggers.
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redis_outage"]}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "chat": {"level": os.environ.get("CHAT_LOG_LEVEL", "INFO")},
    },
}

if not DEBUG:
    # Production sits behind TLS, terminated by a proxy that says so in X-Forwarded-Proto (docs/deploy.md).
    # DJANGO_SECURE=false turns these off for a plain-HTTP run on one machine, such as the multi-process tests.
    SECURE = env_bool("DJANGO_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = SECURE
    SESSION_COOKIE_SECURE = SECURE
    CSRF_COOKIE_SECURE = SECURE
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 60 * 60 * 24 * 30) if SECURE else 0
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is hard to undo (browsers ship the list), so it is the operator's explicit choice.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # /healthz is probed over plain HTTP from inside the deployment.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "chatsite.storage.StaticStorage"},
    }

TEST_RUNNER = "chatsite.test_runner.CountingTestRunner"

# chatsite's own settings, each overridable from the environment.
CHAT_ALLOW_GUESTS = env_bool("CHAT_ALLOW_GUESTS", True)
CHAT_MAX_MESSAGE_LENGTH = env_int("CHAT_MAX_MESSAGE_LENGTH", 2000)
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 64 * 1024)
CHAT_BACKLOG_LIMIT = env_int("CHAT_BACKLOG_LIMIT", 50)
CHAT_RESUME_LIMIT = env_int("CHAT_RESUME_LIMIT", 1000)
CHAT_HISTORY_MAX_LIMIT = env_int("CHAT_HISTORY_MAX_LIMIT", 100)
# How long after sending a message its author may edit it, in seconds (0: no limit).
CHAT_EDIT_SECONDS = env_int("CHAT_EDIT_SECONDS", 86_400)
# The reactions a message can get, in the order the picker shows them; comma-separated in the environment.
CHAT_REACTIONS = tuple(
    emoji.strip()
    for emoji in os.environ.get(
        "CHAT_REACTIONS",
        "\N{THUMBS UP SIGN},\u2764\ufe0f,\N{FACE WITH TEARS OF JOY},"
        "\N{PARTY POPPER},\N{FACE WITH OPEN MOUTH},\N{CRYING FACE},\N{EYES},\N{WHITE HEAVY CHECK MARK}",
    ).split(",")
    if emoji.strip()
)
# How long an invite link to a room stays good (7 days); it can be revoked sooner.
CHAT_INVITE_SECONDS = env_int("CHAT_INVITE_SECONDS", 7 * 86_400)
if CHAT_INVITE_SECONDS < 1:
    raise ImproperlyConfigured("CHAT_INVITE_SECONDS must be at least 1.")
if CHAT_EDIT_SECONDS < 0 or not CHAT_REACTIONS or any(len(emoji) > 16 for emoji in CHAT_REACTIONS):
    raise ImproperlyConfigured("Need CHAT_EDIT_SECONDS >= 0 and CHAT_REACTIONS of 1-16 characters each.")
CHAT_RATE_LIMIT_BURST = env_int("CHAT_RATE_LIMIT_BURST", 20)
CHAT_RATE_LIMIT_PER_SECOND = env_int("CHAT_RATE_LIMIT_PER_SECOND", 5)
# Open sockets one client address, and one user, may hold in one server process (0: no cap).
CHAT_MAX_SOCKETS_PER_CLIENT = env_int("CHAT_MAX_SOCKETS_PER_CLIENT", 50)
# What the server may hold unsent for one socket (its ASGI server's buffer plus chatsite's own), in bytes. A socket
# over it stops getting live frames until it drains, then is caught up from the log; one that stays behind for
# CHAT_SEND_BEHIND_SECONDS is closed with 4008 and resumes by seq.
CHAT_SEND_BUFFER_BYTES = env_int("CHAT_SEND_BUFFER_BYTES", 256 * 1024)
CHAT_SEND_BEHIND_SECONDS = env_int("CHAT_SEND_BEHIND_SECONDS", 60)
if CHAT_SEND_BUFFER_BYTES < 1 or CHAT_SEND_BEHIND_SECONDS < 1:
    raise ImproperlyConfigured("Need CHAT_SEND_BUFFER_BYTES >= 1 and CHAT_SEND_BEHIND_SECONDS >= 1.")
# Each process refreshes its sockets' presence every CHAT_HEARTBEAT_SECONDS; a socket not refreshed for
# CHAT_PRESENCE_TTL_SECONDS (its process died) stops counting as online and is announced as gone.
CHAT_HEARTBEAT_SECONDS = env_int("CHAT_HEARTBEAT_SECONDS", 20)
CHAT_PRESENCE_TTL_SECONDS = env_int("CHAT_PRESENCE_TTL_SECONDS", 60)
if CHAT_HEARTBEAT_SECONDS < 1 or CHAT_PRESENCE_TTL_SECONDS <= 2 * CHAT_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("Need CHAT_HEARTBEAT_SECONDS >= 1 and CHAT_PRESENCE_TTL_SECONDS > twice it.")
