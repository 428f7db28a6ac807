"""Stage 4, the outputs: what the ledger tells people and programs.

Pure renderers (``log_line``, ``table``, ``report``, ``junit``, ``html``,
``flow_comment``, ``content_view``), the event lines and their replay into a
ledger (``events``), Prometheus counters (``metrics``), and the one module that
writes files (``files``).
"""
