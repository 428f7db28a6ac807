"""Stage 3, the turns: every response as a turn of its session, judged, explained and priced.

``ledger`` holds the sessions and their ``turn.Turn``s with ``verdicts``,
``explain`` says why a turn read less than the one before left in the cache,
``models`` and ``pricing`` say what it cost; ``packing`` keeps a turn small.
"""
