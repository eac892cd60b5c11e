"""The staff console: the Django admin, extended (templates in templates/admin/).

Each module registers the pages of one part of the domain; importing them here is what registers
them when Django's admin autodiscovers `matching.admin`.
"""

from matching.admin import keys, outboxes, profiles, requests, searches, staff  # noqa: F401
