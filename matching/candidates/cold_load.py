"""The warm index's cold load from PostgreSQL: one `COPY … TO STDOUT`, parsed into arrays by numpy.

One statement reads the columns the engine needs for every open, undeleted profile, in
PostgreSQL's text format (one line per profile, fields split by tabs, jsonb arrays in their text
form `["a", "b"]`). The stream is cut into blocks of whole lines and each block is parsed with
vectorised numpy: field bounds from the tab and newline positions, each string value from its
quote pair, and strings interned by hashing their bytes — so Python sees only each block's few
distinct values (resorts, dates, roles), never one object per profile or per value.

A block the fast parser cannot vouch for (a backslash escape, a quote outside a string, a
non-string array element) is parsed line by line instead: slower, same result.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterator

import numpy as np

from matching.engine import ProfileIndexBuilder

COPY_SQL = """
    COPY (SELECT user_id, skill_level, role, knowledge_score, resorts, regions, available_dates, certifications
          FROM matching_skierprofile WHERE open_to_matching AND deleted_at IS NULL) TO STDOUT
"""
BLOCK_BYTES = 8 << 20  # lines parsed at a time: bounds the load's scratch memory
BLOCKS_IN_FLIGHT = 4  # blocks read ahead of the parser
_FIELDS = 8
_SET_FIELDS = ("resorts", "regions", "available_dates", "certifications")  # fields 4..7
_TAB, _NEWLINE, _QUOTE, _BACKSLASH = 9, 10, 34, 92


def copy_profiles_into(builder: ProfileIndexBuilder, raw_connection) -> int:
    """Stream every open profile into `builder` with COPY; the number of profiles read.
    `raw_connection` is a psycopg 3 connection."""
    count = 0
    with raw_connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        # A reader thread drains the socket while this one parses, so PostgreSQL keeps producing
        # rows instead of waiting for the parser (a few blocks in flight bound the memory).
        blocks: queue.Queue = queue.Queue(maxsize=BLOCKS_IN_FLIGHT)
        reader = threading.Thread(target=_read_blocks, args=(copy, blocks), name="profile-copy-reader", daemon=True)
        reader.start()
        try:
            while (block := blocks.get()) is not None:
                if isinstance(block, BaseException):
                    raise block
                count += add_copy_block(builder, block)
        finally:
            while reader.is_alive():  # a failed parse: let the reader finish the stream
                with contextlib.suppress(queue.Empty):
                    blocks.get(timeout=0.1)
            reader.join()
    return count


def _read_blocks(copy, blocks: queue.Queue) -> None:
    try:
        for block in _line_blocks(copy):
            blocks.put(block)
    except BaseException as error:  # handed to the parsing thread, which raises it
        blocks.put(error)
    blocks.put(None)


def _line_blocks(copy) -> Iterator[bytes]:
    pending = bytearray()
    for data in copy:
        pending += data
        if len(pending) >= BLOCK_BYTES:
            cut = pending.rfind(b"\n") + 1
            if cut:
                yield bytes(pending[:cut])
                del pending[:cut]
    if pending:
        yield bytes(pending)


def add_copy_block(builder: ProfileIndexBuilder, block: bytes) -> int:
    """Add one block of whole COPY text lines to `builder`; the number of profiles."""
    if not block:
        return 0
    parsed = _parse_fast(block)
    if parsed is None:
        return _parse_slow(builder, block)
    builder.add_coded(**parsed)
    return len(parsed["user_ids"])


def _parse_fast(block: bytes) -> dict | None:
    buf = np.frombuffer(block, dtype=np.uint8)
    delims = np.flatnonzero((buf == _TAB) | (buf == _NEWLINE))
    if len(delims) % _FIELDS or buf[-1] != _NEWLINE:
        return None
    bounds = delims.reshape(-1, _FIELDS)
    if (buf[bounds[:, -1]] != _NEWLINE).any() or (buf[bounds[:, :-1]] != _TAB).any():
        return None
    n = len(bounds)
    starts = np.empty_like(bounds)
    starts[:, 1:] = bounds[:, :-1] + 1
    starts[0, 0] = 0
    starts[1:, 0] = bounds[:-1, -1] + 1
    lengths = bounds - starts

    # The only backslashes allowed are the knowledge field's NULL marker `\N`.
    knowledge_null = (lengths[:, 3] == 2) & (buf[starts[:, 3]] == _BACKSLASH)
    if np.count_nonzero(buf == _BACKSLASH) != np.count_nonzero(knowledge_null):
        return None

    # String values: quote pairs, each inside one set field (jsonb text has no other quotes).
    quotes = np.flatnonzero(buf == _QUOTE)
    if len(quotes) % 2:
        return None
    opens, closes = quotes[0::2], quotes[1::2]
    field = np.searchsorted(delims, opens)
    if len(field) and (
        (field != np.searchsorted(delims, closes)).any() or (field % _FIELDS < _FIELDS - len(_SET_FIELDS)).any()
    ):
        return None
    column = field % _FIELDS
    value_len = closes - opens - 1
    # Each field must be exactly `[]` or `["v1", "v2"]`: anything else (a number, a null)
    # would be a value this parser did not see.
    per_field = np.bincount(field, weights=value_len + 4, minlength=n * _FIELDS).reshape(n, _FIELDS)
    values_in = np.bincount(field, minlength=n * _FIELDS).reshape(n, _FIELDS)
    expected = np.where(values_in > 0, per_field, 2)  # '[' ']' plus, per value, quotes and ', '
    set_columns = slice(_FIELDS - len(_SET_FIELDS), _FIELDS)
    if (expected[:, set_columns] != lengths[:, set_columns]).any():
        return None

    role_codes, role_values = _intern(_fixed(buf, starts[:, 2], lengths[:, 2]))
    knowledge = _integers(buf, starts[:, 3], np.where(knowledge_null, 0, lengths[:, 3])).astype(np.float64)
    knowledge[knowledge_null] = np.nan
    parsed = {
        "user_ids": _fixed(buf, starts[:, 0], lengths[:, 0]).view(f"S{max(1, int(lengths[:, 0].max()))}").ravel(),
        "skill_levels": _integers(buf, starts[:, 1], lengths[:, 1]),
        "roles": (role_codes, role_values),
        "knowledge_scores": knowledge,
    }
    for offset, name in enumerate(_SET_FIELDS, start=_FIELDS - len(_SET_FIELDS)):
        chosen = column == offset
        codes, values = _intern(_fixed(buf, opens[chosen] + 1, value_len[chosen]))
        parsed[name] = (values_in[:, offset].astype(np.int32), codes, values)
    return parsed


def _fixed(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The strings at `starts` (of `lengths` bytes) as rows of a zero-padded uint8 matrix."""
    width = max(1, int(lengths.max())) if len(lengths) else 1
    offsets = np.arange(width, dtype=np.int64)
    positions = starts[:, None] + offsets
    np.minimum(positions, len(buf) - 1, out=positions)
    matrix = buf[positions]
    matrix[offsets >= lengths[:, None]] = 0
    return matrix


def _integers(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Unsigned decimal fields as int64 (a zero-length field reads 0)."""
    digits = _fixed(buf, starts, lengths).astype(np.int64) - 48
    width = digits.shape[1]
    # Right-align each number's digits: digit j of a number of length L weighs 10^(L-1-j).
    powers = np.where(
        np.arange(width) < lengths[:, None], 10 ** np.clip(lengths[:, None] - 1 - np.arange(width), 0, None), 0
    )
    return (digits * powers).sum(axis=1)


def _intern(matrix: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes (one per row) into the list of distinct strings. Rows are keyed by a 64-bit hash
    of their bytes; a collision (checked) falls back to sorting the strings themselves."""
    n, width = matrix.shape
    if not n:
        return np.zeros(0, dtype=np.int64), []
    padded = np.zeros((n, (width + 7) // 8 * 8), dtype=np.uint8)
    padded[:, :width] = matrix
    words = padded.view(np.uint64)
    key = words[:, 0].copy()
    for w in range(1, words.shape[1]):
        key = (key * np.uint64(0x9E3779B97F4A7C15)) ^ words[:, w]
    _, first, codes = np.unique(key, return_index=True, return_inverse=True)
    if not (matrix == matrix[first][codes]).all():
        _, first, codes = np.unique(padded.view(f"S{padded.shape[1]}").ravel(), return_index=True, return_inverse=True)
    values = [bytes(row).rstrip(b"\0").decode() for row in matrix[first]]
    return codes.reshape(n), values


def _unescape(field: bytes) -> str | None:
    """A COPY text field's value (None for NULL)."""
    if field == b"\\N":
        return None
    if b"\\" not in field:
        return field.decode()
    out, i = bytearray(), 0
    specials = {ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11}
    while i < len(field):
        byte = field[i]
        if byte == _BACKSLASH and i + 1 < len(field):
            out.append(specials.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(byte)
            i += 1
    return out.decode()


def _parse_slow(builder: ProfileIndexBuilder, block: bytes) -> int:
    columns: list[list] = [[] for _ in range(_FIELDS)]
    for line in block.split(b"\n"):
        if not line:
            continue
        fields = [_unescape(f) for f in line.split(b"\t")]
        for k in range(4):
            columns[k].append(fields[k])
        for k in range(4, _FIELDS):
            columns[k].append([str(v) for v in json.loads(fields[k])])
    user_ids, skill, roles, knowledge, resorts, regions, dates, certifications = columns
    builder.add(
        user_ids=user_ids,
        skill_levels=[int(s) for s in skill],
        roles=roles,
        knowledge_scores=[None if k is None else int(k) for k in knowledge],
        resorts=resorts,
        regions=regions,
        available_dates=dates,
        certifications=certifications,
    )
    return len(user_ids)
