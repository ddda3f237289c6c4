"""The rules an ingested item must pass: one table that every path reads.

``RULES`` lists them in the order they are applied, each with its field, its check, its
limit and its message. ``validation.parse_item`` (``/api/track``) and ``columnar.parse_batch``
(``/api/events``) take their limits and messages from here; the bulk importer compiles the
whole table, in this order, into its SQL (``importer._rules_sql``). An item gets the same
verdict on every path — the first rule it breaks, named ``"<field>: <message>"`` — and the
property test in ``tests/warehouse/test_rules.py`` feeds the same random items to all three
to hold them to it. Only the API adds context in parentheses (``unknown experiment
('nope')``), which an import report, counting rows per reason, leaves out.

Deliberate differences of the file format (README, "Limits of an item"): in a file a blank
cell is a missing value, and ``value`` and ``props`` may be written as text (a CSV column has
no other type) — a number as decimal text, ``props`` as JSON text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from splitlab.errors import ConflictError, SplitlabError, ValidationError

MAX_TEXT = 200
"""Characters in a key: experiment, variant, user, eventType, eventId (after trimming)."""
MAX_ABS_VALUE = 1e15
"""``|value|`` at most this: integers are exact in a double, and Σy² over billions of
users stays finite on every backend."""
MAX_PROPS_BYTES = 8 * 1024
"""``props`` serialised as compact JSON (UTF-8)."""
MAX_PROPS_DEPTH = 32
"""Nesting of ``props``: the object itself is level 1, ``{"a": {"b": 1}}`` is 2."""
MAX_FUTURE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(minutes=5)
"""Exposures may be this much earlier than the recorded start (client clocks drift)."""
EPOCH_MS_FROM = 1e11
"""A numeric ``occurredAt`` at least this large is epoch milliseconds, below it seconds."""
MAX_EPOCH_NUMBER = 1e14
"""A numeric ``occurredAt`` above this (year 5138 in milliseconds) is refused before any
arithmetic on it (the "future" rule would refuse it anyway)."""
TIME_TEXT_PATTERN = (
    r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}"
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?"
)
"""The ISO 8601 text an ``occurredAt`` may be: a date (years 0001–9999), optionally a time to
the minute, second or fraction, optionally ``Z`` or an offset; naive = UTC. What Python's
``fromisoformat`` and DuckDB both read, and read the same way (Python and RE2 syntax)."""
TIME_TEXT = re.compile(TIME_TEXT_PATTERN)
"""``TIME_TEXT_PATTERN``, used with ``fullmatch``."""
TIME_TEXT_SQL = f"^{TIME_TEXT_PATTERN}$"
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (Unicode Cc, NUL included) and unpaired surrogates: refused in keys
(PostgreSQL text cannot hold NUL; U+001F separates the parts of derived ids)."""
CONTROL_SQL = "[\\x00-\\x1f\\x7f-\\x9f]"
"""``CONTROL`` as an RE2 pattern (pyarrow, DuckDB), written with escapes: no raw NUL in SQL."""
WHITESPACE = "".join(chr(code) for code in range(0x110000) if chr(code).isspace())
"""What ``str.strip()`` removes around a key (Unicode whitespace plus the ASCII separators)."""

KEY_FIELDS = ("eventType", "experimentKey", "variantKey", "userKey", "eventId")
"""The key fields in the order they are checked."""
ALIASES = {"experimentId": "experimentKey", "variantId": "variantKey", "properties": "props"}
"""Other spellings of a field (``parse_item`` takes the alias when both are sent)."""


class Check(StrEnum):
    """What a rule checks (each path implements each check once)."""

    REQUIRED = "required"
    TYPE = "type"
    NOT_EMPTY = "not_empty"
    MAX_LENGTH = "max_length"
    NO_CONTROL = "no_control"
    NEEDS_EVENT_ID = "needs_event_id"
    """An event without an experiment needs its own id (the derived one names the experiment)."""
    NEEDS_EXPERIMENT = "needs_experiment"
    """A variant means nothing without its experiment."""
    FINITE = "finite"
    RANGE = "range"
    JSON = "json"
    MAX_BYTES = "max_bytes"
    NO_NUL = "no_nul"
    MAX_DEPTH = "max_depth"
    NOT_BEFORE = "not_before"
    NOT_AFTER = "not_after"
    KNOWN_EXPERIMENT = "known_experiment"
    ACCEPTING = "accepting"
    KNOWN_VARIANT = "known_variant"
    AFTER_START = "after_start"


class Applies(StrEnum):
    ALWAYS = "always"
    EXPOSURE = "exposure"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: ``field`` (canonical spelling) breaks ``check`` → ``"<field>: <message>"``."""

    field: str
    check: Check
    message: str
    limit: float | None = None
    applies: Applies = Applies.ALWAYS
    status: int = 422
    """422, or 409 for an item that is fine but whose experiment does not take it now."""

    def error(self, field: str | None = None, context: str | None = None) -> SplitlabError:
        """The error naming ``field`` (as the client spelled it); ``context`` (the value at
        fault, say) goes in parentheses after the message."""
        name = field or self.field
        text = f"{self.message} ({context})" if context else self.message
        kind = ConflictError if self.status == 409 else ValidationError
        return kind(f"{name}: {text}", details=[{"loc": [name], "msg": text}])


def _key_rules(field: str) -> tuple[Rule, ...]:
    required = {"eventType": Applies.ALWAYS, "userKey": Applies.ALWAYS, "eventId": None}.get(
        field, Applies.EXPOSURE
    )
    rules = (
        Rule(field, Check.TYPE, "must be a string"),
        Rule(field, Check.NOT_EMPTY, "must not be empty"),
        Rule(field, Check.MAX_LENGTH, f"is longer than {MAX_TEXT} characters", MAX_TEXT),
        Rule(field, Check.NO_CONTROL, "must not contain control characters (such as NUL)"),
    )
    if required is None:
        return rules
    return (Rule(field, Check.REQUIRED, "is required", applies=required), *rules)


RULES: tuple[Rule, ...] = (
    *(rule for field in KEY_FIELDS for rule in _key_rules(field)),
    Rule(
        "experimentKey",
        Check.NEEDS_EVENT_ID,
        "is required for an event without an eventId",
        applies=Applies.EVENT,
    ),
    Rule(
        "experimentKey",
        Check.NEEDS_EXPERIMENT,
        "is required when variantKey is given",
        applies=Applies.EVENT,
    ),
    Rule("value", Check.TYPE, "must be a number"),
    Rule("value", Check.FINITE, "must be a finite number (not NaN or infinity)"),
    Rule(
        "value",
        Check.RANGE,
        f"must be between -{MAX_ABS_VALUE:.0e} and {MAX_ABS_VALUE:.0e}",
        MAX_ABS_VALUE,
    ),
    Rule("props", Check.TYPE, "must be a JSON object"),
    Rule("props", Check.JSON, "is not serialisable as JSON"),
    Rule(
        "props",
        Check.MAX_BYTES,
        f"is over {MAX_PROPS_BYTES} bytes as compact JSON",
        MAX_PROPS_BYTES,
    ),
    Rule("props", Check.NO_NUL, "must not contain NUL characters (\\u0000)"),
    Rule("props", Check.MAX_DEPTH, f"nests deeper than {MAX_PROPS_DEPTH} levels", MAX_PROPS_DEPTH),
    Rule("occurredAt", Check.TYPE, "must be an ISO 8601 timestamp or epoch seconds/milliseconds"),
    Rule("occurredAt", Check.FINITE, "must be a finite number"),
    Rule("occurredAt", Check.NOT_BEFORE, "is before 1970-01-01T00:00:00Z", 0),
    Rule(
        "occurredAt",
        Check.NOT_AFTER,
        "is more than 5 minutes in the future",
        MAX_FUTURE.total_seconds(),
    ),
    Rule("experimentKey", Check.KNOWN_EXPERIMENT, "unknown experiment"),
    Rule("experimentKey", Check.ACCEPTING, "experiment is not running", status=409),
    Rule("variantKey", Check.KNOWN_VARIANT, "is not a variant of the experiment"),
    Rule(
        "occurredAt",
        Check.AFTER_START,
        "is before the experiment's start",
        CLOCK_SKEW.total_seconds(),
        applies=Applies.EXPOSURE,
    ),
    Rule(
        "occurredAt",
        Check.AFTER_START,
        "is before the experiment's start minus its pre-period",
        applies=Applies.EVENT,
    ),
)
"""Every rule, in the order every path applies them: an item's verdict is the first it breaks."""


def rule(field: str, check: Check, applies: Applies = Applies.ALWAYS) -> Rule:
    """The rule of ``field`` and ``check`` (for exposures or events where they differ)."""
    for candidate in RULES:
        same = candidate.field == field and candidate.check is check
        if same and candidate.applies in (Applies.ALWAYS, applies):
            return candidate
    raise KeyError((field, check, applies))


def key_rule(check: Check) -> Rule:
    """The rule every key field shares for ``check`` (their messages are the same)."""
    return rule("userKey", check)
