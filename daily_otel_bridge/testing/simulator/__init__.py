"""A deterministic stand-in for Daily's ``GET /v1/meetings`` and ``GET /v1/logs``.

Everything the simulator serves is derived from ``SimulatorConfig.seed``: two apps built
from equal configs (with a fixed ``base_time``) serve byte-identical answers. Records are
generated per meeting on first use, from ``random.Random(f"{seed}:{domain}:{index}")``, and
stored column-wise in ``array`` objects (under 20 bytes a record), so a million records
fit in a few tens of MB; a bounded LRU (``cache_meetings``) limits how many meetings are held.

Layout
------
* Historical meetings (``meetings_per_domain`` per domain) have every record between
  ``base_time - history`` and ``base_time - 30 s``. A meeting's ``start_time`` is 0-30 s
  before its first record; it ends 0-20 s after its last one. ``ongoing`` is computed from
  the clock, so a ``base_time`` in the future makes meetings (and records) appear over time.
* Live meetings (``live=True``) start when the app is created, whatever ``base_time`` is,
  and produce ``live_records_per_second`` records: record *i* has time
  ``start + i / rate`` (ties share the previous record's time) and appears once that time
  has passed. They end after ``live_duration`` seconds (never when ``None``).
  ``live_silent_meetings`` more are ongoing the same way but never produce a record (a room
  where nobody's client logs anything: the cheap-to-poll majority of a big account).
  With ``live_silent_words`` = K > 0 each of them logged K records (100 ms apart)
  ``live_silent_words_ago`` seconds before the app was created (and started a second
  before that), then nothing more: "said three words 30 s before the start".
* Churning meetings (``churn_meetings`` = N, independent of ``live``) start during the run:
  meeting *j* at ``churn_delay + j * churn_over / N`` seconds after the app was created
  (whole milliseconds), lasts a seeded duration in ``[churn_min_duration,
  churn_max_duration]`` and produces ``churn_rate`` records/s while ongoing (record *i* at
  ``start + i / rate``, visible at its own ``time``, ties as for live meetings). A seeded
  share ``churn_late_ratio`` of them upload a last batch of ``churn_late_records`` records
  whose times lie in the meeting's last 5 s (before its end) and which all become visible
  ``churn_late_delay`` seconds after the end. ``/v1/meetings`` lists a churning meeting only
  from its exact start (``start_time`` = that second, rounded down), as ongoing until its
  exact end; ``end_time`` is the end rounded up.
* ``tie_ratio`` of the records share their ``time`` with the previous record, in groups of
  2-7 (a client batch upload), with different ``clientTime`` values. ``duplicate_ratio``
  of the records are byte-identical copies of the previous one. ``late_ratio`` of the
  records become visible only ``late_delay`` seconds after their own ``time``.
* ``time`` has millisecond resolution and is printed with nine fractional digits.
  ``clientTime`` = ``time`` minus an upload delay (0-2.5 s) plus a per-participant clock
  skew (a few seconds; hours for about one participant in seven).
* ``level`` follows the inferred mapping 0=ERROR, 1=INFO, 2=DEBUG; the ``logLevel``
  filter uses it.

API behaviour (under ``/v1``; ``Authorization: Bearer <key>``, the key selects the domain)
------------------------------------------------------------------------------------------
* No header or an unknown/revoked key: 401 ``authentication-error``. A header that is not
  ``Bearer <token>``: 400 ``authorization-header-error``.
* Requests pass, in this order: fault queue, authentication, rate limit (a per-domain
  token bucket; 429 ``rate-limit-error`` with ``Retry-After`` unless disabled), random
  errors (``error_429_ratio`` of the requests answer 429, ``error_retry_after_ratio`` of those
  with ``Retry-After``; ``error_5xx_ratio`` answer 500/502/503/504 without it; drawn from a
  ``random.Random`` seeded by ``seed``, in arrival order).
* ``latency`` (+- ``latency_jitter``, uniform, seeded like the errors) delays every API answer,
  errors included, as a network round trip would; the answer is computed on arrival (rate
  limit, clock, visible records) and sent that much later. The wait is an ``asyncio.sleep``,
  so slow answers overlap: a client with several requests in flight gets them all back after
  one latency. Control endpoints answer at once.
* ``GET /v1/logs``: ``mtgSessionId`` and/or ``userSessionId`` (both given: both must
  match), ``order`` (ASC/DESC, any case, default DESC), ``startTime``/``endTime`` (integer
  ms; endTime defaults to now; inclusiveness per config), ``logLevel``, ``limit``
  (default 20; ``max_limit``, default 1000, is the largest page answered whatever ``limit``
  asks, as Daily may answer fewer records than asked), ``offset``, ``includeLogs``,
  ``includeMetrics``.
  Records sharing a ``time`` keep their generation order in both orders (DESC sorts by
  time only, stably) unless ``desc_ties_reversed``. ``logs`` and ``metrics`` are paged
  independently with the same window and order. With ``short_pages`` a page may hold
  fewer records than asked although more exist; which pages are short is a function of
  the request's parameters, so a retried request gets the same page.
* ``GET /v1/meetings``: ``room``, ``timeframe_start`` (``start_time >= v``),
  ``timeframe_end`` (``start_time < v``), ``ongoing``, ``no_participants``, ``limit``
  (default and max 100), cursors ``starting_after`` / ``ending_before`` (a meeting id;
  an unknown id is a 400). Newest ``start_time`` first, ties by id. ``total_count``
  counts every meeting matching the filters, ignoring the cursor. An ongoing meeting's
  ``duration`` is the time elapsed so far.

Control endpoints (no auth, never rate limited)
-----------------------------------------------
* ``GET /_sim/stats``: ``{"requests": {"meetings": n, "logs": n}, "status_counts":
  {"200": n, ...}, "requests_per_domain": {...}, "records_served": n,
  "metrics_served": n, "inflight": n, "max_inflight": n, "domains": {D: {...}}}``. Per
  domain (requests whose key names the domain, counted on arrival): ``requests``,
  ``inflight`` / ``max_inflight`` (API requests received and not yet answered, now / at
  most), ``limiter_429`` (429s from the simulator's own token bucket), ``random_429`` /
  ``random_5xx`` (from the error ratios), ``max_per_second`` (most arrivals within any
  1-second sliding window) and ``per_second`` (``{unix_second: arrivals}``, simulator clock).
  ``?arrivals=1`` adds ``arrivals``: the last 100,000 arrival times (simulator clock).
  A client pacing itself with a token bucket of rate r and burst b may legitimately put up
  to about b + r arrivals into one sliding second (a full bucket, then the refill): check
  ``max_per_second`` against that, or the rate over a longer span from ``arrivals``.
* ``GET /_sim/requests[?since=N]``: the API requests from the N-th on (wall-clock
  ``arrived`` / ``finished`` seconds, ``endpoint``, ``status``, ``user_agent``), as
  ``{"requests": [...], "next": n}``; the last 100 000 are kept. Who read a domain when:
  the replica tests check from it that no two replicas ever read one domain at once.
* ``GET /_sim/records?domain=D[&session=ID][&kind=logs|metrics][&offset=N][&limit=N]``:
  the ground truth, every record visible now, ASC, rendered exactly as ``/v1/logs``
  renders it, streamed as ``{"records": [...], "count": n}``. ``session`` is a meeting or
  participant id; without it, the whole domain, ordered by time, then meeting, then
  generation order. ``domain`` defaults to the first configured domain. ``&visible=1`` adds
  ``_visible`` to each record: when it became visible (Unix s), its ``time`` except for
  late records (``late_ratio``) and churning meetings' late batches.
* ``GET /_sim/meetings?domain=D``: every meeting (visible or not) with its participant
  ids and its number of log records visible now; ``begins`` / ``ends`` (exact, Unix s;
  ``ends`` null when it never ends), ``churn``, and ``late_visible_at`` (a churning meeting's
  late batch, null without one).
* ``POST /_sim/revoke?domain=D`` / ``POST /_sim/restore?domain=D``: the domain's key
  answers 401 / works again.
* ``POST /_sim/clock?advance=S``: moves the simulator's clock S seconds forward (late
  records, live records and future meetings appear; rate-limit buckets refill).
  ``GET /_sim/clock`` returns ``{"now": unix_seconds}``.
* ``POST /_sim/faults`` with a JSON object; ``GET /_sim/faults`` shows the state. Keys:

  - ``{"status": 503, "count": 5}``: the next 5 API requests answer 503 with a Daily-style
    body (``server-error`` for 5xx, ``rate-limit-error`` for 429, ...); 429 and 503 carry
    ``Retry-After`` unless the mode is ``none``.
  - ``{"hang_seconds": 30, "count": 1}``: the next request waits 30 s, then answers
    normally (the wait ends early when the app shuts down).
  - ``{"invalid_json": true, "count": 1}``: the next request answers 200 with a truncated
    JSON body.
  - ``"endpoint": "logs" | "meetings"``: with one of the three above, only that endpoint's
    requests consume the fault (default: any). Queued faults are consumed in order, one
    per request.
  - ``{"retry_after": "seconds" | "http-date" | "none"}``: the ``Retry-After`` format from
    now on.
  - ``{"not_found_session": "<id>"}``: ``/v1/logs`` for that meeting or participant id
    answers 404 ``not-found`` from now on.
  - ``{"clear": true}``: drop queued faults and not-found sessions, reset ``retry_after``.
CLI: ``python -m daily_otel_bridge.testing.simulator --help``; it prints one line
``listening on http://HOST:PORT/v1`` once ready, and stops on SIGTERM/SIGINT or after
``--max-seconds``.

Modules, one job each
---------------------
``config`` (SimulatorConfig), ``vocabulary`` (messages, names, formats), ``model`` (a
meeting and its participants), ``world`` (every meeting, built from the seed), ``records``
(the record generator), ``store`` (record caches and window selection), ``paging`` (pages,
page caps, cursors), ``render`` (the wire shape of records and meetings), ``truth`` (the
ground truth), ``errors`` (Daily's error answers, parameter parsing), ``faults`` (fault
injection), ``limits`` (rate limit, random errors, latency), ``stats`` (what is counted),
``core`` (the Simulator: state and request plumbing), ``api`` (Daily's endpoints),
``control`` (``/_sim``), ``app`` (routes), ``runner`` (serving), ``cli`` (command line).
"""

from __future__ import annotations

from .app import SIM_KEY, create_app
from .cli import _config_from_args, _parser, add_churn_arguments, churn_kwargs, main
from .config import Clock, SimulatorConfig
from .core import Simulator
from .planted import PLANTED_SECRETS
from .runner import RunningSimulator, SimulatorThread, start_simulator
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook, signed_headers
from .stats import RequestLog

__all__ = [
    "PLANTED_SECRETS",
    "SIGNATURE_HEADER",
    "SIM_KEY",
    "TIMESTAMP_HEADER",
    "Clock",
    "RequestLog",
    "RunningSimulator",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "_config_from_args",
    "_parser",
    "add_churn_arguments",
    "churn_kwargs",
    "create_app",
    "main",
    "sign_webhook",
    "signed_headers",
    "start_simulator",
]
