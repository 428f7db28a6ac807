"""The gateway simulator: a fake LLM gateway fronting several accounts, each with its own prompt cache.

``server`` is the HTTP layer, the wire formats and the command line
(``python -m cachepin_tools.simulator --help``); ``routing`` picks the account
of a request; ``cache`` is what an account's prompt cache does; ``prompt``
splits a request into the blocks the cache keys on and counts their tokens.
The cache model follows the providers' documented rules on its own: it
shares no code with the ``cachepin`` package whose figures it is used to check.
"""
