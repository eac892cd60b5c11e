"""Settings for the Snowbuddy matching console, read from the environment.

Long on purpose: Django reads one settings module, and every setting with its default lives
here (code reads `settings.X` and repeats no default).

Defaults run on one machine with no servers (SQLite and a filesystem broker under var/).
Production turns real services on by setting variables; see .env.example.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from snowbuddy.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_proxy_ssl_header,
    env_rate,
    env_secret,
    env_str,
    env_url,
)
from snowbuddy.openapi_json import JSON_VALUE

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SNOWBUDDY_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # Local runs: a random key kept under var/ so admin sessions survive restarts.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        import secrets

        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Browsers (SnowTrace's web app) call the API from their own origin: CORS for the API paths only,
# never the admin. Bearer tokens, not cookies, so no credentials.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/(matching|requests)(/.*)?$"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "idempotency-key")
CORS_EXPOSE_HEADERS = ("Retry-After", "Idempotent-Replayed")
CORS_PREFLIGHT_MAX_AGE = 600

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_standardized_errors",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "matching.apps.MatchingConfig",
    "workflows",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "snowbuddy.staff.apps.StaffConfig",
]

MIDDLEWARE = [
    # Outermost: every answer gets a request id and is counted, static files and 413s included.
    "snowbuddy.middleware.ObservabilityMiddleware",
    # First, so a browser's preflight is answered before anything else can answer it.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "snowbuddy.middleware.NoStoreMiddleware",
    "snowbuddy.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Accept-Language is the first guess; the staff member's saved choice (and time zone) wins on
    # the console, and everything else (the API, webhooks) is answered in English (StaffPreferenceMiddleware).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "matching.admin.preferences.StaffPreferenceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: an expired session says why on the sign-in page.
    "snowbuddy.staff.middleware.StaffSessionMiddleware",
    "snowbuddy.staff.middleware.StaffSecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "snowbuddy.urls"
WSGI_APPLICATION = "snowbuddy.wsgi.application"
ASGI_APPLICATION = "snowbuddy.asgi.application"

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
                "matching.admin.preferences.header_context",
            ],
        },
    },
]

try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'snowbuddy.sqlite3'}",
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server fails the start-up check in seconds, not after the OS's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The console speaks Traditional Chinese or English (docs/console.md); the API always English.
LANGUAGES = [("zh-hant", "繁體中文"), ("en", "English")]
LANGUAGE_CODE = env_choice("LANGUAGE_CODE", "en", tuple(code for code, _ in LANGUAGES))
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["snowbuddy.formats"]  # one date-time form in both languages, with its zone
TIME_ZONE = "UTC"  # storage, logs, exports and the API
USE_I18N = True
USE_TZ = True
# The console's times for a staff member who has not chosen a zone of their own.
STAFF_TIME_ZONE = env_str("STAFF_TIME_ZONE", "Asia/Taipei")
try:
    ZoneInfo(STAFF_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(f"STAFF_TIME_ZONE: unknown time zone {STAFF_TIME_ZONE!r}") from exc

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# The REST API rejects bodies over 64 KB with 413 (see RequestBodyLimitMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
API_MAX_BODY_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE

# --- Redis, cache, Celery --------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"REDIS_URL: expected redis:// or rediss://, got {REDIS_URL!r}")

# The cache may live in its own Redis database (the test suite clears it between tests and
# must not flush the broker's queues with it).
REDIS_CACHE_URL = env_str("REDIS_CACHE_URL") or REDIS_URL
if REDIS_CACHE_URL and not REDIS_CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"REDIS_CACHE_URL: expected redis:// or rediss://, got {REDIS_CACHE_URL!r}")
if REDIS_CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}}
else:
    # File-based so the throttle is shared by every local process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=2)
CELERY_BROKER_VISIBILITY_TIMEOUT = env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600, minimum=3)
# The broker: CELERY_BROKER_URL (redis://, rediss://, amqp://, amqps://), else REDIS_URL, else an
# embedded filesystem broker. Recovery from a lost worker or a lost message does not depend on the
# broker: it is the lease's job (MATCHING_LEASE_*, docs/RELIABILITY.md).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
BROKER_KIND = CELERY_BROKER_URL.split(":", 1)[0] if CELERY_BROKER_URL else "filesystem"
if BROKER_KIND in ("redis", "rediss"):
    if CELERY_TASK_TIME_LIMIT >= CELERY_BROKER_VISIBILITY_TIMEOUT:
        raise ImproperlyConfigured(
            "CELERY_TASK_TIME_LIMIT: must be shorter than CELERY_BROKER_VISIBILITY_TIMEOUT, "
            "or a slow task would be redelivered while still running"
        )
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
elif BROKER_KIND in ("amqp", "amqps", "pyamqp"):
    # RabbitMQ: publisher confirms (a publish returns once the broker has the message), persistent
    # messages on durable queues (Celery's defaults), and redelivery of a dead consumer's unacked
    # messages as soon as its connection closes: no visibility timeout.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    CELERY_BROKER_HEARTBEAT = env_int("CELERY_BROKER_HEARTBEAT", 30, minimum=0)
elif BROKER_KIND == "filesystem" and not CELERY_BROKER_URL:
    # An embedded broker that needs no server: kombu's filesystem transport under var/.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL: expected redis://, rediss://, amqp:// or amqps://, got {BROKER_KIND}://…"
    )
# The queue searches are sent to (a deployment, or a test, may keep its own).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery") or "celery"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_SWEEP_INTERVAL_SECONDS = env_int("CELERY_SWEEP_INTERVAL_SECONDS", 30, minimum=1)
# A worker keeps its database connection between tasks as a web worker does between requests
# (DATABASE_CONN_MAX_AGE, closed at once when broken: snowbuddy/celery.py); without this Celery's
# Django fix-up closes it around every task, and each search opened a new PostgreSQL connection.
# The fix-up still closes it after this many tasks.
CELERY_DB_REUSE_MAX = 1000
# A dispatch record older than this with no send is considered lost and re-sent.
DISPATCH_GRACE_SECONDS = env_int("DISPATCH_GRACE_SECONDS", 20, minimum=0)

# --- Worker leases (workflows/celery_engine/heartbeat.py and recovery.py; docs/RELIABILITY.md) -------------
# A worker running a search holds a lease it renews every MATCHING_LEASE_RENEW_SECONDS; a lease not
# renewed for MATCHING_LEASE_SECONDS has expired (the worker died or hung) and the attempt is sent
# again under a new claim generation. A search sent but not claimed within MATCHING_QUEUE_LEASE_SECONDS
# (the message was lost: a broker restart, a worker killed holding it) is sent again, each re-send
# waiting twice as long. Defaults recover a SIGKILLed worker's search in under a minute.
MATCHING_LEASE_SECONDS = env_int("MATCHING_LEASE_SECONDS", 20, minimum=3)
MATCHING_LEASE_RENEW_SECONDS = env_int("MATCHING_LEASE_RENEW_SECONDS", max(1, MATCHING_LEASE_SECONDS // 4), minimum=1)
if MATCHING_LEASE_RENEW_SECONDS * 2 > MATCHING_LEASE_SECONDS:
    raise ImproperlyConfigured(
        "MATCHING_LEASE_RENEW_SECONDS: must be at most half of MATCHING_LEASE_SECONDS, "
        "or one late renewal would let a live worker's lease expire"
    )
MATCHING_LEASE_SWEEP_INTERVAL_SECONDS = env_int("MATCHING_LEASE_SWEEP_INTERVAL_SECONDS", 10, minimum=1)
MATCHING_QUEUE_LEASE_SECONDS = env_int("MATCHING_QUEUE_LEASE_SECONDS", 30, minimum=3)
MATCHING_LEASE_MAX_CLAIMS = env_int("MATCHING_LEASE_MAX_CLAIMS", 3, minimum=1)
# Submits whose dispatch record is handed to a relay thread after commit (`thread`), so a request
# never waits on the broker or the Durable API; `inline` sends in the request (debugging only).
MATCHING_DISPATCH_RELAY = env_choice("MATCHING_DISPATCH_RELAY", "thread", ("thread", "inline"))
# The search page links each attempt's OpenTelemetry trace id through this template, e.g.
# "https://tempo.example/trace/{trace_id}" (blank: the id is shown unlinked). Tracing itself is
# configured only by the standard OTEL_* variables (snowbuddy/tracing.py).
TRACE_URL_TEMPLATE = env_url("TRACE_URL_TEMPLATE", "")
if TRACE_URL_TEMPLATE and "{trace_id}" not in TRACE_URL_TEMPLATE:
    raise ImproperlyConfigured(f"TRACE_URL_TEMPLATE must contain {{trace_id}}, got {TRACE_URL_TEMPLATE!r}")
# An Idempotency-Key binds a user's submit to its search for this long.
MATCHING_IDEMPOTENCY_TTL_SECONDS = env_int("MATCHING_IDEMPOTENCY_TTL_SECONDS", 86400, minimum=60)

# --- Matching engine selection (same switches as the old service) ------------------------
MATCHING_WORKFLOW_URL = env_url("MATCHING_WORKFLOW_URL")
MATCHING_WORKFLOW_AUTH_MODE = env_choice("MATCHING_WORKFLOW_AUTH_MODE", "api_key", ("api_key", "iam_sigv4", "none"))
MATCHING_WORKFLOW_API_KEY = env_secret("MATCHING_WORKFLOW_API_KEY")
MATCHING_WORKFLOW_API_KEY_HEADER = env_str("MATCHING_WORKFLOW_API_KEY_HEADER", "X-API-Key") or "X-API-Key"
MATCHING_WORKFLOW_SIGV4_SERVICE = env_choice(
    "MATCHING_WORKFLOW_SIGV4_SERVICE", "execute-api", ("execute-api", "lambda")
)
MATCHING_WORKFLOW_CALLBACK_URL = env_url("MATCHING_WORKFLOW_CALLBACK_URL")
MATCHING_WORKFLOW_TIMEOUT_SECONDS = env_int("MATCHING_WORKFLOW_TIMEOUT_SECONDS", 3600, minimum=1)
MATCHING_NOTIFICATION_WEBHOOK_URL = env_url("MATCHING_NOTIFICATION_WEBHOOK_URL")
# Completion notifications to SnowTrace (workflows/outbound/notifications.py, docs/contracts.md).
MATCHING_NOTIFICATION_WEBHOOK_SECRET = env_secret("MATCHING_NOTIFICATION_WEBHOOK_SECRET")
MATCHING_NOTIFICATION_TIMEOUT_SECONDS = env_int("MATCHING_NOTIFICATION_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
MATCHING_NOTIFICATION_RETRY_SECONDS = env_int("MATCHING_NOTIFICATION_RETRY_SECONDS", 86400, minimum=1)
MATCHING_NOTIFICATION_BACKOFF_SECONDS = env_int("MATCHING_NOTIFICATION_BACKOFF_SECONDS", 30, minimum=1)
MATCHING_NOTIFICATION_BACKOFF_MAX_SECONDS = env_int("MATCHING_NOTIFICATION_BACKOFF_MAX_SECONDS", 3600, minimum=1)
if MATCHING_NOTIFICATION_WEBHOOK_URL:
    if not MATCHING_NOTIFICATION_WEBHOOK_SECRET.startswith("whsec_"):
        raise ImproperlyConfigured(
            "MATCHING_NOTIFICATION_WEBHOOK_SECRET: required with MATCHING_NOTIFICATION_WEBHOOK_URL, "
            "as whsec_<base64> (the Standard Webhooks form receivers' libraries expect)"
        )
    try:
        _decoded = base64.b64decode(MATCHING_NOTIFICATION_WEBHOOK_SECRET[6:], validate=True)
    except (binascii.Error, ValueError):
        _decoded = b""
    if len(_decoded) < 16:
        raise ImproperlyConfigured("MATCHING_NOTIFICATION_WEBHOOK_SECRET: whsec_ and at least 16 base64 bytes")
MATCHING_WEBHOOK_SECRET = env_secret("MATCHING_WEBHOOK_SECRET")
# GlobalCoach vetting on the Celery engine (workflows/outbound/globalcoach.py, workflows/celery_engine/vetting.py). The
# durable engine's Lambda has its own MATCHING_VETTING_* environment (workflows/durable/workflow.py).
MATCHING_VETTING_URL = env_url("MATCHING_VETTING_URL")
MATCHING_VETTING_API_KEY = env_secret("MATCHING_VETTING_API_KEY")
MATCHING_VETTING_CALLBACK_BASE_URL = env_url("MATCHING_VETTING_CALLBACK_BASE_URL")
MATCHING_VETTING_TOP_N = env_int("MATCHING_VETTING_TOP_N", 10, minimum=1, maximum=100)
MATCHING_VETTING_HTTP_TIMEOUT_SECONDS = env_int("MATCHING_VETTING_HTTP_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
MATCHING_VETTING_REQUEST_MAX_TRIES = env_int("MATCHING_VETTING_REQUEST_MAX_TRIES", 5, minimum=1, maximum=50)
MATCHING_INTERNAL_TOKEN = env_secret("MATCHING_INTERNAL_TOKEN")
AWS_REGION = env_str("AWS_REGION") or env_str("AWS_DEFAULT_REGION")

# --- Execution mirror (workflows/mirror/, workflows/durable_console/reconcile.py; docs/mirror.md) ------
MATCHING_WORKFLOW_STATE_TABLE = (
    env_str("MATCHING_WORKFLOW_STATE_TABLE") or env_str("MATCHING_STATE_TABLE") or "matching-workflow-state"
)
MATCHING_MIRROR_SYNC_INTERVAL_SECONDS = env_int("MATCHING_MIRROR_SYNC_INTERVAL_SECONDS", 60, minimum=1)
MATCHING_MIRROR_SYNC_SKEW_SECONDS = env_int("MATCHING_MIRROR_SYNC_SKEW_SECONDS", 5, minimum=0)
MATCHING_MIRROR_PAGE_SIZE = env_int("MATCHING_MIRROR_PAGE_SIZE", 1000, minimum=1, maximum=10000)
MATCHING_MIRROR_HISTORY_PER_CYCLE = env_int("MATCHING_MIRROR_HISTORY_PER_CYCLE", 50, minimum=0)
MATCHING_MIRROR_STALENESS_SECONDS = env_int("MATCHING_MIRROR_STALENESS_SECONDS", 5, minimum=0)
MATCHING_MIRROR_REFRESH_TIMEOUT_MS = env_int("MATCHING_MIRROR_REFRESH_TIMEOUT_MS", 1000, minimum=50, maximum=10000)
MATCHING_RECONCILE_INTERVAL_SECONDS = env_int("MATCHING_RECONCILE_INTERVAL_SECONDS", 300, minimum=1)
MATCHING_RECONCILE_BATCH = env_int("MATCHING_RECONCILE_BATCH", 200, minimum=1)
MATCHING_RECONCILE_MIN_AGE_SECONDS = env_int("MATCHING_RECONCILE_MIN_AGE_SECONDS", 60, minimum=0)
MATCHING_DURABLE_START_GRACE_SECONDS = env_int("MATCHING_DURABLE_START_GRACE_SECONDS", 300, minimum=1)
# When the staff console marks a Celery search with no transition for this long as stuck (the
# worker lease re-sends a lost one long before; this is only where staff should look).
MATCHING_CELERY_STUCK_SECONDS = env_int("MATCHING_CELERY_STUCK_SECONDS", 900, minimum=1)
# Circuit breaker on the Durable API (workflows/durable_console/breaker.py): this many consecutive connection
# errors, timeouts or 5xx open it; new searches then go to the Celery engine; after the open period
# one probe decides whether it closes again.
MATCHING_DURABLE_BREAKER_FAILURES = env_int("MATCHING_DURABLE_BREAKER_FAILURES", 3, minimum=1)
MATCHING_DURABLE_BREAKER_OPEN_SECONDS = env_int("MATCHING_DURABLE_BREAKER_OPEN_SECONDS", 30, minimum=1)

# --- Candidate profiles: the warm index and ingestion (docs/profiles.md) -----------------
# Every search sees each profile change committed more than this long before it started.
MATCHING_INDEX_STALENESS_MS = env_int("MATCHING_INDEX_STALENESS_MS", 2000, minimum=0, maximum=60_000)
MATCHING_INDEX_OVERLAP_SECONDS = env_int("MATCHING_INDEX_OVERLAP_SECONDS", 5, minimum=1, maximum=3600)
MATCHING_INDEX_RELOAD_SECONDS = env_int("MATCHING_INDEX_RELOAD_SECONDS", 3600, minimum=0)
MATCHING_INDEX_DELTA_MAX = env_int("MATCHING_INDEX_DELTA_MAX", 20_000, minimum=100)
MATCHING_INDEX_PRELOAD = env_bool("MATCHING_INDEX_PRELOAD", True)
# The host's shared copy of the warm index, memory-mapped by every process (off: one copy each).
MATCHING_INDEX_SNAPSHOT = env_bool("MATCHING_INDEX_SNAPSHOT", True)
MATCHING_INDEX_SNAPSHOT_DIR = Path(env_str("MATCHING_INDEX_SNAPSHOT_DIR") or VAR_DIR / "profile-index")
MATCHING_PROFILE_TOMBSTONE_DAYS = env_int("MATCHING_PROFILE_TOMBSTONE_DAYS", 30, minimum=1)
if MATCHING_INDEX_RELOAD_SECONDS >= MATCHING_PROFILE_TOMBSTONE_DAYS * 86400:
    raise ImproperlyConfigured(
        "MATCHING_INDEX_RELOAD_SECONDS: must be shorter than MATCHING_PROFILE_TOMBSTONE_DAYS, "
        "or a warm index could miss a delete whose tombstone was purged"
    )
MATCHING_PROFILE_BATCH_MAX_BYTES = env_int("MATCHING_PROFILE_BATCH_MAX_BYTES", 2 * 1024 * 1024, minimum=64 * 1024)

# SnowTrace's services, read by `manage.py sync_profiles` (matching/snowtrace/).
USER_CORE_API_URL = env_url("USER_CORE_API_URL")
USER_CORE_API_TOKEN = env_secret("USER_CORE_API_TOKEN")
USER_CORE_SUPPORTS_UPDATED_SINCE = env_bool("USER_CORE_SUPPORTS_UPDATED_SINCE", False)
# Match-request behaviour events to the user service (POST {USER_CORE_API_URL}/events), an outbox
# retried like the completion notifications (workflows/outbound/user_events.py).
USER_CORE_EVENT_TIMEOUT_SECONDS = env_int("USER_CORE_EVENT_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
USER_CORE_EVENT_RETRY_SECONDS = env_int("USER_CORE_EVENT_RETRY_SECONDS", 86400, minimum=1)
USER_CORE_EVENT_BACKOFF_SECONDS = env_int("USER_CORE_EVENT_BACKOFF_SECONDS", 30, minimum=1)
USER_CORE_EVENT_BACKOFF_MAX_SECONDS = env_int("USER_CORE_EVENT_BACKOFF_MAX_SECONDS", 3600, minimum=1)
KNOWLEDGE_ENGAGEMENT_API_URL = env_url("KNOWLEDGE_ENGAGEMENT_API_URL")
KNOWLEDGE_ENGAGEMENT_API_TOKEN = env_secret("KNOWLEDGE_ENGAGEMENT_API_TOKEN")
RESORT_SERVICES_API_URL = env_url("RESORT_SERVICES_API_URL")
RESORT_SERVICES_API_TOKEN = env_secret("RESORT_SERVICES_API_TOKEN")
SNOWTRACE_HTTP_CONNECT_TIMEOUT_SECONDS = env_float("SNOWTRACE_HTTP_CONNECT_TIMEOUT_SECONDS", 3.05, minimum=0.01)
SNOWTRACE_HTTP_READ_TIMEOUT_SECONDS = env_float("SNOWTRACE_HTTP_READ_TIMEOUT_SECONDS", 10.0, minimum=0.01)
SNOWTRACE_HTTP_RETRIES = env_int("SNOWTRACE_HTTP_RETRIES", 3, minimum=0, maximum=10)
SNOWTRACE_HTTP_BACKOFF_SECONDS = env_float("SNOWTRACE_HTTP_BACKOFF_SECONDS", 0.5, minimum=0.0, maximum=60.0)
PROFILE_SYNC_PAGE_SIZE = env_int("PROFILE_SYNC_PAGE_SIZE", 500, minimum=1, maximum=5000)
PROFILE_SYNC_KNOWLEDGE_CONCURRENCY = env_int("PROFILE_SYNC_KNOWLEDGE_CONCURRENCY", 8, minimum=1, maximum=64)
PROFILE_SYNC_OVERLAP_SECONDS = env_int("PROFILE_SYNC_OVERLAP_SECONDS", 300, minimum=0)
PROFILE_SYNC_INTERVAL_SECONDS = env_int("PROFILE_SYNC_INTERVAL_SECONDS", 900, minimum=0)
PROFILE_SYNC_TASK_BUDGET_SECONDS = env_int(
    "PROFILE_SYNC_TASK_BUDGET_SECONDS", max(1, CELERY_TASK_TIME_LIMIT - 60), minimum=1
)
if PROFILE_SYNC_TASK_BUDGET_SECONDS >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "PROFILE_SYNC_TASK_BUDGET_SECONDS: must be shorter than CELERY_TASK_TIME_LIMIT, "
        "or the periodic sync would be killed mid-page instead of pausing"
    )

# --- REST API ------------------------------------------------------------------------------
MATCHING_SEARCH_RATE = env_rate("MATCHING_SEARCH_RATE", "15/min")
# Per API key, across every user it names: one key holder rotating X-User-Id cannot go past it.
MATCHING_KEY_RATE = env_rate("MATCHING_KEY_RATE", "600/min")
# The dashboard lists API keys that expire within this many days (or expired that recently).
API_KEY_EXPIRY_WARNING_DAYS = env_int("API_KEY_EXPIRY_WARNING_DAYS", 14, minimum=1)
# Match requests a user may send (POST /requests); a repeat of a pending one counts too.
MATCHING_REQUEST_RATE = env_rate("MATCHING_REQUEST_RATE", "30/hour")
# SnowTrace user tokens (matching/api/authentication.py): HS256 with a shared secret, as the old
# service verified them. JWT_SECRET is the old service's other name for the secret.
JWT_SECRET_KEY = env_secret("JWT_SECRET_KEY") or env_secret("JWT_SECRET")
JWT_FALLBACK_SECRET = env_secret("JWT_FALLBACK_SECRET")
JWT_AUDIENCE = env_str("JWT_AUDIENCE", "user_core") or "user_core"
JWT_ISSUER = env_str("JWT_ISSUER")
if JWT_FALLBACK_SECRET and not JWT_SECRET_KEY:
    raise ImproperlyConfigured("JWT_FALLBACK_SECRET: set JWT_SECRET_KEY too (the fallback only helps a rotation)")
# False: a valid user token alone may also write (submit and cancel its own searches, send and
# answer its own match requests), for browsers, which cannot keep an API key. The old service's
# name for it, SNOWBUDDY_REQUIRE_API_KEY, is read when the new one is not set.
MATCHING_REQUIRE_API_KEY = env_bool("MATCHING_REQUIRE_API_KEY", env_bool("SNOWBUDDY_REQUIRE_API_KEY", True))
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["matching.api.authentication.SnowTraceAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["matching.api.parsers.StrictJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "matching.api.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "matching.api.negotiation.JsonNegotiation",
    "DEFAULT_SCHEMA_CLASS": "snowbuddy.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "search_submit": MATCHING_SEARCH_RATE,
        "search_submit_key": MATCHING_KEY_RATE,
        "match_request_send": MATCHING_REQUEST_RATE,
    },
    "UNAUTHENTICATED_USER": None,
}
DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_HANDLER_CLASS": "matching.api.errors.ApiExceptionHandler",
    "ALLOWED_ERROR_STATUS_CODES": ["400", "401", "403", "404", "405", "406", "411", "413", "415", "429", "500"],
    # The error responses of the OpenAPI schema, with this project's codes (snowbuddy/openapi.py).
    "ERROR_SCHEMAS": {
        "401": "snowbuddy.openapi.UnauthorizedResponse",
        "403": "snowbuddy.openapi.ForbiddenResponse",
        "404": "snowbuddy.openapi.NotFoundResponse",
        "406": "snowbuddy.openapi.NotAcceptableResponse",
        "411": "snowbuddy.openapi.LengthRequiredResponse",
        "413": "snowbuddy.openapi.PayloadTooLargeResponse",
        "415": "snowbuddy.openapi.UnsupportedMediaTypeResponse",
        "429": "snowbuddy.openapi.ThrottledResponse",
        "500": "snowbuddy.openapi.ServerErrorResponse",
    },
}
# The OpenAPI schemas (snowbuddy/openapi.py, docs/contracts.md "OpenAPI schemas"): /api/schema/ is
# SnowTrace's REST API (answers of version 1; ?version=2 for the console's), /api/schema/internal/
# the workflow's and GlobalCoach's endpoints and the signed callback (a 3.1 webhook).
SPECTACULAR_SETTINGS = {
    "TITLE": "Snowbuddy matching API",
    "DESCRIPTION": "Searches for ski buddies, students and coaches, run for SnowTrace.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "matching.models.Role",
        "SearchStatusEnum": "matching.models.SearchStatus",
        "RegionEnum": "matching.vocabulary.regions.REGION_CHOICES",
        "ResortIdEnum": "matching.api.fields.RESORT_IDS",
        "ValidationErrorEnum": "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices",
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
        "snowbuddy.openapi.postprocess_error_attrs",
    ],
    # What SnowTrace receives: the completion notification (OpenAPI 3.1 `webhooks`).
    "WEBHOOKS": ["snowbuddy.openapi.SEARCH_FINISHED"],
    "APPEND_COMPONENTS": {"schemas": {"JsonValue": JSON_VALUE}},
}

# --- Security (production values: .env.production.example; `manage.py check --deploy` is clean) ----
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG and env_bool("DJANGO_SECURE_COOKIES", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Load balancers probe /health over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$"]
# Only behind a proxy that sets this header itself (and strips it from clients).
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
CSRF_FAILURE_VIEW = "snowbuddy.errors.csrf_failure"

# --- Observability (docs/observability.md) ---------------------------------------------------
# Prometheus metrics: /metrics and the worker port answer only this bearer token; unset = off.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
# The database gauges of /metrics are read at most this often per process.
METRICS_CACHE_SECONDS = env_int("METRICS_CACHE_SECONDS", 5, minimum=0, maximum=300)
# A Celery worker host's own metrics port (0: none) and the address it listens on.
MATCHING_WORKER_METRICS_PORT = env_int("MATCHING_WORKER_METRICS_PORT", 0, minimum=0, maximum=65535)
MATCHING_WORKER_METRICS_ADDR = env_str("MATCHING_WORKER_METRICS_ADDR", "127.0.0.1") or "127.0.0.1"
# prometheus_client's multiprocess directory (read by the library itself): checked here so a
# missing one stops the start with one line instead of failing the first metric write.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    try:
        Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"PROMETHEUS_MULTIPROC_DIR: cannot create {PROMETHEUS_MULTIPROC_DIR!r} ({exc})"
        ) from exc

# text: readable lines (make run); json: one JSON object per line with request_id, search_id,
# attempt, engine and trace_id (snowbuddy/logs.py).
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))

# --- Content security policy (django-csp; docs/security.md) -----------------------------------
# Enforced on every answer: scripts and styles only from this site's static files, no inline code
# (the console's styles are in matching/static/matching/console.css; the API docs load Swagger UI's
# start-up script from a URL of its own). Images may be data: URIs: Django admin's and Swagger UI's
# stylesheets draw icons that way. `form-action` is left out on purpose: signing in through an
# identity provider posts a form whose answer redirects to the provider, which browsers check
# against form-action too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    },
}
# (Not kept as a CSP_* setting of its own: django-csp takes any such name for its old format.)
if env_url("CSP_REPORT_URI"):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [env_url("CSP_REPORT_URI")]

# --- Staff sign-in (snowbuddy/staff/, docs/security.md) ----------------------------------------------
# Single sign-on through the company's OpenID Provider (mozilla-django-oidc, authorization code + PKCE).
# Its endpoints come from the discovery document, fetched on the first sign-in and cached.
OIDC_DISCOVERY_URL = env_url("OIDC_DISCOVERY_URL")
OIDC_ENABLED = bool(OIDC_DISCOVERY_URL)
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_secret("OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid email profile") or "openid email profile"
OIDC_RP_SIGN_ALGO = env_choice("OIDC_SIGN_ALGO", "rs256", ("rs256", "es256", "ps256")).upper()
# Shown on the sign-in button ("Sign in with …") verbatim; empty: "the company account" in the reader's language.
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
OIDC_AUTHENTICATE_CLASS = "snowbuddy.staff.oidc.StaffAuthenticationRequestView"
OIDC_CALLBACK_CLASS = "snowbuddy.staff.oidc.StaffAuthenticationCallbackView"
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_REDIRECT_URL_FAILURE = "/staff/sign-in-failed/"
# The claim naming the user's IdP groups, and which IdP groups make a console operator, reviewer or
# superuser; applied at every sign-in, so a group removed in the IdP is gone at the next one.
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups") or "groups"
OIDC_OPERATOR_GROUPS = env_list("OIDC_OPERATOR_GROUPS", ["snowbuddy-operators"])
OIDC_REVIEWER_GROUPS = env_list("OIDC_REVIEWER_GROUPS", ["snowbuddy-reviewers"])
OIDC_SUPERUSER_GROUPS = env_list("OIDC_SUPERUSER_GROUPS", ["snowbuddy-admins"])
if OIDC_ENABLED and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_CLIENT_ID, OIDC_CLIENT_SECRET: required with OIDC_DISCOVERY_URL")
# The Django password form: off by default once single sign-on is configured.
# (Left empty, as in .env.example, it takes that default too.)
STAFF_PASSWORD_LOGIN = not OIDC_ENABLED
if env_str("STAFF_PASSWORD_LOGIN"):
    STAFF_PASSWORD_LOGIN = env_bool("STAFF_PASSWORD_LOGIN", STAFF_PASSWORD_LOGIN)
if not (STAFF_PASSWORD_LOGIN or OIDC_ENABLED):
    raise ImproperlyConfigured(
        "STAFF_PASSWORD_LOGIN: cannot be false without OIDC_DISCOVERY_URL (nobody could sign in)"
    )
# A TOTP second factor for operators and superusers who sign in with a password (IdP users rely on
# the IdP's own MFA). `make run` turns it off for its demo logins.
STAFF_REQUIRE_MFA = env_bool("STAFF_REQUIRE_MFA", True)
OTP_TOTP_ISSUER = "Snowbuddy console"
STAFF_RECOVERY_CODES = 10
# Sessions end after this long without a request, and this long after the sign-in whatever happens.
STAFF_SESSION_IDLE_SECONDS = env_int("STAFF_SESSION_IDLE_SECONDS", 1800, minimum=60)
STAFF_SESSION_MAX_SECONDS = env_int("STAFF_SESSION_MAX_SECONDS", 43200, minimum=300)
SESSION_COOKIE_AGE = STAFF_SESSION_MAX_SECONDS
# A bulk action over more than this many searches, or a routing switch, asks for a sign-in at most
# STAFF_REAUTH_SECONDS old.
STAFF_REAUTH_BULK_OVER = env_int("STAFF_REAUTH_BULK_OVER", 20, minimum=0)
STAFF_REAUTH_SECONDS = env_int("STAFF_REAUTH_SECONDS", 900, minimum=60, maximum=3600)
# Lockout (django-axes): this many failed sign-ins lock the username and, separately, the source
# address for STAFF_LOCKOUT_MINUTES. Every attempt is recorded (admin: Axes, Access logs).
STAFF_LOCKOUT_FAILURES = env_int("STAFF_LOCKOUT_FAILURES", 5, minimum=1)
STAFF_LOCKOUT_MINUTES = env_int("STAFF_LOCKOUT_MINUTES", 15, minimum=1)
# The client address: REMOTE_ADDR, or behind a proxy only the header it sets (X-Forwarded-For), read
# STAFF_TRUSTED_PROXY_COUNT entries from its right end (what clients write further left is ignored).
STAFF_CLIENT_IP_HEADER = env_str("STAFF_CLIENT_IP_HEADER")
STAFF_TRUSTED_PROXY_COUNT = env_int("STAFF_TRUSTED_PROXY_COUNT", 1, minimum=1, maximum=10)
AXES_FAILURE_LIMIT = STAFF_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=STAFF_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # failed sign-ins are kept too, not only counted
AXES_CLIENT_IP_CALLABLE = "snowbuddy.staff.client_ip.client_ip"
AXES_LOCKOUT_TEMPLATE = "staff/locked_out.html"
AXES_VERBOSE = False
# django-axes first: it refuses a locked-out username or address before any other backend runs.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend"]
if STAFF_PASSWORD_LOGIN:
    AUTHENTICATION_BACKENDS += ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS += ["snowbuddy.staff.oidc.StaffOIDCBackend"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "snowbuddy.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "snowbuddy.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
