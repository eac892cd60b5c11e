"""JSON Schema the OpenAPI schemas share, as plain data (settings.py reads it at start-up, before
any app is loaded, so this module imports nothing)."""

# Strings the console stores hold no NUL (PostgreSQL text cannot): snowbuddy/json_input.py refuses a
# body with one anywhere, so every string the schemas allow says so too.
NO_NUL_PATTERN = "^[^\\u0000]*$"

# A body's open parts (fields the console ignores or shows as they are) hold any JSON of that kind.
JSON_VALUE = {
    "description": "Any JSON value whose strings (object keys too) hold no NUL.",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": NO_NUL_PATTERN},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
# The keyword pair for an object whose other fields are ignored.
OPEN_FIELDS = {"propertyNames": {"pattern": NO_NUL_PATTERN}, "additionalProperties": JSON_VALUE_REF}
