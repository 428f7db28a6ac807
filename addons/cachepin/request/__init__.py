"""Stage 1, the request: which API it speaks, which session it belongs to, what its prefix is.

Everything here reads what the client sent, before the provider answers; the
only change ever made to a request body is ``body_edit``'s ``prompt_cache_key``.
"""
