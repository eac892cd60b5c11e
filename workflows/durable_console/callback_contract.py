"""The limits and field names of what the durable workflow sends the console and reads from it,
defined once (docs/contracts.md, "Callback webhook").

workflows/webhooks.py validates the signed callback and the candidates/matches feeds against them;
snowbuddy/openapi_internal.py builds the internal schema's JSON Schema (`WorkflowCallback`,
`CallbackMatch`, `MatchesPage`, `CandidatesPage`) from them. The view keeps its own validator, not
jsonschema: its error answers (a code and a field path per problem, every problem at once, 1.0 read as
1, unique ranks and user ids) are part of the contract and JSON Schema cannot say all of them.
"""

from __future__ import annotations

from matching.models import SearchStatus

# The callback's body.
CALLBACK_FIELDS = ("search_id", "attempt", "status", "version", "payload")
CALLBACK_REQUIRED = ("search_id", "attempt", "status", "version")
PAYLOAD_FIELDS = ("results", "error", "pending_callback")
ERROR_FIELDS = ("code", "message")
MATCH_FIELDS = ("user_id", "nickname", "score", "rank", "breakdown")
MATCH_REQUIRED = ("user_id", "score", "rank", "breakdown")
BREAKDOWN_DIMENSIONS = ("skill", "location", "availability", "role")  # required; "knowledge" may be null
OPTIONAL_DIMENSION = "knowledge"

# A callback's status: any lifecycle state but `pending` (the console's own first state).
WEBHOOK_STATUSES = frozenset(SearchStatus) - {SearchStatus.PENDING}

MAX_ATTEMPT = 2**31 - 1  # Search.attempt is an integer column
MAX_VERSION = 2**63 - 1  # WorkflowExecution.version is a bigint column
MAX_RESULTS = 100  # the largest `limit` a search may ask for
MAX_ERROR_CHARS = 10_000
MAX_ERROR_CODE_CHARS = 100
MAX_USER_ID_CHARS = 64
MAX_NICKNAME_CHARS = 64

# The candidates feed.
MAX_CANDIDATE_PAGE = 2000
DEFAULT_CANDIDATE_PAGE = 1000
MAX_CURSOR = 2**63 - 1  # a profile id
