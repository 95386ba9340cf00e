"""A simulated support-ticket intent task with a simulated annotation team.

:func:`simulate` builds, deterministically from a seed (numpy ``Generator`` only, no
database), everything the demo project holds:

* about 2,000 tickets written from templates with slot fillers in English, Spanish,
  German and French, framed by channel (email, chat, phone notes), with segments
  (``language``, ``channel``, ``region``), tags (``edge-case`` for deliberately
  ambiguous tickets, ``vip``, ``repeat-contact``) and metadata (``created_at`` over six
  weeks, customer tier);
* twelve annotators, each with its own confusion matrix: strong, average, one
  **confuser** (gives ``billing`` for ``refund`` and the reverse), one **speeder** (very
  short active seconds, worse accuracy) and one **fatigued** annotator (accurate early in
  a session, much worse late in it); about three annotations per item (two to five),
  in working-hours sessions with log-normal active seconds by text length;
* gold labels for about 5% of items (with the rule that decides them) and predictions
  of model ``intent-clf`` version ``2026.10`` (class probabilities; roughly calibrated
  on ordinary tickets, overconfident on edge cases).

The hidden facts (true labels, each annotator's profile, session and position of each
annotation) are exposed on :class:`DemoData` so tests and later features (audit
patterns, fatigue analytics) can check that the planted problems are found, and that
nobody else is blamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from labelloop.demo import _templates as tpl
from labelloop.formats.records import (
    AnnotationRecord,
    GoldRecord,
    ItemRecord,
    PredictionRecord,
    Record,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

Kind = Literal["strong", "average", "confuser", "speeder", "fatigued"]

PROJECT_NAME = "support-intents"
LABELS: tuple[str, ...] = tpl.INTENTS
MODEL_NAME = "intent-clf"
MODEL_VERSION = "2026.10"
GOLD_SOURCE = "expert"
START = datetime(2026, 9, 28, tzinfo=UTC)  # a Monday
DAYS = 42
GUIDELINE_CHANGE_DAY = 31  # annotations submitted from this day on are under guideline 1.1
#: The days the demo sends each audit cycle's feedback (the day after cycles 1 and 2
#: end; cycle 3's notes go out after the simulated period).
FEEDBACK_DAYS = (29, 36)
#: Each round of feedback removes this share of an annotator's remaining off-diagonal
#: confusion: a few points of accuracy for most of the team, the modest size studies
#: of feedback to crowd workers report (e.g. Dow et al., "Shepherding the crowd yields
#: better work", CSCW 2012), not a cure.
LEARNING = 0.2
TOO_FAST_SECONDS = 3.0
MAX_BREAK = 1200.0  # seconds: the longest pause inside a session
SESSION_GAP = 1800.0  # seconds: the shortest pause between two sessions

LANGUAGES = ("en", "es", "de", "fr")
LANGUAGE_P = (0.55, 0.2, 0.15, 0.1)
CHANNELS = ("email", "chat", "phone")
CHANNEL_P = (0.45, 0.4, 0.15)
REGIONS_BY_LANGUAGE: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "en": (("na", "emea", "apac"), (0.5, 0.3, 0.2)),
    "es": (("latam", "emea"), (0.65, 0.35)),
    "de": (("emea",), (1.0,)),
    "fr": (("emea", "na"), (0.8, 0.2)),
}
TIERS = ("free", "pro", "enterprise")
TIER_P = (0.55, 0.35, 0.1)
INTENT_P = (0.22, 0.15, 0.2, 0.13, 0.14, 0.09, 0.07)
EDGE_CASE_RATE = 0.1
K_CHOICES = (2, 3, 4, 5)  # annotations per item
K_P = (0.25, 0.5, 0.2, 0.05)  # mean 3.05
PRICES = (9.99, 14.99, 19.99, 29.99, 49.99, 79.0, 129.0, 249.0)

# How easily one intent is taken for another (symmetric weights for off-diagonal errors).
_LOOKALIKE = {
    ("billing", "refund"): 3.0,
    ("refund", "cancellation"): 2.0,
    ("billing", "cancellation"): 1.5,
    ("account_access", "technical_issue"): 3.0,
    ("shipping", "refund"): 1.5,
}

# The team: (username, display name, kind). Order is the annotator index.
TEAM: tuple[tuple[str, str, Kind], ...] = (
    ("maria.lopez", "María López", "strong"),
    ("james.okafor", "James Okafor", "strong"),
    ("lena.fischer", "Lena Fischer", "strong"),
    ("yuki.tanaka", "Yuki Tanaka", "strong"),
    ("sofia.rossi", "Sofia Rossi", "average"),
    ("david.chen", "David Chen", "average"),
    ("amira.haddad", "Amira Haddad", "average"),
    ("tomas.novak", "Tomáš Novák", "average"),
    ("priya.nair", "Priya Nair", "average"),
    ("lucas.martin", "Lucas Martin", "confuser"),
    ("kevin.brooks", "Kevin Brooks", "speeder"),
    ("nina.petrova", "Nina Petrova", "fatigued"),
)
CONFUSED_PAIR = ("refund", "billing")  # the confuser's (true, given) pair; also the reverse


@dataclass(frozen=True, eq=False)
class AnnotatorProfile:
    """One simulated annotator's true behaviour.

    ``confusion[t, g]`` is P(gives label g | true label t), rows in :data:`LABELS` order,
    for a fresh annotator on an ordinary ticket. On an edge case the annotator picks the
    ticket's look-alike intent with probability ``edge_slip``. Fatigue (only the
    ``fatigued`` kind) mixes random labelling in with weight :meth:`fatigue` of the
    0-based position in the session.
    """

    index: int
    username: str
    display_name: str
    kind: Kind
    confusion: FloatArray
    edge_slip: float
    speed: float  # multiplier on typical active seconds
    workload: float  # relative share of assignments
    shift_start_hour: int  # UTC
    session_length: tuple[int, int]  # inclusive range of items per session
    confused_pair: tuple[str, str] | None = None
    #: the confusion matrix once guideline 1.1 clarified the confused pair (confuser only)
    clarified: FloatArray | None = None
    fatigue_onset: int | None = None
    fatigue_ramp: int = 25
    fatigue_max: float = 0.0

    def fatigue(self, position: IntArray | int) -> FloatArray:
        """Weight of random labelling at a position in the session (0 when not fatigued)."""
        pos = np.asarray(position, dtype=np.float64)
        if self.fatigue_onset is None:
            return np.zeros_like(pos)
        return self.fatigue_max * np.clip((pos - self.fatigue_onset) / self.fatigue_ramp, 0.0, 1.0)

    def confusion_at(self, position: int) -> FloatArray:
        """The effective confusion matrix at a position in the session."""
        f = float(self.fatigue(position))
        k = len(LABELS)
        return (1 - f) * self.confusion + f * np.full((k, k), 1.0 / k)

    @property
    def accuracy(self) -> float:
        """Expected accuracy on ordinary tickets at the start of a session."""
        return float(np.dot(np.diag(self.confusion), INTENT_P))


@dataclass(frozen=True, eq=False)
class AnnotationTrace:
    """Hidden facts per annotation, aligned with :attr:`DemoData.annotations`."""

    item: IntArray  # index into DemoData.items
    annotator: IntArray  # index into DemoData.annotators
    true: IntArray  # index into LABELS
    given: IntArray
    session: IntArray  # global session number
    position: IntArray  # 0-based position within its session
    active_seconds: FloatArray

    @property
    def correct(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.true == self.given, dtype=np.bool_)


@dataclass(frozen=True, eq=False)
class DemoData:
    """Everything :func:`simulate` produces."""

    seed: int
    labels: tuple[str, ...]
    schema: dict[str, Any]
    items: list[ItemRecord]
    annotations: list[AnnotationRecord]
    gold: list[GoldRecord]
    predictions: list[PredictionRecord]
    truth: dict[str, str]  # item external id -> true label
    annotators: tuple[AnnotatorProfile, ...]
    trace: AnnotationTrace

    def records(self) -> Iterator[Record]:
        """Items, then annotations, gold labels and predictions (import order)."""
        yield from self.items
        yield from self.annotations
        yield from self.gold
        yield from self.predictions

    def __len__(self) -> int:
        return len(self.items) + len(self.annotations) + len(self.gold) + len(self.predictions)

    def annotator(self, kind: Kind) -> AnnotatorProfile:
        """The first annotator of a kind."""
        for profile in self.annotators:
            if profile.kind == kind:
                return profile
        raise KeyError(kind)


def label_schema() -> dict[str, Any]:
    """The demo project's label schema, in the shape ``LabelSchema.from_dict`` accepts."""
    return {
        "task_type": "single",
        "description": "Intent of an incoming customer-support ticket (one label per ticket).",
        "labels": [
            {"name": name, "description": tpl.INTENT_DESCRIPTIONS[name], "hotkey": str(i + 1)}
            for i, name in enumerate(LABELS)
        ],
        "rules": [
            {
                "when": {"active_seconds_below": TOO_FAST_SECONDS},
                "flag": "too_fast",
                "severity": "warning",
                "message": f"labelled in under {TOO_FAST_SECONDS:g} s of active time",
            }
        ],
    }


# -- the team -------------------------------------------------------------------------


def _lookalike_matrix() -> FloatArray:
    k = len(LABELS)
    s = np.full((k, k), 0.5)
    other = LABELS.index("other")
    s[other, :] = s[:, other] = 1.0
    for (a, b), w in _LOOKALIKE.items():
        i, j = LABELS.index(a), LABELS.index(b)
        s[i, j] = s[j, i] = w
    np.fill_diagonal(s, 0.0)
    return s


def _confusion(
    rng: np.random.Generator, accuracy: float, *, uniform_errors: bool = False
) -> FloatArray:
    """Row-stochastic matrix: per-class accuracy near ``accuracy``, errors mostly on look-alikes."""
    k = len(LABELS)
    diag = np.clip(accuracy + rng.normal(0.0, 0.015, size=k), 0.5, 0.99)
    weights = np.ones((k, k)) - np.eye(k) if uniform_errors else _lookalike_matrix()
    weights = weights * rng.gamma(8.0, 1 / 8.0, size=(k, k))
    np.fill_diagonal(weights, 0.0)
    off = weights / weights.sum(axis=1, keepdims=True) * (1 - diag)[:, None]
    return np.asarray(off + np.diag(diag), dtype=np.float64)


def _with_pair(confusion: FloatArray, forward: float, backward: float) -> FloatArray:
    """``confusion`` with P(billing | refund) = ``forward`` and P(refund | billing) =
    ``backward`` (the rest of each row rescaled)."""
    out = confusion.copy()
    t, g = LABELS.index(CONFUSED_PAIR[0]), LABELS.index(CONFUSED_PAIR[1])
    for row, col, p in ((t, g, forward), (g, t, backward)):
        rest = 1 - out[row, col]
        out[row] *= (1 - p) / rest
        out[row, col] = p
    return out


def _team(rng: np.random.Generator) -> tuple[AnnotatorProfile, ...]:
    profiles = []
    hours = (7, 8, 9, 12, 13, 14)
    for index, (username, display, kind) in enumerate(TEAM):
        shift = int(rng.choice(hours))
        common: dict[str, Any] = {
            "index": index,
            "username": username,
            "display_name": display,
            "kind": kind,
            "shift_start_hour": shift,
        }
        if kind == "strong":
            profile = AnnotatorProfile(
                confusion=_confusion(rng, float(rng.uniform(0.93, 0.96))),
                edge_slip=0.15,
                speed=float(rng.uniform(1.0, 1.2)),
                workload=1.0,
                session_length=(30, 80),
                **common,
            )
        elif kind == "average":
            profile = AnnotatorProfile(
                confusion=_confusion(rng, float(rng.uniform(0.86, 0.89))),
                edge_slip=0.22,
                speed=float(rng.uniform(0.85, 1.1)),
                workload=1.0,
                session_length=(30, 80),
                **common,
            )
        elif kind == "confuser":
            base = _confusion(rng, 0.91)
            profile = AnnotatorProfile(
                confusion=_with_pair(base, 0.55, 0.35),
                clarified=_with_pair(base, 0.15, 0.08),
                edge_slip=0.2,
                speed=1.0,
                workload=1.0,
                session_length=(30, 80),
                confused_pair=CONFUSED_PAIR,
                **common,
            )
        elif kind == "speeder":
            profile = AnnotatorProfile(
                confusion=_confusion(rng, 0.72, uniform_errors=True),
                edge_slip=0.35,
                speed=0.2,
                workload=1.6,
                session_length=(80, 150),
                **common,
            )
        else:
            profile = AnnotatorProfile(
                confusion=_confusion(rng, 0.93),
                edge_slip=0.15,
                speed=1.05,
                workload=1.2,
                session_length=(50, 100),
                fatigue_onset=30,
                fatigue_ramp=30,
                fatigue_max=0.45,
                **common,
            )
        profiles.append(profile)
    return tuple(profiles)


# -- tickets --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Tickets:
    text: list[str]
    intent: IntArray
    alt: IntArray  # look-alike intent for edge cases, -1 otherwise
    language: list[str]
    channel: list[str]
    region: list[str]
    tier: list[str]
    tags: list[tuple[str, ...]]
    created: FloatArray  # seconds since START
    customer: IntArray


_SLOTS = (
    "template", "region", "letter", "number", "price", "day", "month", "days", "product", "plan",
    "device", "error", "carrier", "greeting", "signoff", "name", "opener", "strip", "repeat",
)  # fmt: skip


class _Draws:
    """One row of uniform draws per ticket, one column per choice (fast and reproducible)."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self._u = rng.random((n, len(_SLOTS)))
        self._col = {name: j for j, name in enumerate(_SLOTS)}
        self.row = 0

    def u(self, slot: str) -> float:
        return float(self._u[self.row, self._col[slot]])

    def pick(self, slot: str, options: Sequence[Any]) -> Any:
        return options[min(int(self.u(slot) * len(options)), len(options) - 1)]

    def weighted(self, slot: str, options: tuple[str, ...], p: tuple[float, ...]) -> str:
        j = int(np.searchsorted(np.cumsum(p), self.u(slot) * sum(p), side="right"))
        return options[min(j, len(options) - 1)]


def _frame(d: _Draws, body: str, language: str, channel: str) -> str:
    if channel == "email":
        greeting = d.pick("greeting", tpl.GREETINGS[language])
        signoff = d.pick("signoff", tpl.SIGNOFFS[language])
        name = d.pick("name", tpl.FIRST_NAMES[language])
        return f"{greeting},\n\n{body}\n\n{signoff}\n{name}"
    if channel == "chat":
        opener: str = d.pick("opener", tpl.CHAT_OPENERS[language])
        text = opener + (body[0].lower() + body[1:] if opener else body)
        return text.rstrip(".") if d.u("strip") < 0.5 else text
    return tpl.PHONE_PREFIX[language] + body[0].lower() + body[1:]


def _tickets(rng: np.random.Generator, n: int) -> _Tickets:
    language = rng.choice(len(LANGUAGES), size=n, p=LANGUAGE_P)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_P)
    tier = rng.choice(len(TIERS), size=n, p=TIER_P)
    edge = rng.random(n) < EDGE_CASE_RATE
    intent_draw = rng.choice(len(LABELS), size=n, p=INTENT_P)
    # created_at: weekdays busier than weekends, afternoons busier than nights
    day_w = np.array([1.0 if (d % 7) < 5 else 0.45 for d in range(DAYS)])
    day = rng.choice(DAYS, size=n, p=day_w / day_w.sum())
    second = np.clip(rng.normal(14.0, 4.0, size=n), 0.0, 23.99) * 3600.0
    created = day * 86400.0 + second
    order = np.argsort(created, kind="stable")
    customers = rng.integers(10_000, 100_000, size=n)
    d = _Draws(rng, n)

    by_language: dict[str, dict[str, list[tpl.Template]]] = {}
    edges: dict[str, list[tpl.Template]] = {}
    for lang, templates in tpl.TEMPLATES.items():
        by_language[lang] = {name: [] for name in LABELS}
        edges[lang] = []
        for t in templates:
            (edges[lang] if t.edge_case else by_language[lang][t.intent]).append(t)

    texts, intents, alts, langs, chans, regions, tiers, tags = [], [], [], [], [], [], [], []
    for i in range(n):
        d.row = i
        lang = LANGUAGES[language[i]]
        pool = edges[lang] if edge[i] else by_language[lang][LABELS[intent_draw[i]]]
        template: tpl.Template = d.pick("template", pool)
        region = d.weighted("region", *REGIONS_BY_LANGUAGE[lang])
        slots = {
            "order": f"#{chr(65 + int(d.u('letter') * 26))}{100_000 + int(d.u('number') * 900_000)}",
            "amount": tpl.format_amount(d.pick("price", PRICES), lang, region),
            "date": tpl.format_date(1 + int(d.u("day") * 28), int(d.u("month") * 3), lang),
            "days": str(3 + int(d.u("days") * 19)),
            "product": d.pick("product", tpl.PRODUCTS_SHORT),
            "plan": d.pick("plan", tpl.PLANS),
            "device": d.pick("device", tpl.DEVICES[lang]),
            "error": d.pick("error", tpl.ERRORS),
            "carrier": d.pick("carrier", tpl.CARRIERS[lang]),
        }
        channel_name = CHANNELS[channel[i]]
        texts.append(_frame(d, template.text.format(**slots), lang, channel_name))
        intents.append(LABELS.index(template.intent))
        alts.append(LABELS.index(template.alt) if template.alt else -1)
        langs.append(lang)
        chans.append(channel_name)
        regions.append(region)
        tier_name = TIERS[tier[i]]
        tiers.append(tier_name)
        item_tags = []
        if template.edge_case:
            item_tags.append("edge-case")
        if d.u("repeat") < 0.08:
            item_tags.append("repeat-contact")
        if tier_name == "enterprise":
            item_tags.append("vip")
        tags.append(tuple(sorted(item_tags)))

    def reorder(values: list[Any]) -> list[Any]:
        return [values[j] for j in order]

    return _Tickets(
        text=reorder(texts),
        intent=np.asarray(intents, dtype=np.int64)[order],
        alt=np.asarray(alts, dtype=np.int64)[order],
        language=reorder(langs),
        channel=reorder(chans),
        region=reorder(regions),
        tier=reorder(tiers),
        tags=reorder(tags),
        created=created[order],
        customer=customers[order].astype(np.int64),
    )


# -- labelling --------------------------------------------------------------------------


def _assign(
    rng: np.random.Generator, n: int, team: tuple[AnnotatorProfile, ...]
) -> tuple[IntArray, IntArray]:
    """(item, annotator) pairs: 2-5 distinct annotators per item, weighted by workload."""
    k = rng.choice(np.asarray(K_CHOICES), size=n, p=K_P)
    w = np.log(np.array([p.workload for p in team]))
    keys = w[None, :] + rng.gumbel(
        size=(n, len(team))
    )  # Gumbel top-k = weighted sampling w/o replacement
    ranked = np.argsort(-keys, axis=1, kind="stable")
    take = np.arange(len(team))[None, :] < k[:, None]
    items = np.broadcast_to(np.arange(n)[:, None], ranked.shape)[take]
    return items.astype(np.int64), ranked[take].astype(np.int64)


def _next_working_time(t: float, shift_hour: int, rng: np.random.Generator) -> float:
    """``t`` if it falls in the annotator's weekday shift, else the next shift start."""
    day = int(t // 86400)
    in_day = t - day * 86400
    start, end = shift_hour * 3600.0, (shift_hour + 7.5) * 3600.0
    if day % 7 < 5 and start <= in_day < end:
        return t
    if day % 7 < 5 and in_day < start:
        return day * 86400 + start + float(rng.uniform(0, 1200))
    day += 1
    while day % 7 >= 5:
        day += 1
    return day * 86400 + start + float(rng.uniform(0, 1200))


def _schedule(
    rng: np.random.Generator,
    tickets: _Tickets,
    items: IntArray,
    annotators: IntArray,
    team: tuple[AnnotatorProfile, ...],
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
    """Session number, position, start, submit (seconds since START) and active seconds."""
    m = len(items)
    session = np.zeros(m, dtype=np.int64)
    position = np.zeros(m, dtype=np.int64)
    started = np.zeros(m)
    submitted = np.zeros(m)
    active = np.zeros(m)
    length = np.array([len(t) for t in tickets.text], dtype=np.float64)
    edge = tickets.alt >= 0
    next_session = 0
    for profile in team:
        rows = np.flatnonzero(annotators == profile.index)
        rows = rows[np.argsort(tickets.created[items[rows]], kind="stable")]
        lo, hi = profile.session_length
        cursor, free_at = 0, 0.0
        while cursor < len(rows):
            size = int(rng.integers(lo, hi + 1))
            chunk = rows[cursor : cursor + size]
            cursor += size
            ready = float(tickets.created[items[chunk]].max()) + float(rng.exponential(4 * 3600))
            t = _next_working_time(max(ready, free_at + SESSION_GAP), profile.shift_start_hour, rng)
            pos = np.arange(len(chunk))
            fatigue = profile.fatigue(pos)
            it = items[chunk]
            median = (
                profile.speed
                * (6.0 + 0.09 * length[it])
                * np.where(edge[it], 1.35, 1.0)
                * (1 - 0.4 * fatigue)
            )
            secs = np.maximum(np.round(median * rng.lognormal(0.0, 0.45, size=len(chunk)), 1), 1.0)
            overhead = rng.exponential(4.0, size=len(chunk))
            gaps = rng.exponential(6.0, size=len(chunk)) + np.where(
                rng.random(len(chunk)) < 0.03,
                np.minimum(rng.exponential(300.0, size=len(chunk)), MAX_BREAK),
                0.0,
            )
            for j, row in enumerate(chunk):
                t = float(np.floor(t))
                started[row] = t
                submitted[row] = t + np.ceil(secs[j] + overhead[j])
                t = submitted[row] + gaps[j]
            session[chunk] = next_session
            position[chunk] = pos
            active[chunk] = secs
            next_session += 1
            free_at = t
    return session, position, started, submitted, active


def _label(
    rng: np.random.Generator,
    tickets: _Tickets,
    items: IntArray,
    annotators: IntArray,
    position: IntArray,
    team: tuple[AnnotatorProfile, ...],
    clarified: npt.NDArray[np.bool_],
    rounds: IntArray,
) -> IntArray:
    """The labels given; ``clarified`` marks work done under guideline 1.1, ``rounds``
    the feedback rounds the annotator had received (each removes :data:`LEARNING` of
    their remaining confusion)."""
    k = len(LABELS)
    true = tickets.intent[items]
    probs = np.empty((len(items), k))
    slip = np.empty(len(items))
    for profile in team:
        rows = annotators == profile.index
        f = profile.fatigue(position[rows])[:, None]
        base = profile.confusion[true[rows]]
        if profile.clarified is not None:
            after = clarified[rows]
            base[after] = profile.clarified[true[rows][after]]
        base = _learned(base, true[rows], rounds[rows])
        probs[rows] = (1 - f) * base + f / k
        slip[rows] = profile.edge_slip
    cum = np.cumsum(probs, axis=1)
    draw = rng.random(len(items))[:, None] * cum[:, -1:]
    given = np.minimum((draw > cum).sum(axis=1), k - 1).astype(np.int64)
    alt = tickets.alt[items]
    slipped = (alt >= 0) & (rng.random(len(items)) < slip)
    return np.where(slipped, alt, given)


def _learned(base: FloatArray, true: IntArray, rounds: IntArray) -> FloatArray:
    """Confusion rows after ``rounds`` of feedback: the off-diagonal mass shrinks by
    ``(1 - LEARNING) ** rounds``, the rest moves to the true label."""
    keep = (1.0 - LEARNING) ** rounds.astype(np.float64)
    rows = np.arange(len(true))
    right = base[rows, true]
    out = base * keep[:, None]
    out[rows, true] = 1.0 - (1.0 - right) * keep
    return out


# -- model predictions ----------------------------------------------------------------


def _predict(rng: np.random.Generator, tickets: _Tickets) -> FloatArray:
    """Class probabilities: ~90% right and roughly calibrated on ordinary tickets;
    ~55% right but just as confident on edge cases."""
    n, k = len(tickets.intent), len(LABELS)
    edge = tickets.alt >= 0
    p_right = np.where(edge, 0.55, np.where(tickets.intent == LABELS.index("other"), 0.75, 0.91))
    right = rng.random(n) < p_right
    look = _lookalike_matrix()
    look_cum = np.cumsum(look / look.sum(axis=1, keepdims=True), axis=1)
    similar = np.minimum((rng.random(n)[:, None] > look_cum[tickets.intent]).sum(axis=1), k - 1)
    wrong = np.where(edge & (rng.random(n) < 0.85), tickets.alt, similar)
    top = np.where(right, tickets.intent, wrong)
    conf = np.where(
        edge,
        rng.beta(14.0, 1.8, size=n),
        np.where(right, rng.beta(14.0, 1.6, size=n), rng.beta(4.0, 3.0, size=n)),
    )
    conf = np.clip(conf, 0.3, 0.995)
    # the runner-up gets a share of the rest: the true class when wrong, else a look-alike
    second = np.where(right, similar, tickets.intent)
    second = np.where(second == top, (top + 1) % k, second)
    rest = 1.0 - conf
    share = rng.beta(3.0, 2.0, size=n) * rest
    probs = rng.dirichlet(np.ones(k), size=n) * (rest - share)[:, None]
    rows = np.arange(n)
    probs[rows, top] = 0.0
    probs[rows, second] = 0.0
    probs = probs / probs.sum(axis=1, keepdims=True) * (rest - share)[:, None]
    probs[rows, top] = conf
    probs[rows, second] = share
    return np.asarray(probs, dtype=np.float64)


def _round_probabilities(row: FloatArray) -> dict[str, float]:
    rounded = np.round(row, 4)
    top = int(np.argmax(rounded))
    rounded[top] = round(1.0 - (rounded.sum() - rounded[top]), 4)
    return {name: float(rounded[j]) for j, name in enumerate(LABELS)}


# -- assembly -----------------------------------------------------------------------------


def _at(seconds: float) -> datetime:
    return START + timedelta(seconds=round(seconds))


def simulate(seed: int = 7, n_items: int = 2000, *, gold_fraction: float = 0.05) -> DemoData:
    """Build the demo data set; the same ``seed`` and ``n_items`` give equal records."""
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    if not 0 <= gold_fraction <= 1:
        raise ValueError(f"gold_fraction must be between 0 and 1, got {gold_fraction}")
    r_team, r_items, r_work, r_model = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    team = _team(r_team)
    tickets = _tickets(r_items, n_items)
    ids = [f"tkt-{i + 1:05d}" for i in range(n_items)]

    items = []
    for i in range(n_items):
        items.append(
            ItemRecord(
                external_id=ids[i],
                payload={"text": tickets.text[i]},
                metadata={
                    "created_at": _at(tickets.created[i]).isoformat(),
                    "customer_id": f"C{tickets.customer[i]}",
                    "customer_tier": tickets.tier[i],
                },
                segments={
                    "language": tickets.language[i],
                    "channel": tickets.channel[i],
                    "region": tickets.region[i],
                },
                tags=tickets.tags[i],
            )
        )

    a_item, a_annotator = _assign(r_work, n_items, team)
    session, position, started, submitted, active = _schedule(
        r_work, tickets, a_item, a_annotator, team
    )
    change = GUIDELINE_CHANGE_DAY * 86400.0
    rounds = (submitted[:, None] >= np.asarray(FEEDBACK_DAYS) * 86400.0).sum(axis=1)
    given = _label(
        r_work, tickets, a_item, a_annotator, position, team, submitted >= change, rounds
    )
    order = np.lexsort((started, a_item))  # by item, then time
    a_item, a_annotator, session, position = (
        a_item[order],
        a_annotator[order],
        session[order],
        position[order],
    )
    started, submitted, active, given = (
        started[order],
        submitted[order],
        active[order],
        given[order],
    )
    annotations = [
        AnnotationRecord(
            item_external_id=ids[a_item[j]],
            annotator=team[a_annotator[j]].username,
            value=LABELS[given[j]],
            task_type="single",
            started_at=_at(started[j]),
            submitted_at=_at(submitted[j]),
            active_seconds=float(active[j]),
            guideline_version="1.0" if submitted[j] < change else "1.1",
        )
        for j in range(len(a_item))
    ]
    trace = AnnotationTrace(
        item=a_item,
        annotator=a_annotator,
        true=tickets.intent[a_item],
        given=given,
        session=session,
        position=position,
        active_seconds=active,
    )

    n_gold = round(gold_fraction * n_items)
    weight = np.where(tickets.alt >= 0, 2.0, 1.0)
    gold_idx = np.sort(r_model.choice(n_items, size=n_gold, replace=False, p=weight / weight.sum()))
    gold = []
    for i in gold_idx:
        intent = LABELS[tickets.intent[i]]
        alt = LABELS[tickets.alt[i]] if tickets.alt[i] >= 0 else None
        rationale = tpl.EDGE_RATIONALES[(intent, alt)] if alt else tpl.RATIONALES[intent]
        gold.append(GoldRecord(ids[i], intent, "single", rationale=rationale, source=GOLD_SOURCE))

    probs = _predict(r_model, tickets)
    predictions = []
    for i in range(n_items):
        p = _round_probabilities(probs[i])
        best = max(p, key=lambda name: p[name])
        predictions.append(
            PredictionRecord(
                item_external_id=ids[i],
                model_name=MODEL_NAME,
                model_version=MODEL_VERSION,
                value=best,
                task_type="single",
                probabilities=p,
                score=p[best],
            )
        )

    return DemoData(
        seed=seed,
        labels=LABELS,
        schema=label_schema(),
        items=items,
        annotations=annotations,
        gold=gold,
        predictions=predictions,
        truth={ids[i]: LABELS[tickets.intent[i]] for i in range(n_items)},
        annotators=team,
        trace=trace,
    )
