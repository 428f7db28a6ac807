"""Stage 4, the outputs: what the ledger tells people and programs.

Pure renderers (``log_line``, ``table``, ``report``, ``junit``,
``content_view``) and the one module that writes files (``files``).
"""
